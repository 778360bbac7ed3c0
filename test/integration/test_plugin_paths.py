"""Issue 10 (plugins and files): register-by-path only from --plugin-dir directories, the same
answer whether or not a refused path exists, only ELF shared objects of this machine are stored,
and nothing is kept after any refusal."""
import os
import pathlib
import shutil
import struct

import pytest

from conftest import describe, expect_error, model_plugin, sha256_file

Q = "quadratic_predictor"
EM_OFFSET = 18  # e_machine in the ELF header (both classes)


def stored_files(srv):
    return sorted(p.name for p in (srv.data_dir / "plugins").iterdir())


@pytest.fixture
def plugin_server(server_factory, tmp_path):
    """A server whose only plugin directory (besides the model repository) is tmp/plugins."""
    pdir = tmp_path / "plugins"
    pdir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    srv = server_factory(args=["--plugin-dir", str(pdir)])
    return srv, pdir, outside


def assert_refused_alike(post, paths):
    """Every path is a 400 with one and the same message, which names none of them."""
    messages = set()
    for path in paths:
        body = expect_error(post(path), 400)
        messages.add(body["error"])
        assert str(path) not in body["error"]
    assert len(messages) == 1, f"refusals differ, so they tell which paths exist: {messages}"


def register(srv, path, name="p", expect=None):
    r = srv.post("/models", {"name": name, "version": "1", "plugin": str(path)})
    if expect is not None:
        assert r.status_code == expect, describe(r)
    return r


def test_register_from_a_plugin_dir_and_the_import_dir_works(plugin_server):
    srv, pdir, _ = plugin_server
    shutil.copy(model_plugin(Q, 1), pdir / "m.so")
    register(srv, pdir / "m.so", "inside", expect=201)
    imp = srv.data_dir / "import"
    assert imp.is_dir(), "the data dir's import folder is created at start"
    shutil.copy(model_plugin(Q, 2), imp / "m2.so")
    register(srv, imp / "m2.so", "imported", expect=201)
    srv.deploy("inside", "1")


def test_refused_paths_get_one_message_and_store_nothing(plugin_server):
    srv, pdir, outside = plugin_server
    shutil.copy(model_plugin(Q, 1), outside / "m.so")
    os.symlink(outside / "m.so", pdir / "escape.so")
    os.symlink("/etc/passwd", pdir / "passwd")
    os.mkfifo(pdir / "fifo.so")
    shutil.copy(model_plugin(Q, 1), pdir / "open.so")
    os.chmod(pdir / "open.so", 0o666)
    (pdir / "text.so").write_text("not a plugin\n")
    before = stored_files(srv)
    assert_refused_alike(lambda p: register(srv, p), [
        "/etc/passwd", outside / "m.so", f"{pdir}/../outside/m.so", pdir / "escape.so",
        pdir / "passwd", pdir / "fifo.so", pdir / "open.so", pdir / "text.so",
        pdir / "missing.so", "/no/such/dir/x.so", "/dev/zero", "relative.so"])
    assert stored_files(srv) == before, "a refused file was stored"
    assert "p" not in srv.models()


def test_upload_of_a_non_elf_or_foreign_architecture_is_refused_and_not_stored(plugin_server):
    srv, _, _ = plugin_server
    before = stored_files(srv)
    good = model_plugin(Q, 1).read_bytes()
    (machine,) = struct.unpack_from("<H", good, EM_OFFSET)
    foreign = bytearray(good)
    struct.pack_into("<H", foreign, EM_OFFSET, 183 if machine != 183 else 62)  # aarch64 / x86_64
    for data in [b"#!/bin/sh\necho hi\n", bytes(foreign), good[:40]]:
        r = srv.put("/models/up/versions/1", data=data,
                    headers={"Content-Type": "application/octet-stream"})
        expect_error(r, 400)
    assert stored_files(srv) == before


def test_failed_registration_keeps_no_stored_copy(plugin_server, server_factory):
    srv, pdir, _ = plugin_server
    from conftest import fixture_plugin
    shutil.copy(fixture_plugin("create_fails"), pdir / "cf.so")
    before = stored_files(srv)
    r = srv.post("/models", {"name": "cf", "version": "1", "plugin": str(pdir / "cf.so")})
    expect_error(r, 400)
    r = srv.put("/models/cf/versions/2", data=fixture_plugin("abi_major_mismatch").read_bytes(),
                headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400)
    assert stored_files(srv) == before, "a refused plugin stayed in the store"
    # a 409 (version exists) keeps nothing either
    shutil.copy(fixture_plugin("slow"), pdir / "slow.so")
    r = srv.post("/models", {"name": Q, "version": "1", "plugin": str(pdir / "slow.so")})
    expect_error(r, 409)
    assert stored_files(srv) == before
    # but bytes another version uses stay when a second registration of them fails
    shutil.copy(model_plugin(Q, 1), pdir / "q1.so")
    r = srv.post("/models", {"name": Q, "version": "2", "plugin": str(pdir / "q1.so")})
    expect_error(r, 409)
    assert f"{sha256_file(model_plugin(Q, 1))}.so" in stored_files(srv)


