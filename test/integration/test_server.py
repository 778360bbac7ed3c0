"""Issue 3: the server process, its command line, data dir, OIP server routes and shutdown."""
import shutil
import signal
import sqlite3
import socket
import subprocess
import threading
import time

import requests

from conftest import (BIN, EXAMPLE_MODELS, HOST, Server, describe, expect_error, expect_status,
                      fixture_plugin, free_port, model_plugin, port_is_free, quad_inputs)

EXIT_TIMEOUT_S = 10


def run_to_exit(tmp_path, args, timeout=EXIT_TIMEOUT_S):
    """Run the binary with args (no fixture) and return (exit code, stderr) once it exits."""
    p = subprocess.run([str(BIN), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, cwd=tmp_path, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.strip()]


# -- OIP server routes ---------------------------------------------------------------------------


def test_server_metadata_has_name_version_and_extensions(shared):
    body = expect_status(shared.get("/v2"), 200)
    assert isinstance(body, dict), f"GET /v2 is not a JSON object: {body!r}"
    assert isinstance(body.get("name"), str) and body["name"], f"no shared name: {body!r}"
    assert isinstance(body.get("version"), str) and body["version"], f"no version: {body!r}"
    ext = body.get("extensions")
    assert isinstance(ext, list) and all(isinstance(e, str) for e in ext), \
        f"extensions must be a list of strings: {body!r}"


def test_health_live_is_200(shared):
    r = shared.get("/v2/health/live")
    assert r.status_code == 200, describe(r)


def test_health_ready_is_200_once_started(shared):
    # contract: ready may be 503 while deployments are restored, then 200 (OIP: 200 = true)
    shared.wait_ready()
    r = shared.get("/v2/health/ready")
    assert r.status_code == 200, describe(r)


def test_unknown_routes_get_404_json_error(shared):
    for path in ("/nope", "/v2/nope", "/v2/health/nope", "/v2/models/no_such_model",
                 "/v2/models/no_such_model/versions/1", "/models/no_such_model/nope/x"):
        expect_error(shared.get(path), 404)
    expect_error(shared.post("/v2/models/no_such_model/versions/1/infer",
                             {"inputs": quad_inputs([1.0])}), 404)
    expect_error(shared.post("/v2/models/no_such_model/infer", {"inputs": quad_inputs([1.0])}),
                 404)
    assert shared.get("/v2/health/live").status_code == 200, "shared stopped serving after 404s"


def test_wrong_method_on_known_route_gets_405_json_error(shared):
    # contract: a known path with a method it does not serve is 405 (design.md lists 405)
    expect_error(shared.delete("/v2"), 405)
    expect_error(shared.post("/v2/health/live", {}), 405)
    expect_error(shared.delete("/deployments"), 405)


# -- data dir and registry -----------------------------------------------------------------------


def test_data_dir_and_registry_db_are_created(server_factory, tmp_path):
    data = tmp_path / "fresh" / "data"
    data.parent.mkdir()
    assert not data.exists()
    server_factory(data_dir=data)
    assert data.is_dir(), f"data dir {data} not created"
    assert (data / "registry.db").is_file(), \
        f"{data}/registry.db not created; data dir holds {sorted(p.name for p in data.iterdir())}"


def test_example_models_are_registered_at_first_start(shared):
    models = shared.models()
    for name, versions in EXAMPLE_MODELS.items():
        assert name in models, f"example model {name} not registered: {models!r}"
        assert versions <= models[name], f"{name}: want versions {versions}, got {models[name]}"


def test_example_models_are_not_deployed_at_first_start(server):
    assert server.deployments() == [], "nothing should be deployed on a fresh data dir"


def test_example_registration_is_idempotent_across_restarts(server):
    first = server.models()
    server.restart(signal.SIGTERM)
    assert server.models() == first, "clean restart changed the registered models"
    server.restart(signal.SIGKILL)
    assert server.models() == first, "restart after kill -9 changed the registered models"


def test_model_repository_flag_registers_a_custom_tree(server_factory, tmp_path):
    repo = tmp_path / "repo"
    (repo / "mymodel" / "7").mkdir(parents=True)
    shutil.copy(model_plugin("quadratic_predictor", 1), repo / "mymodel" / "7" / "model.so")
    (repo / "empty" / "1").mkdir(parents=True)  # no plugin: not a version
    srv = server_factory(args=["--model-repository", str(repo)])
    models = srv.models()
    assert models.get("mymodel") == {"7"}, f"mymodel/7 not registered from {repo}: {models!r}"
    assert "1" not in models.get("empty", set()), \
        f"a version directory without a plugin was registered: {models!r}"
    srv.deploy("mymodel", "7")
    r = srv.infer("mymodel", "7", quad_inputs([1.0, 2.0]))
    body = expect_status(r, 200)
    assert body["outputs"][0]["data"] == [6, 15], f"mymodel/7 should compute 2x²+3x+1: {body!r}"


def test_model_repository_registration_is_idempotent(server_factory, tmp_path):
    repo = tmp_path / "repo"
    (repo / "mymodel" / "7").mkdir(parents=True)
    shutil.copy(model_plugin("quadratic_predictor", 2), repo / "mymodel" / "7" / "model.so")
    srv = server_factory(args=["--model-repository", str(repo)])
    before = srv.models()
    srv.restart()
    assert srv.models() == before, "restart with the same --model-repository changed /models"


# -- command line and startup failures -----------------------------------------------------------


def test_unknown_flag_exits_nonzero_with_a_message(tmp_path):
    rc, out, err = run_to_exit(tmp_path, ["--no-such-flag", "--host", HOST, "--port",
                                          str(free_port()), "--data-dir", str(tmp_path / "d")])
    # contract: bad command line → non-zero (README says 2) and a usage/error text
    assert rc != 0, f"unknown flag accepted (exit 0); stderr: {err!r}"
    assert "no-such-flag" in err or "usage" in (err + out).lower(), \
        f"no message naming the bad flag or usage; stdout {out!r} stderr {err!r}"


def test_busy_port_exits_1_with_one_clear_line(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind((HOST, 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        rc, _, err = run_to_exit(tmp_path, ["--host", HOST, "--port", str(port),
                                            "--data-dir", str(tmp_path / "d")])
    assert rc == 1, f"busy port: exit {rc}, expected 1; stderr: {err!r}"
    lines = error_lines(err)
    assert any(str(port) in line for line in lines), \
        f"no stderr line names the busy port {port}: {err!r}"
    # contract: one clear line, not a cascade (the info lines of the models registered before it
    # do not count)
    problems = [line for line in lines if " INFO " not in line]
    assert len(problems) <= 4, f"busy port produced {len(problems)} stderr lines: {err!r}"
    assert "AddressSanitizer" not in err and "runtime error" not in err, err


def test_unwritable_data_dir_exits_1_with_one_clear_line(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory\n")
    data = blocker / "data"  # a path under a regular file can never be created (even as root)
    rc, _, err = run_to_exit(tmp_path, ["--host", HOST, "--port", str(free_port()),
                                        "--data-dir", str(data)])
    assert rc == 1, f"unwritable data dir: exit {rc}, expected 1; stderr: {err!r}"
    lines = error_lines(err)
    assert any(str(blocker) in line for line in lines), \
        f"no stderr line names the data dir {data}: {err!r}"
    assert len(lines) <= 10, f"unwritable data dir produced {len(lines)} stderr lines: {err!r}"
    assert blocker.read_text() == "not a directory\n", "the blocking file was modified"


# -- shutdown ------------------------------------------------------------------------------------


def test_sigterm_exits_0_and_releases_the_port(server):
    port = server.port
    server.stop(signal.SIGTERM, expect_code=0)
    assert port_is_free(port), f"port {port} still bound after the server exited"
    try:
        requests.get(f"http://{HOST}:{port}/v2/health/live", timeout=2)
        raise AssertionError("server still answers after SIGTERM")
    except requests.ConnectionError:
        pass


def test_sigint_exits_0(server):
    server.stop(signal.SIGINT, expect_code=0)


def test_restart_on_same_port_after_sigterm(server):
    port = server.port
    server.stop()
    server.start(port=port)
    assert server.get("/v2/health/live").status_code == 200


def test_sigterm_lets_an_in_flight_request_finish(server):
    server.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": 600})
    server.deploy("slow", "1")
    result = {}

    def call():
        try:
            result["resp"] = server.infer("slow", "1", quad_inputs([2.0]), timeout=15)
        except requests.RequestException as e:
            result["exc"] = e

    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.2)  # let the request reach the plugin (it sleeps 600 ms there)
    server.proc.send_signal(signal.SIGTERM)
    t.join(timeout=20)
    assert not t.is_alive(), "in-flight request never completed"
    assert "exc" not in result, f"in-flight request failed during SIGTERM: {result.get('exc')!r}"
    body = expect_status(result["resp"], 200)
    assert body["outputs"][0]["data"] == [15], f"slow plugin computes 2x²+3x+1: {body!r}"
    server.stop(expect_code=0)


def test_registered_version_survives_restart(server):
    server.register("kept", "1", model_plugin("quadratic_predictor", 2))
    server.restart()
    assert server.models().get("kept") == {"1"}, "registered version lost on restart"


def test_a_second_server_on_the_same_port_fails_and_the_first_keeps_serving(server, tmp_path):
    other = Server(tmp_path / "other")
    try:
        other.spawn(port=server.port)
        rc = other.proc.wait(timeout=EXIT_TIMEOUT_S)
        assert rc == 1, f"second server on a busy port exited {rc}; stderr:\n{other.stderr()}"
    finally:
        if other.alive():
            other.kill()
        other.close()
    assert server.get("/v2/health/live").status_code == 200


def test_registry_from_a_newer_binary_is_refused_untouched(server, tmp_path):
    server.stop()
    db = server.data_dir / "registry.db"
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (9999, 'from_future')")
    conn.close()
    before = db.read_bytes()
    server.spawn()
    rc = server.proc.wait(timeout=EXIT_TIMEOUT_S)
    err = server.stderr()
    assert rc == 1, f"newer schema: exit {rc}, expected 1; stderr:\n{err}"
    assert any("9999" in line or "newer" in line.lower() for line in error_lines(err)), \
        f"no clear line about the newer schema: {err!r}"
    assert db.read_bytes() == before, "a refused registry was modified"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations WHERE version = 9999").fetchall()
    conn.close()
    assert rows == [(9999,)]
