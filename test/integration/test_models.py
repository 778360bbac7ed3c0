"""Real models: the XGBoost and ONNX backends, model versions made of files (config.json +
artifact), tar uploads, the Triton-style model repository, and the plugin ABI 1.1 (instance
context, instance pools, side by side with ABI 1.0 plugins).

Every prediction is compared with the Python reference evaluation of the same artifact
(xgboost's own in-place prediction; numpy for the ONNX MLP) on the whole test split that the
example-model generators saved in build/testdata.
"""
import io
import json
import os
import pathlib
import shutil
import struct
import tarfile
import threading

import numpy as np
import pytest
import xgboost as xgb
from onnx import load as onnx_load
from onnx import numpy_helper

from conftest import (BIN, MODELS, describe, expect_error, expect_status, fixture_plugin)

TESTDATA = pathlib.Path(os.environ.get("DYNSERVE_TESTDATA", BIN.parent / "testdata"))
XGB_MODELS = ("breast_cancer", "iris", "diabetes")
ATOL = 1e-5


def split_of(name):
    p = TESTDATA / f"{name}.npz"
    assert p.is_file(), f"test split {p} missing (build the example models)"
    d = np.load(p)
    return d["X_test"].astype(np.float32), d["y_test"]


def version_dir(model, version="1"):
    p = MODELS / model / version
    assert (p / "config.json").is_file(), f"example model {p} missing"
    return p


def xgb_reference(model, x):
    booster = xgb.Booster(model_file=str(version_dir(model) / "model.json"))
    return booster.inplace_predict(x)