def test_stale_upload_temporaries_are_removed_at_start(server_factory, tmp_path):
    srv = server_factory(start=False)
    store = srv.data_dir / "plugins"
    store.mkdir(parents=True)
    (store / ".upload-abc123").write_bytes(b"half a plugin")
    srv.start()
    assert not (store / ".upload-abc123").exists()


# -- model directories (POST /models {"model_dir": ...}) ------------------------------------------


def stored_artifacts(srv):
    d = srv.data_dir / "artifacts"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def register_dir(srv, path, name="d"):
    return srv.post("/models", {"name": name, "version": "1", "model_dir": str(path)})


def test_model_dir_goes_through_the_plugin_dir_rules(plugin_server):
    from conftest import MODELS
    srv, pdir, outside = plugin_server
    iris = MODELS / "iris" / "1"
    shutil.copytree(iris, pdir / "iris")
    shutil.copytree(iris, outside / "iris")
    shutil.copytree(iris, pdir / "open")
    os.chmod(pdir / "open", 0o777)
    os.symlink(outside / "iris", pdir / "escape")
    (pdir / "file.txt").write_text("not a directory\n")
    before = stored_artifacts(srv)
    assert_refused_alike(lambda p: register_dir(srv, p), [
        outside / "iris", f"{pdir}/../outside/iris", pdir / "escape", pdir / "open",
        pdir / "file.txt", pdir / "missing", "/etc", "/no/such/dir", "relative"])
    assert stored_artifacts(srv) == before, "a refused directory was stored"
    assert "d" not in srv.models()
    # inside an allowed directory: the same directory registers
    r = register_dir(srv, pdir / "iris", "ok")
    assert r.status_code == 201, describe(r)


@pytest.mark.parametrize("bad", ["fifo", "symlink", "world_writable"])
def test_model_dir_entries_must_be_private_regular_files(plugin_server, bad):
    from conftest import MODELS
    srv, pdir, outside = plugin_server
    d = pdir / "m"
    shutil.copytree(MODELS / "iris" / "1", d)
    (outside / "secret").write_text("s3cret\n")
    if bad == "fifo":
        os.mkfifo(d / "extra")  # never opened for reading: it would block a worker
    elif bad == "symlink":
        os.symlink(outside / "secret", d / "extra")
    else:
        os.chmod(d / "model.json", 0o666)
    before = stored_artifacts(srv)
    body = expect_error(register_dir(srv, d), 400)
    assert "s3cret" not in body["error"]
    assert stored_artifacts(srv) == before


def test_model_dir_probe_runs_its_backend_in_a_worker_not_the_server(server_factory, tmp_path):
    import tempfile
    from conftest import fixture_plugin
    backends = tmp_path / "backends"
    (backends / "faults").mkdir(parents=True)
    shutil.copy(fixture_plugin("faults"), backends / "faults" / "libdynserve_faults.so")
    pdir = tmp_path / "plugins"
    (pdir / "fx").mkdir(parents=True)
    (pdir / "fx" / "config.json").write_text('{"backend": "faults"}')
    (pdir / "boom").mkdir()
    # compact JSON: faults matches its config text as the server stores plugin configs
    (pdir / "boom" / "config.json").write_text('{"backend":"faults","create":"segv"}')
    # writable by the unprivileged user the worker runs as (the tests run as root)
    marks = pathlib.Path(tempfile.mkdtemp(prefix="ds-marker-"))
    os.chmod(marks, 0o777)
    marker = marks / "pid"
    srv = server_factory(args=["--plugin-dir", str(pdir), "--backend-dir", str(backends)],
                         env={"DS_FX_MARKER": str(marker)})
    if marker.exists():
        marker.unlink()
    r = register_dir(srv, pdir / "fx", "fx")
    assert r.status_code == 201, describe(r)
    pid = int(marker.read_text())
    assert pid != srv.proc.pid, "the backend's code ran in the server"
    # a backend that crashes on the files takes down its worker only, and nothing of the
    # refused directory stays in the store
    before = stored_artifacts(srv)
    r = register_dir(srv, pdir / "boom", "boom")
    assert r.status_code in (422, 500), describe(r)
    assert srv.alive() and "boom" not in srv.models()
    assert stored_artifacts(srv) == before, "a refused model directory stayed in the store"
    # but a directory a registered version uses stays when a second registration of it fails
    r = register_dir(srv, pdir / "fx", "fx")
    assert r.status_code == 409, describe(r)
    assert stored_artifacts(srv) == before