def onnx_reference(x):
    """numpy evaluation of the digits MLP graph: Gemm(transB=1) -> Relu ... -> Softmax."""
    m = onnx_load(str(version_dir("digits") / "model.onnx"))
    w = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in m.graph.initializer}
    h = x.astype(np.float64)
    layers = sum(1 for n in m.graph.node if n.op_type == "Gemm")
    for i in range(layers):
        h = h @ w[f"W{i}"].T + w[f"B{i}"]
        if i + 1 < layers:
            h = np.maximum(h, 0)
    e = np.exp(h - h.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def infer(srv, model, x, version="1", name="input", outputs=None, expect=200):
    body = {"inputs": [{"name": name, "shape": list(x.shape), "datatype": "FP32",
                        "data": x.ravel().tolist()}]}
    if outputs:
        body["outputs"] = [{"name": o} for o in outputs]
    r = srv.post(f"/v2/models/{model}/versions/{version}/infer", body)
    if expect != 200:
        return expect_error(r, expect)
    return {o["name"]: o for o in expect_status(r, 200)["outputs"]}


def as_array(out):
    return np.array(out["data"], dtype=np.float64).reshape(out["shape"])


def assert_close(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    # 1e-5 absolute, relative for magnitudes above 1 (regression targets are in the hundreds,
    # where one FP32 ulp is already 3e-5)
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= ATOL, f"{what}: max error {err.max()} at {np.argmax(err)}"


def deployed(srv, model, version="1", **options):
    body = {"model_name": model, "version": version, **options}
    return expect_status(srv.post("/deployments/deploy", body), 201)


def check_xgb_outputs(model, outs, x):
    ref = xgb_reference(model, x)
    if model == "diabetes":
        assert_close(as_array(outs["prediction"]).ravel(), ref, f"{model} prediction")
        assert outs["prediction"]["shape"] == [len(x), 1]
    elif model == "breast_cancer":
        assert_close(as_array(outs["probability"]).ravel(), ref, f"{model} probability")
        assert as_array(outs["label"]).ravel().tolist() == (ref >= 0.5).astype(int).tolist()
        assert outs["label"]["datatype"] == "INT32"
    else:
        assert_close(as_array(outs["probabilities"]), ref, f"{model} probabilities")
        assert as_array(outs["label"]).ravel().tolist() == ref.argmax(axis=1).tolist()


# ---- registration at start and metadata -------------------------------------------------------

def test_real_models_are_registered_at_start_beside_the_c_examples(shared):
    models = shared.models()
    for m in (*XGB_MODELS, "digits", "quadratic_predictor", "identity"):
        assert "1" in models.get(m, set()), f"{m}/1 not registered at start: {models}"


@pytest.mark.parametrize("model,platform,inputs,outputs", [
    ("breast_cancer", "xgboost", [("input", "FP32", [-1, 30])],
     [("probability", "FP32", [-1, 1]), ("label", "INT32", [-1, 1])]),
    ("iris", "xgboost", [("input", "FP32", [-1, 4])],
     [("probabilities", "FP32", [-1, 3]), ("label", "INT32", [-1, 1])]),
    ("diabetes", "xgboost", [("input", "FP32", [-1, 10])], [("prediction", "FP32", [-1, 1])]),
    ("digits", "onnx", [("input", "FP32", [-1, 64])], [("probabilities", "FP32", [-1, 10])]),
])
def test_metadata_shows_backend_and_the_io_read_from_the_artifact(shared, model, platform,
                                                                  inputs, outputs):
    deployed(shared, model)
    for path in (f"/v2/models/{model}", f"/v2/models/{model}/versions/1"):
        meta = expect_status(shared.get(path), 200)
        assert meta["platform"] == platform and meta["backend"] == platform, meta
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["inputs"]] == inputs, meta
        assert [(t["name"], t["datatype"], t["shape"]) for t in meta["outputs"]] == outputs, meta


def test_version_listing_shows_backend_and_artifact_digest(shared):
    body = expect_status(shared.get("/models/digits/versions/1"), 200)
    assert body["backend"] == "onnx", body
    assert len(body["artifact_sha256"]) == 64, body


# ---- predictions equal the Python reference --------------------------------------------------

@pytest.mark.parametrize("model", XGB_MODELS)
def test_xgboost_predictions_equal_xgboost_on_the_whole_test_split(shared, model):
    x, _ = split_of(model)
    deployed(shared, model)
    check_xgb_outputs(model, infer(shared, model, x), x)


def test_onnx_predictions_equal_numpy_on_the_whole_test_split(shared):
    x, y = split_of("digits")
    deployed(shared, "digits")
    got = as_array(infer(shared, "digits", x)["probabilities"])
    ref = onnx_reference(x)
    assert_close(got, ref, "digits probabilities")
    assert (got.argmax(axis=1) == y).mean() > 0.9, "the MLP should classify digits"


def rows(x, n):
    return np.resize(x, (n, x.shape[1])).astype(np.float32)


@pytest.mark.parametrize("n", [1, 64, 4096])
def test_batches_of_1_64_4096_rows(shared, n):
    deployed(shared, "iris")
    deployed(shared, "digits")
    xi = rows(split_of("iris")[0], n)
    check_xgb_outputs("iris", infer(shared, "iris", xi), xi)
    xd = rows(split_of("digits")[0], n)
    assert_close(as_array(infer(shared, "digits", xd)["probabilities"]), onnx_reference(xd),
                 f"digits batch {n}")


def binary_infer(srv, model, x, outputs):
    payload = x.astype("<f4").tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(payload)}}],
                       "outputs": [{"name": o, "parameters": {"binary_data": True}}
                                   for o in outputs]}).encode()
    r = srv.post(f"/v2/models/{model}/versions/1/infer", raw=head + payload,
                 headers={"Inference-Header-Content-Length": str(len(head)),
                          "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, describe(r)
    n = int(r.headers["Inference-Header-Content-Length"])
    meta, raw = json.loads(r.content[:n]), r.content[n:]
    out, pos = {}, 0
    for o in meta["outputs"]:
        size = o["parameters"]["binary_data_size"]
        dtype = "<f4" if o["datatype"] == "FP32" else "<i4"
        out[o["name"]] = np.frombuffer(raw[pos:pos + size], dtype=dtype).reshape(o["shape"])
        pos += size
    assert pos == len(raw)
    return out


def test_binary_tensor_extension_in_and_out(shared):
    deployed(shared, "breast_cancer")
    deployed(shared, "digits")
    x, _ = split_of("breast_cancer")
    out = binary_infer(shared, "breast_cancer", x, ["probability", "label"])
    ref = xgb_reference("breast_cancer", x)
    assert_close(out["probability"].ravel(), ref, "binary probability")
    assert out["label"].ravel().tolist() == (ref >= 0.5).astype(int).tolist()
    xd, _ = split_of("digits")
    got = binary_infer(shared, "digits", xd, ["probabilities"])["probabilities"]
    assert_close(got, onnx_reference(xd), "binary digits")


def test_requested_outputs_only(shared):
    deployed(shared, "iris")
    x, _ = split_of("iris")
    outs = infer(shared, "iris", x, outputs=["label"])
    assert list(outs) == ["label"], outs


# ---- bad requests ---------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["breast_cancer", "digits"])
def test_wrong_shapes_and_datatypes_are_400(shared, model):
    deployed(shared, model)
    cols = 30 if model == "breast_cancer" else 64
    path = f"/v2/models/{model}/versions/1/infer"
    bad = [
        {"name": "input", "shape": [2, cols + 1], "datatype": "FP32", "data": [0.0] * (2 * cols + 2)},
        {"name": "input", "shape": [cols], "datatype": "FP32", "data": [0.0] * cols},
        {"name": "input", "shape": [1, cols], "datatype": "FP64", "data": [0.0] * cols},
        {"name": "input", "shape": [1, cols], "datatype": "INT32", "data": [0] * cols},
        {"name": "nope", "shape": [1, cols], "datatype": "FP32", "data": [0.0] * cols},
        {"name": "input", "shape": [2, cols], "datatype": "FP32", "data": [0.0] * cols},
    ]
    for t in bad:
        expect_error(shared.post(path, {"inputs": [t]}), 400)
    x = np.zeros((1, cols), np.float32)
    assert infer(shared, model, x), "server keeps serving after bad requests"


# ---- model directories, uploads, repository ---------------------------------------------------

def copy_version(model, dst, mutate=None):
    shutil.copytree(version_dir(model), dst)
    if mutate:
        mutate(pathlib.Path(dst))
    return pathlib.Path(dst)


def register_dir(srv, name, path, expect=201):
    r = srv.post("/models", {"name": name, "version": "1", "model_dir": str(path)})
    if expect == 201:
        return expect_status(r, 201)
    return expect_error(r, expect)


def tar_of(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for f in sorted(pathlib.Path(path).iterdir()):
            t.add(f, arcname=f.name)
    return buf.getvalue()


def upload_tar(srv, name, data, version="1", expect=201):
    r = srv.put(f"/models/{name}/versions/{version}", data=data,
                headers={"Content-Type": "application/x-tar"})
    if expect == 201:
        return expect_status(r, 201)
    return expect_error(r, expect)


def test_register_model_directory_is_stored_content_addressed(shared, tmp_path):
    src = copy_version("iris", tmp_path / "iris1")
    body = register_dir(shared, "iris_copy", src)
    sha = body["artifact_sha256"]
    stored = shared.data_dir / "artifacts" / sha
    assert (stored / "model.json").read_bytes() == (src / "model.json").read_bytes()
    (src / "model.json").write_text("{}")  # the registered version does not change with it
    deployed(shared, "iris_copy")
    x, _ = split_of("iris")
    check_xgb_outputs("iris", infer(shared, "iris_copy", x), x)


def test_tar_upload_registers_and_serves_the_model(shared):
    body = upload_tar(shared, "digits_up", tar_of(version_dir("digits")))
    assert body["backend"] == "onnx" and len(body["artifact_sha256"]) == 64, body
    deployed(shared, "digits_up")
    x, _ = split_of("digits")
    assert_close(as_array(infer(shared, "digits_up", x)["probabilities"]), onnx_reference(x),
                 "uploaded digits")


def test_tar_created_with_dot_prefix_is_accepted(shared, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        t.add(version_dir("diabetes"), arcname=".")
    upload_tar(shared, "diabetes_up", buf.getvalue())
    deployed(shared, "diabetes_up")
    x, _ = split_of("diabetes")
    outs = infer(shared, "diabetes_up", x)
    assert_close(as_array(outs["prediction"]).ravel(), xgb_reference("diabetes", x), "upload")


@pytest.mark.parametrize("data", [b"", b"not a tar" * 100, b"\0" * 1024])
def test_bad_tar_upload_is_400(shared, data):
    upload_tar(shared, "badtar", data, expect=400)


def test_tar_without_config_or_with_nested_paths_is_400(shared, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(version_dir("iris") / "model.json", arcname="model.json")
    upload_tar(shared, "noconfig", buf.getvalue(), expect=400)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        t.add(version_dir("iris"), arcname="iris/1")
    upload_tar(shared, "nested", buf.getvalue(), expect=400)


def test_unknown_backend_is_400(shared, tmp_path):
    src = copy_version("iris", tmp_path / "v",
                       lambda d: (d / "config.json").write_text('{"backend":"tensorrt"}'))
    assert "tensorrt" in register_dir(shared, "trt", src, expect=400)["error"]


@pytest.mark.parametrize("model,artifact", [("iris", "model.json"), ("digits", "model.onnx")])
def test_corrupt_artifact_at_register_is_422_with_the_reason(shared, tmp_path, model, artifact):
    src = copy_version(model, tmp_path / "v",
                       lambda d: (d / artifact).write_bytes(os.urandom(3000)))
    body = register_dir(shared, f"corrupt_{model}", src, expect=422)
    assert artifact in body["error"] or "graph" in body["error"] or "booster" in body["error"], body
    assert shared.get("/v2/health/live").status_code == 200
    assert f"corrupt_{model}" not in shared.models()


def test_corrupt_artifact_after_register_fails_the_deployment_with_reason(server, tmp_path):
    body = register_dir(server, "fragile", copy_version("digits", tmp_path / "v"))
    stored = server.data_dir / "artifacts" / body["artifact_sha256"] / "model.onnx"
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(stored.read_bytes()[:500])
    os.replace(broken, stored)
    err = expect_error(server.post("/deployments/deploy",
                                   {"model_name": "fragile", "version": "1"}), 422, 500)
    assert "model.onnx" in err["error"], err
    deps = [d for d in server.deployments() if d["model_name"] == "fragile"]
    assert deps and deps[0]["status"] == "failed" and deps[0].get("reason"), deps
    assert server.get("/v2/health/live").status_code == 200
    # and the C examples keep serving
    deployed(server, "quadratic_predictor")


def test_model_repository_with_triton_layout_is_registered_at_start(server_factory, tmp_path):
    repo = tmp_path / "repo"
    copy_version("iris", repo / "flowers" / "3")
    copy_version("digits", repo / "mnist" / "1")
    srv = server_factory(args=["--model-repository", str(repo)])
    models = srv.models()
    assert models.get("flowers") == {"3"} and models.get("mnist") == {"1"}, models
    deployed(srv, "flowers", "3")
    x, _ = split_of("iris")
    check_xgb_outputs("iris", infer(srv, "flowers", x, version="3"), x)


def test_two_versions_of_the_same_artifact_never_share_an_instance(shared, tmp_path):
    src = copy_version("iris", tmp_path / "v")
    a = register_dir(shared, "twin", src)
    r = shared.post("/models", {"name": "twin", "version": "2", "model_dir": str(src)})
    b = expect_status(r, 201)
    assert a["artifact_sha256"] == b["artifact_sha256"]
    deployed(shared, "twin", "1")
    deployed(shared, "twin", "2")
    shared.undeploy("twin", "1")
    x, _ = split_of("iris")
    check_xgb_outputs("iris", infer(shared, "twin", x, version="2"), x)


# ---- lifecycle --------------------------------------------------------------------------------

def rss_kib(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize("model", ["breast_cancer", "digits"])
def test_100_undeploy_redeploy_cycles_do_not_grow_rss(server_factory, model):
    if b"__asan_init" in BIN.read_bytes():
        pytest.skip("ASan's quarantine keeps freed memory: RSS says nothing about leaks there "
                    "(LeakSanitizer checks those at exit)")
    # few worker threads, so the warm-up touches every thread's arena and stack
    server = server_factory(args=["--threads", "4"])
    x = split_of(model)[0][:8]

    def cycle():
        deployed(server, model)
        infer(server, model, x)
        server.undeploy(model, "1")

    for _ in range(20):  # warm-up: thread arenas, library caches, SQLite page cache
        cycle()
    before = rss_kib(server.proc.pid)
    for _ in range(100):
        cycle()
    grown = rss_kib(server.proc.pid) - before
    assert grown < 4096, f"RSS grew by {grown} KiB over 100 deploy/undeploy cycles of {model}"


# ---- ABI 1.1 ----------------------------------------------------------------------------------

def sum_infer(srv, model, xs, version="1"):
    x = np.array(xs, np.float32).reshape(-1, 2)
    r = srv.post(f"/v2/models/{model}/versions/{version}/infer",
                 {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32",
                              "data": x.ravel().tolist()}]})
    return {o["name"]: o for o in expect_status(r, 200)["outputs"]}


def test_abi_1_0_and_abi_1_1_plugins_serve_side_by_side(shared):
    shared.register("old_quad", "1", fixture_plugin("quadratic_abi_1_0"))
    shared.register("new_sum", "1", fixture_plugin("abi_1_1"))
    deployed(shared, "old_quad")
    deployed(shared, "new_sum")
    r = shared.infer("old_quad", "1", [{"name": "input", "shape": [2, 1], "datatype": "FP32",
                                        "data": [1, 2]}])
    assert expect_status(r, 200)["outputs"][0]["data"] == [6, 15]
    outs = sum_infer(shared, "new_sum", [1, 2, 3, 4.5])
    assert outs["sum"]["data"] == [3, 7.5] and outs["sum"]["shape"] == [2, 1]
    info = outs["info"]["data"]
    assert info[1] == 1 and info[2] >= 1, f"instance_count 1 and load hook ran: {info}"
    meta = expect_status(shared.get("/v2/models/new_sum/versions/1"), 200)
    assert [t["name"] for t in meta["inputs"]] == ["x"], "IO described by the instance"
    expect_error(shared.infer("new_sum", "1", [{"name": "input", "shape": [1, 1],
                                                "datatype": "FP32", "data": [1]}]), 400)


def test_entry_refusal_message_reaches_the_client(shared):
    body = shared.register("refuses", "1", fixture_plugin("abi_1_1_refuses"), expect=400)
    assert "needs a GPU" in body["error"], body


def concurrently(clients, fn, timeout=300):
    """Run fn(k) for k in range(clients) on as many threads; assert none raised."""
    errors = []

    def run(k):
        try:
            fn(k)
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not errors, errors[:3]


def pool_sums(srv, model, clients, per_client):
    """(expected sum, answered sum, info) of clients x per_client concurrent sum requests."""
    results = []

    def client(k):
        for i in range(per_client):
            outs = sum_infer(srv, model, [k, i])
            results.append((k + i, outs["sum"]["data"][0], outs["info"]["data"]))

    concurrently(clients, client)
    return results


def test_non_thread_safe_plugin_with_instance_count_4_runs_instances_in_parallel(shared):
    shared.register("pool", "1", fixture_plugin("abi_1_1"), config={"sleep_ms": 30})
    deployed(shared, "pool", instance_count=4)
    results = pool_sums(shared, "pool", 8, 12)
    assert len(results) == 96
    assert all(want == got for want, got, _ in results), "every sum correct under load"
    used = {info[0] for _, _, info in results}
    assert len(used) > 1 and used <= {0, 1, 2, 3}, f"instances used: {used}"
    assert max(info[4] for _, _, info in results) >= 2, "instances ran in parallel"
    assert {info[1] for _, _, info in results} == {4}


def test_onnx_with_instance_count_under_concurrent_load_is_correct(shared):
    deployed(shared, "digits", instance_count=3)
    x, _ = split_of("digits")
    ref = onnx_reference(x)

    def client(k):
        for i in range(10):
            j = (k * 10 + i) % len(x)
            got = as_array(infer(shared, "digits", x[j:j + 4])["probabilities"])
            assert_close(got, ref[j:j + 4], "concurrent digits")

    concurrently(6, client)


@pytest.mark.parametrize("count", [0, -1, 65, "4", 1.5])
def test_bad_instance_count_is_400(shared, count):
    expect_error(shared.post("/deployments/deploy", {"model_name": "iris", "version": "1",
                                                     "instance_count": count}), 400)


def test_request_timeout_parameter_reaches_is_cancelled_and_answers_504(shared):
    shared.register("deadline", "1", fixture_plugin("abi_1_1"), config={"sleep_ms": 50})
    deployed(shared, "deadline")
    body = {"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}],
            "parameters": {"timeout": 1000}}  # Triton's request timeout, microseconds
    err = expect_error(shared.post("/v2/models/deadline/versions/1/infer", body), 504)
    assert "abandoned" in err["error"], err
    body["parameters"]["timeout"] = 60_000_000
    assert expect_status(shared.post("/v2/models/deadline/versions/1/infer", body), 200)


# ---- model directories in an isolated worker ---------------------------------------------------

def worker_pid(srv, model, version="1"):
    d = [d for d in srv.deployments() if d["model_name"] == model and d["version"] == version]
    assert d and d[0]["isolation"] == "process", d
    pid = d[0].get("worker", {}).get("pid")
    assert pid and pid != srv.proc.pid, d[0]
    return pid


@pytest.mark.parametrize("model", [*XGB_MODELS, "digits"])
def test_isolated_model_directory_predicts_what_the_in_process_one_does(shared, tmp_path, model):
    """The same artifact deployed in process and with "isolation":"process" (the backend runs
    in a `dynserve worker`, given the artifact directory and config through the instance
    context): metadata and every prediction on the whole test split are the same."""
    register_dir(shared, f"iso_{model}", copy_version(model, tmp_path / "v"))
    deployed(shared, model)
    d = deployed(shared, f"iso_{model}", isolation="process", instance_count=2)
    assert d["options"]["isolation"] == "process", d
    pid = worker_pid(shared, f"iso_{model}")
    assert pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1] == b"worker"
    inproc = expect_status(shared.get(f"/v2/models/{model}/versions/1"), 200)
    iso = expect_status(shared.get(f"/v2/models/iso_{model}/versions/1"), 200)
    for key in ("platform", "backend", "inputs", "outputs"):
        assert iso[key] == inproc[key], (key, iso, inproc)
    x, _ = split_of(model)
    for n in (1, 64, len(x)):
        xs = rows(x, n)
        want = infer(shared, model, xs)
        got = infer(shared, f"iso_{model}", xs)
        assert sorted(got) == sorted(want)
        for name in want:
            assert got[name]["datatype"] == want[name]["datatype"]
            assert got[name]["shape"] == want[name]["shape"]
            assert got[name]["data"] == want[name]["data"], f"{model} {name} batch {n}"
    if model == "digits":
        assert_close(as_array(infer(shared, "iso_digits", x)["probabilities"]),
                     onnx_reference(x), "isolated digits")
    else:
        check_xgb_outputs(model, infer(shared, f"iso_{model}", x), x)


def test_isolated_model_directory_with_a_corrupt_artifact_fails_with_the_reason(server, tmp_path):
    # an extra file makes its digest differ from the example's, which stays intact
    body = register_dir(server, "fragile_iso", copy_version(
        "iris", tmp_path / "v", lambda d: (d / "notes.txt").write_text("a copy")))
    stored = server.data_dir / "artifacts" / body["artifact_sha256"] / "model.json"
    broken = tmp_path / "broken.json"
    broken.write_bytes(stored.read_bytes()[:300])
    os.replace(broken, stored)
    err = expect_error(server.post("/deployments/deploy", {"model_name": "fragile_iso",
                                                           "version": "1",
                                                           "isolation": "process"}), 422)
    assert "isolated" in err["error"] and "model.json" in err["error"], err
    assert "/proc/self/fd" not in err["error"], err  # the worker names the stored directory
    assert server.get("/v2/health/live").status_code == 200
    deployed(server, "iris", isolation="process")
    x, _ = split_of("iris")
    check_xgb_outputs("iris", infer(server, "iris", x), x)


def test_isolated_non_thread_safe_plugin_gets_its_instance_pool_in_the_worker(shared):
    shared.register("isopool", "1", fixture_plugin("abi_1_1"), config={"sleep_ms": 30})
    deployed(shared, "isopool", isolation="process", instance_count=3, workers=6)
    results = pool_sums(shared, "isopool", 6, 6)
    assert all(want == got for want, got, _ in results) and len(results) == 36
    assert {info[1] for _, _, info in results} == {3}, "instance_count reaches the worker"
    assert {info[0] for _, _, info in results} <= {0, 1, 2}
    assert max(info[4] for _, _, info in results) >= 2, "instances ran in parallel"


def dep_stats(srv, model, version="1"):
    return expect_status(srv.get(f"/deployments/{model}/{version}/stats"), 200)


def wait_for(what, cond, timeout=30.0):
    """Poll cond() until true (a bounded wait for a state change, not a timing assertion)."""
    from test_isolation import wait_until
    return wait_until(cond, timeout=timeout, what=what)


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_client_disconnect_reaches_is_cancelled_and_counts_as_cancelled(shared, isolation):
    """A plugin that polls is_cancelled while it works (up to 10 minutes here) sees CANCELLED
    once its client closes the connection -- in process, and in a worker (the server tells it
    over the channel); the request is counted as cancelled (and as a 499), and the server goes
    on serving."""
    import socket
    shared.register("hangup", "1", fixture_plugin("abi_1_1"), config={"wait_cancel_ms": 600000})
    deployed(shared, "hangup", isolation=isolation, timeout_ms=3600000)
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32",
                                   "data": [1, 2]}]}).encode()
    s = socket.create_connection(("127.0.0.1", shared.port))
    s.sendall(b"POST /v2/models/hangup/versions/1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (len(body), body))
    wait_for("the request to be in flight", lambda: dep_stats(shared, "hangup")["in_flight"] == 1)
    before = shared.stderr().count("saw CANCELLED")
    s.close()
    st = wait_for("the cancelled request to end",
                  lambda: (lambda d: d if d["in_flight"] == 0 else None)(
                      dep_stats(shared, "hangup")))
    assert st["cancelled"] == 1 and st["request_count"] == 1 and st["error_4xx"] == 1, st
    wait_for("the plugin's log line", lambda: shared.stderr().count("saw CANCELLED") > before)
    assert "hangup/1#" in [ln for ln in shared.stderr().splitlines() if "saw CANCELLED" in ln][-1]
    # a client that stays gets its answer from the same plugin (no deadline, not cancelled)
    shared.register("hangup", "2", fixture_plugin("abi_1_1"), config={"wait_cancel_ms": 20})
    deployed(shared, "hangup", version="2", isolation=isolation)
    assert sum_infer(shared, "hangup", [1, 2], version="2")["sum"]["data"] == [3]
    assert dep_stats(shared, "hangup", "2")["cancelled"] == 0


# ---- concurrency (also run under ThreadSanitizer: `-m stress` in the TSan build) ---------------

@pytest.mark.stress
def test_xgboost_and_onnx_backends_under_concurrent_clients_with_instance_pools(shared):
    """Both backends at once, instance_count 3 each, 8 clients sending batches of 1..64 rows:
    every answer equals the reference, and (under TSan) the server shows no data race."""
    deployed(shared, "breast_cancer", instance_count=3)
    deployed(shared, "iris", instance_count=2)
    deployed(shared, "digits", instance_count=3)
    data = {m: split_of(m)[0] for m in ("breast_cancer", "iris", "digits")}
    refs = {"breast_cancer": xgb_reference("breast_cancer", data["breast_cancer"]),
            "iris": xgb_reference("iris", data["iris"]),
            "digits": onnx_reference(data["digits"])}
    done = []

    def client(k):
        for i in range(12):
            model = ("breast_cancer", "digits", "iris")[(k + i) % 3]
            x = data[model]
            n = (1, 4, 64)[(k * 7 + i) % 3]
            j = (k * 13 + i * 5) % (len(x) - n)
            outs = infer(shared, model, x[j:j + n])
            want = refs[model][j:j + n]
            if model == "breast_cancer":
                assert_close(as_array(outs["probability"]).ravel(), want, model)
            else:
                assert_close(as_array(outs["probabilities"]), want, model)
            done.append(model)

    concurrently(8, client)
    assert len(done) == 96 and set(done) == {"breast_cancer", "iris", "digits"}
    for m in ("breast_cancer", "iris", "digits"):
        st = dep_stats(shared, m)
        assert st["request_count"] == done.count(m) and st["error_count"] == 0, st


@pytest.mark.stress
def test_isolated_backends_under_concurrent_clients(shared, tmp_path):
    """The same through workers: instance pools inside the worker, several channels."""
    for m in ("breast_cancer", "digits"):
        register_dir(shared, f"iso_{m}", copy_version(m, tmp_path / m))
        deployed(shared, f"iso_{m}", isolation="process", instance_count=2, workers=4)
    data = {m: split_of(m)[0] for m in ("breast_cancer", "digits")}
    refs = {"breast_cancer": xgb_reference("breast_cancer", data["breast_cancer"]),
            "digits": onnx_reference(data["digits"])}

    def client(k):
        for i in range(10):
            m = ("breast_cancer", "digits")[(k + i) % 2]
            n = (1, 16)[i % 2]
            j = (k * 11 + i) % (len(data[m]) - n)
            outs = infer(shared, f"iso_{m}", data[m][j:j + n])
            got = outs["probabilities"] if m == "digits" else outs["probability"]
            assert_close(as_array(got).reshape(refs[m][j:j + n].shape), refs[m][j:j + n], m)

    concurrently(6, client)
