"""Issue 4: register, deploy, infer, undeploy over REST; seed routes; events; restart recovery;
concurrency (hammering while deploying/undeploying, drain before unload)."""
import collections
import math
import os
import shutil
import signal
import threading
import time

import pytest
import requests

from conftest import (describe, expect_error, expect_status, fixture_plugin, model_plugin,
                      parse_iso8601, quad_inputs, sha256_file)

Q = "quadratic_predictor"
BC = "binary_classifier"
XS = [1.0, 2.0]
V1_OF_XS = [6, 15]   # y = 2x²+3x+1
V2_OF_XS = [0, 3]    # y = x²−1


def quad_v1(x):
    return 2 * x * x + 3 * x + 1


def quad_v2(x):
    return x * x - 1


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z))


def outputs(body):
    """{name: output} of an OIP response, after checking its envelope."""
    assert isinstance(body, dict) and isinstance(body.get("outputs"), list), \
        f"not an OIP response: {body!r}"
    out = {}
    for o in body["outputs"]:
        assert {"name", "datatype", "shape", "data"} <= set(o), f"incomplete output {o!r}"
        out[o["name"]] = o
    return out


def infer_ok(srv, model, version, xs=XS):
    """Infer on the quadratic-shaped input; asserts 200 and returns (model_version, data)."""
    r = srv.infer(model, version, quad_inputs(xs))
    body = expect_status(r, 200)
    assert body.get("model_name") == model, f"model_name missing or wrong: {body!r}"
    out = outputs(body)
    assert "prediction" in out, f"no 'prediction' output: {body!r}"
    p = out["prediction"]
    assert p["datatype"] == "FP32" and p["shape"] == [len(xs), 1], f"bad prediction tensor: {p!r}"
    return str(body.get("model_version")), p["data"]


def assert_quad(srv, model, version, math_version, xs=XS):
    fn = quad_v1 if math_version == 1 else quad_v2
    got_version, data = infer_ok(srv, model, version, xs)
    assert data == pytest.approx([fn(x) for x in xs]), \
        f"{model}/{version}: expected v{math_version} math for {xs}, got {data}"
    if version is not None:
        assert got_version == str(version), f"model_version {got_version!r} != {version!r}"
    return got_version


def assert_gone(srv, model, version):
    expect_error(srv.infer(model, version, quad_inputs(XS)), 404)


def find_deployment(srv, model, version):
    for d in srv.deployments():
        if d.get("model_name") == model and str(d.get("version")) == str(version):
            return d
    return None


def events(srv, **params):
    r = srv.get("/deployments/events", params=params)
    body = expect_status(r, 200)
    # contract: {"events": [...]} like {"models": [...]} and {"deployments": [...]}
    assert isinstance(body, dict) and isinstance(body.get("events"), list), \
        f'GET /deployments/events is not {{"events": [...]}}: {body!r}'
    return body["events"]


def event_kind(e):
    for key in ("kind", "type", "event"):
        if isinstance(e.get(key), str):
            return e[key]
    pytest.fail(f"event has no kind/type: {e!r}")


def event_time(e):
    for key in ("at", "time", "timestamp", "created_at"):
        if key in e:
            return parse_iso8601(e[key])
    pytest.fail(f"event has no time field: {e!r}")


def copy_plugin(src, dst_dir, name="model.so"):
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / name
    shutil.copy(src, dst)
    return dst


# -- GET/POST /models ----------------------------------------------------------------------------


def test_list_models_has_names_and_versions(shared):
    models = shared.models()
    assert models[Q] >= {"1", "2"} and models[BC] >= {"1", "2"} and models["identity"] >= {"1"}, \
        f"example models missing from /models: {models!r}"


def test_register_from_path_returns_201_and_lists_the_version(shared, tmp_path):
    src = copy_plugin(model_plugin(Q, 2), tmp_path / "p")
    body = shared.register("mymodel", "1", src)
    assert isinstance(body, dict), f"POST /models 201 body is not a JSON object: {body!r}"
    assert shared.models().get("mymodel") == {"1"}


def test_register_copies_plugin_into_content_addressed_store(server, tmp_path):
    src = copy_plugin(model_plugin(Q, 2), tmp_path / "p")
    digest = sha256_file(src)
    server.register("stored", "1", src)
    stored = server.data_dir / "plugins" / f"{digest}.so"
    assert stored.is_file(), f"{stored} missing; plugins dir: " \
        f"{sorted(p.name for p in (server.data_dir / 'plugins').glob('*'))}"
    assert stored.read_bytes() == src.read_bytes(), "stored plugin differs from the source"
    src.unlink()  # the registry must not depend on the original path
    server.deploy("stored", "1")
    assert_quad(server, "stored", "1", 2)


def test_register_existing_version_returns_409(shared):
    shared.register(Q, "1", model_plugin(Q, 1), expect=409)
    assert shared.models()[Q] >= {"1", "2"}, "a refused registration changed the registry"


@pytest.mark.parametrize("fixture,needle", [
    ("not_a_plugin", None),
    ("abi_major_mismatch", "abi"),
    ("no_entry", "dynserve_plugin_entry"),
    ("truncated_table", None),
])
def test_register_unloadable_plugin_returns_400_with_loader_message(shared, fixture, needle):
    body = shared.register("broken", "1", fixture_plugin(fixture), expect=400)
    if needle:
        assert needle in body["error"].lower(), \
            f"{fixture}: loader message should mention {needle!r}: {body['error']!r}"
    assert "broken" not in shared.models(), "an unloadable plugin was registered"


def test_register_plugin_whose_create_fails_returns_400_with_its_message(shared):
    # contract: registration probes create() with the given config, so a plugin that cannot
    # create an instance is refused up front (400) with the plugin's own message.
    body = shared.register("cf", "1", fixture_plugin("create_fails"), config={"a": 1}, expect=400)
    assert "create_fails fixture" in body["error"], f"plugin message not passed on: {body!r}"
    assert "cf" not in shared.models()


def test_register_with_config_out_of_plugin_range_returns_400(shared):
    shared.register("slowbad", "1", fixture_plugin("slow"), config={"sleep_ms": -5}, expect=400)
    assert "slowbad" not in shared.models()


def test_register_missing_file_returns_400(shared, tmp_path):
    # contract: a path that does not exist is "not a loadable plugin" → 400 (not 404: the
    # resource addressed by the URL, /models, exists)
    body = shared.register("ghost", "1", tmp_path / "nope.so", expect=400)
    assert "ghost" not in shared.models(), body


def test_register_unknown_field_returns_400(shared):
    r = shared.post("/models", {"name": "x", "version": "1", "plugin": str(model_plugin(Q, 1)),
                                "bogus": True})
    expect_error(r, 400)
    assert "x" not in shared.models()


@pytest.mark.parametrize("body", [
    {"version": "1", "plugin": "PLUGIN"},
    {"name": "x", "plugin": "PLUGIN"},
    {"name": "x", "version": "1"},
    {"name": 5, "version": "1", "plugin": "PLUGIN"},
    {"name": "x", "version": "1", "plugin": "PLUGIN", "config": "not an object"},
    [],
    "just a string",
])
def test_register_malformed_body_returns_400(shared, body):
    plugin = str(model_plugin(Q, 1))
    if isinstance(body, dict):
        body = {k: (plugin if v == "PLUGIN" else v) for k, v in body.items()}
    expect_error(shared.post("/models", body), 400)


def test_register_invalid_json_returns_400(shared):
    expect_error(shared.post("/models", raw=b'{"name": "x", '), 400)
    expect_error(shared.post("/models", raw=b""), 400)


@pytest.mark.parametrize("name,version", [
    ("../x", "1"), ("a/b", "1"), ("", "1"), (".", "1"), ("..", "1"), ("x" * 65, "1"),
    ("bad name", "1"), ("x", "../1"), ("x", ".."), ("x", ""), ("x", "1/2"),
])
def test_register_invalid_name_or_version_returns_400(shared, tmp_path, name, version):
    shared.register(name, version, model_plugin(Q, 1), expect=400)
    assert shared.models().keys() >= {Q, BC, "identity"}
    assert not (shared.data_dir.parent / "x").exists()


def test_register_longest_valid_name_is_accepted(shared):
    name = "A-z_0.9" + "n" * 57  # 64 characters from [A-Za-z0-9_.-]
    shared.register(name, "v1.0-rc_1", model_plugin(Q, 1))
    assert shared.models().get(name) == {"v1.0-rc_1"}


def test_two_versions_with_the_same_file_name_keep_their_own_code(shared, tmp_path):
    a = copy_plugin(model_plugin(Q, 1), tmp_path / "a")
    b = copy_plugin(model_plugin(Q, 2), tmp_path / "b")
    shared.register("same", "1", a)
    shared.register("same", "2", b)
    shared.deploy("same", "1")
    shared.deploy("same", "2")
    assert_quad(shared, "same", "1", 1)
    assert_quad(shared, "same", "2", 2)


def test_identical_bytes_under_two_versions_deploy_and_undeploy_independently(shared, tmp_path):
    data = model_plugin(Q, 1).read_bytes()
    shared.upload("dup", "1", data)
    shared.upload("dup", "2", data)
    shared.deploy("dup", "1")
    shared.deploy("dup", "2")
    shared.undeploy("dup", "1")
    assert_quad(shared, "dup", "2", 1)
    assert_gone(shared, "dup", "1")
    shared.undeploy("dup", "2")
    assert_gone(shared, "dup", "2")


# -- PUT /models/<m>/versions/<v> (upload) -------------------------------------------------------


def test_upload_returns_201_then_deploy_and_infer_work(shared):
    data = model_plugin(Q, 2).read_bytes()
    shared.upload("uploaded", "3", data)
    assert shared.models().get("uploaded") == {"3"}
    stored = shared.data_dir / "plugins" / f"{sha256_file(model_plugin(Q, 2))}.so"
    assert stored.is_file() and stored.read_bytes() == data, \
        f"uploaded plugin not in the content-addressed store at {stored}"
    shared.deploy("uploaded", "3")
    assert_quad(shared, "uploaded", "3", 2)


def test_upload_beyond_size_limit_returns_413_and_keeps_serving(server_factory):
    data = model_plugin(Q, 1).read_bytes()
    srv = server_factory(args=["--max-upload-bytes", str(len(data))])
    # contract: the limit is inclusive; a plugin of exactly N bytes is accepted
    srv.upload("atlimit", "1", data)
    srv.upload("toobig", "1", data + b"\0", expect=413)
    assert "toobig" not in srv.models(), "a refused upload was registered"
    assert srv.get("/v2/health/live").status_code == 200
    srv.deploy("atlimit", "1")
    assert_quad(srv, "atlimit", "1", 1)


def test_upload_far_beyond_size_limit_returns_413(server_factory):
    srv = server_factory(args=["--max-upload-bytes", "4096"])
    srv.upload("huge", "1", b"\x7fELF" + b"\0" * (4 << 20), expect=413)
    assert "huge" not in srv.models()
    assert srv.get("/v2/health/live").status_code == 200


def test_upload_existing_version_returns_409(shared):
    shared.upload(Q, "1", model_plugin(Q, 2).read_bytes(), expect=409)
    shared.deploy(Q, "1")
    assert_quad(shared, Q, "1", 1)  # the registered plugin was not replaced


@pytest.mark.parametrize("data", [b"", b"hello, not a plugin", b"\x7fELF" + b"\0" * 60])
def test_upload_non_plugin_returns_400(shared, data):
    shared.upload("junk", "1", data, expect=400)
    assert "junk" not in shared.models()


@pytest.mark.parametrize("name,version", [("bad$name", "1"), ("x" * 65, "1"), ("ok", "a$b")])
def test_upload_invalid_name_returns_400(shared, name, version):
    r = shared.put(f"/models/{name}/versions/{version}", data=model_plugin(Q, 1).read_bytes(),
                   headers={"Content-Type": "application/octet-stream"})
    expect_error(r, 400)
    assert name not in shared.models()


# -- DELETE /models/<m>/versions/<v> -------------------------------------------------------------


def test_delete_version_unregisters_it(shared):
    shared.upload("gone", "1", model_plugin(Q, 1).read_bytes())
    shared.upload("gone", "2", model_plugin(Q, 2).read_bytes())
    r = shared.delete("/models/gone/versions/1")
    assert r.status_code in (200, 204), describe(r)
    assert "1" not in shared.models().get("gone", set()), "deleted version still listed"
    assert shared.models().get("gone") == {"2"}, "the other version must stay"
    shared.deploy("gone", "1", expect=404)
    # contract: a deleted name/version can be registered again
    shared.upload("gone", "1", model_plugin(Q, 2).read_bytes())
    shared.deploy("gone", "1")
    assert_quad(shared, "gone", "1", 2)


def test_delete_deployed_version_returns_409_and_keeps_serving_it(server):
    server.deploy(Q, "1")
    expect_error(server.delete(f"/models/{Q}/versions/1"), 409)
    assert "1" in server.models()[Q]
    assert_quad(server, Q, "1", 1)
    server.undeploy(Q, "1")
    r = server.delete(f"/models/{Q}/versions/1")
    assert r.status_code in (200, 204), describe(r)
    assert "1" not in server.models().get(Q, set())


def test_delete_unknown_version_returns_404(shared):
    expect_error(shared.delete("/models/nope/versions/1"), 404)
    expect_error(shared.delete(f"/models/{Q}/versions/99"), 404)


# -- POST /deployments/deploy --------------------------------------------------------------------


def test_deploy_returns_201_with_the_deployment(shared):
    d = shared.deploy(Q, "1", endpoint_name="quad")
    assert d.get("model_name") == Q, d
    # contract: versions are strings, as in OIP and in the request
    assert d.get("version") == "1", f"version should be the string '1': {d!r}"
    assert d.get("endpoint_name") == "quad", d
    assert d.get("status") == "active", d
    parse_iso8601(d.get("deployed_at"))


def test_deploy_then_infer_immediately_works_and_undeploy_removes_route(shared):
    for i in range(20):
        shared.deploy(Q, "1")
        assert_quad(shared, Q, "1", 1, xs=[float(i)])
        shared.undeploy(Q, "1")
        assert_gone(shared, Q, "1")


def test_deploy_unknown_model_or_version_returns_404(shared):
    shared.deploy("no_such_model", "1", expect=404)
    shared.deploy(Q, "99", expect=404)
    assert shared.deployments() == []


def test_deploy_twice_returns_409(shared):
    shared.deploy(Q, "1")
    shared.deploy(Q, "1", expect=409)
    shared.deploy(Q, "1", endpoint_name="other", expect=409)
    assert len([d for d in shared.deployments() if d.get("model_name") == Q]) == 1
    assert_quad(shared, Q, "1", 1)


def test_deploy_endpoint_name_already_in_use_returns_409(shared):
    # contract: endpoint names are unique among active deployments
    shared.deploy(Q, "1", endpoint_name="shared")
    shared.deploy(Q, "2", endpoint_name="shared", expect=409)
    assert find_deployment(shared, Q, "2") is None
    assert_gone(shared, Q, "2")


def test_deploy_unknown_field_returns_400(shared):
    expect_error(shared.post("/deployments/deploy",
                             {"model_name": Q, "version": "1", "replicas": 2}), 400)
    assert shared.deployments() == []


@pytest.mark.parametrize("raw", [b"{", b"", b"null", b"[]", b'{"model_name": "quadratic_predictor"',
                                 b"\xff\xfe"])
def test_deploy_invalid_json_returns_400(shared, raw):
    expect_error(shared.post("/deployments/deploy", raw=raw), 400)


@pytest.mark.parametrize("body", [
    {"model_name": "../x", "version": "1"},
    {"model_name": Q, "version": "../1"},
    {"model_name": Q, "version": "1", "endpoint_name": "../e"},
    {"model_name": Q, "version": "1", "endpoint_name": "a/b"},
    {"model_name": Q, "version": "1", "endpoint_name": ""},
    {"model_name": "", "version": "1"},
    {"model_name": Q},
    {"version": "1"},
    {"model_name": 1, "version": "1"},
    {"model_name": Q, "version": "1", "endpoint_name": 7},
])
def test_deploy_invalid_body_returns_400(shared, body):
    expect_error(shared.post("/deployments/deploy", body), 400)
    assert shared.deployments() == []


def test_deploy_failure_leaves_no_active_deployment(server, tmp_path):
    src = copy_plugin(model_plugin(Q, 1), tmp_path / "p")
    server.register("fragile", "1", src)
    stored = server.data_dir / "plugins" / f"{sha256_file(src)}.so"
    assert stored.is_file(), f"stored plugin {stored} missing"
    # Break the stored copy behind the server's back (a new inode: never truncate a file that
    # some process may still have mapped).
    broken = tmp_path / "broken.so"
    broken.write_bytes(src.read_bytes()[:100])
    os.replace(broken, stored)
    r = server.post("/deployments/deploy", {"model_name": "fragile", "version": "1"})
    # contract: a plugin that no longer loads is a server-side failure (500) or a bad-request
    # style refusal (400/409); never 201, and the error says why
    expect_error(r, 400, 409, 500, 503)
    d = find_deployment(server, "fragile", "1")
    assert d is None or d.get("status") != "active", f"failed deploy left {d!r}"
    assert_gone(server, "fragile", "1")
    expect_error(server.get("/v2/models/fragile/versions/1/ready"), 404)
    fails = [e for e in events(server, model="fragile") if "fail" in event_kind(e).lower()]
    assert fails, f"a failed deploy must be an event: {events(server, model='fragile')!r}"
    assert server.get("/v2/health/live").status_code == 200


# -- infer through the example models ------------------------------------------------------------


def test_quadratic_v1_and_v2_compute_their_formulas(shared):
    shared.deploy(Q, "1")
    shared.deploy(Q, "2")
    r = shared.infer(Q, "1", quad_inputs(XS))
    body = expect_status(r, 200)
    assert body["model_name"] == Q and str(body["model_version"]) == "1", body
    assert outputs(body)["prediction"]["data"] == V1_OF_XS, body
    body = expect_status(shared.infer(Q, "2", quad_inputs(XS)), 200)
    assert body["model_name"] == Q and str(body["model_version"]) == "2", body
    assert outputs(body)["prediction"]["data"] == V2_OF_XS, body
    assert_quad(shared, Q, "1", 1, xs=[-3.5, 0.0, 0.25, 100.0])
    assert_quad(shared, Q, "2", 2, xs=[-3.5, 0.0, 0.25, 100.0])


def test_infer_echoes_request_id(shared):
    shared.deploy(Q, "1")
    r = shared.post(f"/v2/models/{Q}/versions/1/infer", {"id": "req-42", "inputs": quad_inputs(XS)})
    assert expect_status(r, 200).get("id") == "req-42"


@pytest.mark.parametrize("version,fn", [
    ("1", lambda x: sigmoid(0.8 * x[0] - 0.4 * x[1] + 0.3 * x[2] - 0.1)),
    ("2", lambda x: sigmoid(x[0] + x[1] + x[2] - 1.5)),
])
def test_binary_classifier_outputs_probability_and_label(shared, version, fn):
    rows = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.0, 0.5, 0.25], [0.5, 0.5, 0.5], [3, -2, 1]]
    shared.deploy(BC, version)
    r = shared.infer(BC, version, [{"name": "input", "shape": [len(rows), 3], "datatype": "FP32",
                                    "data": [v for row in rows for v in row]}])
    body = expect_status(r, 200)
    out = outputs(body)
    prob, label = out.get("probability"), out.get("label")
    assert prob and label, f"want probability and label outputs: {body!r}"
    assert prob["datatype"] == "FP32" and prob["shape"] == [len(rows), 1], prob
    assert label["datatype"] == "INT32" and label["shape"] == [len(rows), 1], label
    want = [fn(row) for row in rows]
    assert prob["data"] == pytest.approx(want, abs=1e-5), f"v{version} probabilities"
    assert label["data"] == [1 if p >= 0.5 else 0 for p in want], f"v{version} labels"
    assert all(isinstance(v, int) for v in label["data"]), f"INT32 labels must be integers: {label}"


def test_identity_echoes_every_input(shared):
    shared.deploy("identity", "1")
    inputs = [
        {"name": "a", "datatype": "INT32", "shape": [2, 2], "data": [1, -2, 3, 2147483647]},
        {"name": "b", "datatype": "FP32", "shape": [3], "data": [0.5, -1.25, 3.0]},
    ]
    body = expect_status(shared.infer("identity", "1", inputs), 200)
    out = outputs(body)
    assert set(out) == {"a", "b"}, body
    for i in inputs:
        o = out[i["name"]]
        assert o["datatype"] == i["datatype"] and o["shape"] == i["shape"], (i, o)
        assert o["data"] == pytest.approx(i["data"]), (i, o)


@pytest.mark.parametrize("raw", [
    b"{",
    b'{"inputs": []}',
    b'{"inputs": [{"name": "wrong", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}',
    b'{"inputs": [{"name": "input", "shape": [3, 1], "datatype": "FP32", "data": [1, 2]}]}',
    b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "NOPE", "data": [1]}]}',
    b'{"inputs": [{"name": "input", "shape": [1, 1], "datatype": "FP32", "data": ["x"]}]}',
])
def test_bad_infer_request_returns_400_and_server_keeps_serving(shared, raw):
    shared.deploy(Q, "1")
    expect_error(shared.post(f"/v2/models/{Q}/versions/1/infer", raw=raw), 400)
    assert_quad(shared, Q, "1", 1)


# -- undeploy ------------------------------------------------------------------------------------


def test_undeploy_by_model_and_version_removes_route_readiness_and_listing(shared):
    shared.deploy(Q, "1")
    body = shared.undeploy(Q, "1")
    assert body is None or isinstance(body, dict), body
    assert_gone(shared, Q, "1")
    expect_error(shared.get(f"/v2/models/{Q}/versions/1/ready"), 404)
    expect_error(shared.get(f"/v2/models/{Q}/versions/1"), 404)
    assert find_deployment(shared, Q, "1") is None


def test_undeploy_by_endpoint_name(shared):
    shared.deploy(Q, "2", endpoint_name="quad2")
    shared.undeploy(endpoint_name="quad2")
    assert_gone(shared, Q, "2")
    assert find_deployment(shared, Q, "2") is None


def test_undeploy_unknown_returns_404(shared):
    shared.undeploy(Q, "1", expect=404)  # registered, not deployed
    shared.undeploy("nope", "1", expect=404)
    shared.undeploy(endpoint_name="nope", expect=404)
    shared.deploy(Q, "1")
    shared.undeploy(Q, "1")
    shared.undeploy(Q, "1", expect=404)  # already undeployed


@pytest.mark.parametrize("body", [
    {}, {"model_name": Q}, {"model_name": Q, "version": "1", "force": True},
    {"model_name": "../x", "version": "1"}, {"endpoint_name": "../e"},
])
def test_undeploy_invalid_body_returns_400(shared, body):
    shared.deploy(Q, "1")
    expect_error(shared.post("/deployments/undeploy", body), 400)
    assert_quad(shared, Q, "1", 1)


def test_undeploy_invalid_json_returns_400(shared):
    expect_error(shared.post("/deployments/undeploy", raw=b"{nope"), 400)


def test_redeploy_after_undeploy_works(shared):
    shared.deploy(Q, "1", endpoint_name="quad")
    shared.undeploy(endpoint_name="quad")
    shared.deploy(Q, "1", endpoint_name="quad")
    assert_quad(shared, Q, "1", 1)


# -- GET /deployments, metadata and readiness ----------------------------------------------------


def test_list_deployments_shows_active_ones(shared):
    assert shared.deployments() == []
    shared.deploy(Q, "1", endpoint_name="quad")
    shared.deploy(BC, "2")
    ds = shared.deployments()
    keys = {(d.get("model_name"), str(d.get("version"))) for d in ds}
    assert keys == {(Q, "1"), (BC, "2")}, ds
    for d in ds:
        assert d.get("status") == "active", d
        parse_iso8601(d.get("deployed_at"))
    assert find_deployment(shared, Q, "1").get("endpoint_name") == "quad"


def test_version_metadata_describes_the_plugin(shared):
    shared.deploy(Q, "1")
    body = expect_status(shared.get(f"/v2/models/{Q}/versions/1"), 200)
    assert body.get("name") == Q, body
    assert "1" in body.get("versions", []), f"versions must list '1' as a string: {body!r}"
    assert isinstance(body.get("platform"), str) and body["platform"], body
    assert body.get("inputs") == [{"name": "input", "datatype": "FP32", "shape": [-1, 1]}], body
    assert body.get("outputs") == [{"name": "prediction", "datatype": "FP32", "shape": [-1, 1]}], \
        body


def test_classifier_metadata_lists_both_outputs(shared):
    shared.deploy(BC, "1")
    body = expect_status(shared.get(f"/v2/models/{BC}/versions/1"), 200)
    assert body.get("inputs") == [{"name": "input", "datatype": "FP32", "shape": [-1, 3]}], body
    outs = {o["name"]: o for o in body.get("outputs", [])}
    assert outs.get("probability", {}).get("datatype") == "FP32", body
    assert outs.get("label", {}).get("datatype") == "INT32", body
    assert outs["label"].get("shape") == [-1, 1], body


def test_metadata_and_ready_are_404_for_registered_but_undeployed(shared):
    expect_error(shared.get(f"/v2/models/{Q}/versions/1"), 404)
    expect_error(shared.get(f"/v2/models/{Q}/versions/1/ready"), 404)
    expect_error(shared.get(f"/v2/models/{Q}"), 404)
    expect_error(shared.get(f"/v2/models/{Q}/ready"), 404)


def test_ready_is_200_when_deployed_and_404_after_undeploy(shared):
    shared.deploy(Q, "1")
    r = shared.get(f"/v2/models/{Q}/versions/1/ready")
    assert r.status_code == 200, describe(r)
    r = shared.get(f"/v2/models/{Q}/ready")
    assert r.status_code == 200, describe(r)
    expect_error(shared.get(f"/v2/models/{Q}/versions/2/ready"), 404)
    shared.undeploy(Q, "1")
    expect_error(shared.get(f"/v2/models/{Q}/versions/1/ready"), 404)
    expect_error(shared.get(f"/v2/models/{Q}/ready"), 404)


def test_unversioned_metadata_lists_deployed_versions(shared):
    shared.deploy(Q, "1")
    shared.deploy(Q, "2")
    body = expect_status(shared.get(f"/v2/models/{Q}"), 200)
    assert body.get("name") == Q and set(body.get("versions", [])) >= {"1", "2"}, body
    shared.undeploy(Q, "2")
    body = expect_status(shared.get(f"/v2/models/{Q}"), 200)
    assert "2" not in body.get("versions", []), f"undeployed version still listed: {body!r}"


# -- unversioned infer route ---------------------------------------------------------------------


def test_unversioned_infer_goes_to_the_newest_deployed_version(shared):
    assert_gone(shared, Q, None)
    shared.deploy(Q, "1")
    assert assert_quad(shared, Q, None, 1) == "1"
    shared.deploy(Q, "2")
    assert assert_quad(shared, Q, None, 2) == "2"
    shared.undeploy(Q, "2")
    assert assert_quad(shared, Q, None, 1) == "1"
    shared.undeploy(Q, "1")
    assert_gone(shared, Q, None)


def test_unversioned_infer_compares_versions_numerically(shared):
    # contract: like Triton's "latest" policy, numeric versions compare as numbers (10 > 9)
    shared.upload("num", "9", model_plugin(Q, 1).read_bytes())
    shared.upload("num", "10", model_plugin(Q, 2).read_bytes())
    shared.deploy("num", "9")
    shared.deploy("num", "10")
    assert assert_quad(shared, "num", None, 2) == "10"


# -- seed-style routes ---------------------------------------------------------------------------


def prediction(body):
    assert isinstance(body, dict) and "prediction" in body, f"no prediction: {body!r}"
    return body["prediction"]


def test_predict_by_endpoint_name(shared):
    shared.deploy(Q, "1", endpoint_name="quad")
    body = expect_status(shared.post("/predict/quad", {"input": 2}), 200)
    p = prediction(body)
    assert p == 15 or p == [15], f"scalar input 2 → 15 or [15]: {body!r}"
    assert body.get("model_name") == Q and str(body.get("version")) == "1", body
    body = expect_status(shared.post("/predict/quad", {"input": [1, 2]}), 200)
    assert prediction(body) == V1_OF_XS, body
    shared.undeploy(endpoint_name="quad")
    expect_error(shared.post("/predict/quad", {"input": 2}), 404)


def test_predict_universal_form(shared):
    shared.deploy(Q, "1")
    body = expect_status(shared.post("/predict", {"model_name": Q, "input": [1]}), 200)
    assert prediction(body) == [6] and str(body.get("version")) == "1", body
    shared.deploy(Q, "2")
    body = expect_status(shared.post("/predict", {"model_name": Q, "input": [1]}), 200)
    assert prediction(body) == [0] and str(body.get("version")) == "2", \
        f"no version → newest deployed: {body!r}"
    body = expect_status(shared.post("/predict", {"model_name": Q, "version": "1",
                                                  "input": [2]}), 200)
    assert prediction(body) == [15] and str(body.get("version")) == "1", body
    shared.undeploy(Q, "1")
    shared.undeploy(Q, "2")
    expect_error(shared.post("/predict", {"model_name": Q, "input": [1]}), 404)
    expect_error(shared.post("/predict", {"model_name": Q, "version": "1", "input": [1]}), 404)


def test_predict_errors(shared):
    shared.deploy(Q, "1", endpoint_name="quad")
    expect_error(shared.post("/predict/nope", {"input": 1}), 404)
    expect_error(shared.post("/predict", {"model_name": "nope", "input": 1}), 404)
    expect_error(shared.post("/predict/quad", {}), 400)
    expect_error(shared.post("/predict/quad", {"input": "two"}), 400)
    expect_error(shared.post("/predict/quad", raw=b"{"), 400)
    # contract: seed routes are JSON management-style routes: unknown fields → 400
    expect_error(shared.post("/predict/quad", {"input": 1, "extra": 1}), 400)
    expect_error(shared.post("/predict", {"input": 1}), 400)
    assert prediction(expect_status(shared.post("/predict/quad", {"input": 0}), 200)) in (1, [1])


# -- events --------------------------------------------------------------------------------------


def test_events_record_deploy_and_undeploy_with_time_and_detail(shared):
    shared.deploy(Q, "1", endpoint_name="quad")
    shared.undeploy(endpoint_name="quad")
    evs = [e for e in events(shared) if e.get("model_name") == Q and str(e.get("version")) == "1"]
    kinds = [event_kind(e).lower() for e in evs]
    assert any("undeploy" in k for k in kinds), f"no undeploy event: {evs!r}"
    assert any("deploy" in k and "undeploy" not in k for k in kinds), f"no deploy event: {evs!r}"
    for e in evs:
        event_time(e)
        assert "detail" in e, f"event without detail: {e!r}"


def test_events_can_be_filtered_and_limited(shared):
    shared.deploy(Q, "1")
    shared.deploy(BC, "1")
    only_q = events(shared, model=Q)
    assert only_q and all(e.get("model_name") == Q for e in only_q), only_q
    assert len(events(shared, limit=1)) == 1


def test_event_retention_deletes_only_old_events_and_only_when_asked(server_factory):
    """--event-retention-days: events recorded before the cutoff go (right after start), newer
    ones and every other registry row stay; without the flag nothing is deleted."""
    import sqlite3
    srv = server_factory()
    srv.deploy(Q, "1")
    srv.undeploy(Q, "1")
    srv.deploy(Q, "2")
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "registry.db")
    with db:  # age version 1's events (register, deploy, undeploy) by a year
        aged = db.execute("UPDATE events SET at = '2025-01-01T00:00:00Z' "
                          "WHERE model_name = ? AND version = '1'", (Q,)).rowcount
    db.close()
    assert aged >= 2
    srv.start()  # no flag: kept
    assert sum(1 for e in events(srv, model=Q) if str(e.get("version")) == "1") == aged
    srv.stop()
    srv.args += ["--event-retention-days", "30"]
    srv.start()
    deadline = time.monotonic() + 10
    while any(str(e.get("version")) == "1" for e in events(srv, model=Q)):
        assert time.monotonic() < deadline, events(srv, model=Q)
        time.sleep(0.1)
    left = events(srv, model=Q)
    assert any(str(e.get("version")) == "2" and event_kind(e) == "deploy" for e in left), left
    assert find_deployment(srv, Q, "2") is not None  # deployments are not touched
    assert_quad(srv, Q, "2", 2)
    assert f"event retention: deleted {aged} events" in srv.stderr()


@pytest.mark.parametrize("value", ["-1", "36501", "x"])
def test_event_retention_out_of_range_is_refused(server_factory, value):
    srv = server_factory(args=["--event-retention-days", value], start=False)
    proc = srv.spawn()
    assert proc.wait(timeout=30) != 0
    assert "event-retention-days" in srv.stderr()


# -- restart recovery ----------------------------------------------------------------------------


def test_deployments_are_restored_after_kill_9(server):
    server.deploy(Q, "1", endpoint_name="quad")
    server.deploy(Q, "2")
    server.deploy(BC, "1")
    server.restart(signal.SIGKILL)
    server.wait_ready()
    # contract: restored before /v2/health/ready turns 200, so infer works right away
    assert_quad(server, Q, "1", 1)
    assert_quad(server, Q, "2", 2)
    assert assert_quad(server, Q, None, 2) == "2"
    assert prediction(expect_status(server.post("/predict/quad", {"input": [1, 2]}), 200)) == \
        V1_OF_XS
    keys = {(d.get("model_name"), str(d.get("version")), d.get("status"))
            for d in server.deployments()}
    assert keys == {(Q, "1", "active"), (Q, "2", "active"), (BC, "1", "active")}, keys


def test_deployments_are_restored_after_clean_restart_and_undeploys_stay_undone(server):
    server.upload("uploaded", "1", model_plugin(Q, 2).read_bytes())
    server.upload("uploaded", "2", model_plugin(Q, 1).read_bytes())
    server.deploy(Q, "1")
    server.deploy(Q, "2")
    server.undeploy(Q, "2")
    server.deploy("uploaded", "1")
    server.restart(signal.SIGTERM)
    server.wait_ready()
    assert_quad(server, Q, "1", 1)
    assert_gone(server, Q, "2")
    assert_quad(server, "uploaded", "1", 2)  # served from the content-addressed store
    server.deploy("uploaded", "2")  # an uploaded, never-deployed version survives too
    assert_quad(server, "uploaded", "2", 1)


def test_restart_marks_broken_plugins_failed_and_restores_the_rest(server, tmp_path):
    truncated = copy_plugin(model_plugin(Q, 1), tmp_path / "t")
    missing = copy_plugin(model_plugin(Q, 2), tmp_path / "m")
    server.register("truncated", "1", truncated)
    server.register("missing", "1", missing)
    server.deploy("truncated", "1")
    server.deploy("missing", "1")
    server.deploy(BC, "2")
    server.stop()
    store = server.data_dir / "plugins"
    t_path, m_path = store / f"{sha256_file(truncated)}.so", store / f"{sha256_file(missing)}.so"
    assert t_path.is_file() and m_path.is_file(), sorted(p.name for p in store.glob("*"))
    with open(t_path, "r+b") as f:
        f.truncate(100)
    m_path.unlink()
    server.start()
    server.wait_ready()
    for name in ("truncated", "missing"):
        d = find_deployment(server, name, "1")
        assert d is not None, f"{name}/1 vanished from /deployments: {server.deployments()!r}"
        assert d.get("status") == "failed", f"{name}/1 should be failed: {d!r}"
        reason = d.get("reason")  # contract: the failure reason is in "reason"
        assert isinstance(reason, str) and reason.strip(), f"{name}/1 has no reason: {d!r}"
        expect_error(server.infer(name, "1", quad_inputs(XS)), 404, 503)
    r = server.infer(BC, "2", [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                "data": [1, 1, 1]}])
    assert outputs(expect_status(r, 200))["label"]["data"] == [1]
    fails = [e for e in events(server) if e.get("model_name") in ("truncated", "missing")
             and "fail" in event_kind(e).lower()]
    assert {e["model_name"] for e in fails} == {"truncated", "missing"}, \
        f"restore failures must be events: {events(server)!r}"
    # contract: undeploying a failed deployment closes its record (200), then it is gone
    server.undeploy("truncated", "1")
    assert find_deployment(server, "truncated", "1") is None


# -- concurrency ---------------------------------------------------------------------------------


class Hammer(threading.Thread):
    """Sends one request shape in a loop on its own Session until stopped (bounded by time)."""

    def __init__(self, srv, method, path, body, check, max_s=120):
        super().__init__(daemon=True)
        self.srv, self.method, self.path, self.body, self.check = srv, method, path, body, check
        self.max_s = max_s
        self.stop_flag = threading.Event()
        self.count = 0
        self.statuses = collections.Counter()
        self.failures = []

    def run(self):
        deadline = time.monotonic() + self.max_s
        with requests.Session() as s:
            while not self.stop_flag.is_set() and time.monotonic() < deadline:
                try:
                    r = s.request(self.method, self.srv.url(self.path), json=self.body, timeout=10)
                    self.statuses[r.status_code] += 1
                    problem = self.check(r)
                except requests.RequestException as e:  # a dropped connection is a failure
                    self.statuses["exception"] += 1
                    problem = f"{type(e).__name__}: {e}"
                if problem and len(self.failures) < 20:
                    self.failures.append(problem)
                self.count += 1

    def finish(self):
        self.stop_flag.set()
        self.join(timeout=30)
        assert not self.is_alive(), f"hammer on {self.path} did not stop"

    def wait_progress(self, n=2, timeout=5.0):
        target = self.count + n
        deadline = time.monotonic() + timeout
        while self.count < target and time.monotonic() < deadline and self.is_alive():
            time.sleep(0.001)


def quad_check(math_version, allowed=(200,), version_from_body=False):
    def check(r):
        if r.status_code not in allowed:
            return f"status {r.status_code}: {r.text[:200]}"
        try:
            body = r.json()
        except ValueError:
            return f"status {r.status_code}: non-JSON body {r.text[:200]!r}"
        if r.status_code != 200:
            return None if isinstance(body.get("error"), str) else f"no error string: {body!r}"
        mv = math_version
        if version_from_body:
            mv = 1 if str(body.get("model_version")) == "1" else 2
        fn = quad_v1 if mv == 1 else quad_v2
        try:
            data = outputs(body)["prediction"]["data"]
        except (AssertionError, KeyError) as e:
            return f"bad body {body!r}: {e}"
        if data != [fn(x) for x in XS]:
            return f"wrong result {data} for v{mv}: {body!r}"
        return None
    return check


def status_check(allowed):
    def check(r):
        if r.status_code not in allowed:
            return f"status {r.status_code}: {r.text[:200]}"
        return None
    return check


@pytest.mark.stress
def test_hammering_v1_while_v2_is_deployed_and_undeployed_200_times_has_no_errors(server):
    server.deploy(Q, "1")
    hammers = [Hammer(server, "POST", f"/v2/models/{Q}/versions/1/infer",
                      {"inputs": quad_inputs(XS)}, quad_check(1)) for _ in range(2)]
    for h in hammers:
        h.start()
    try:
        for _ in range(200):
            server.deploy(Q, "2")
            server.undeploy(Q, "2")
    finally:
        for h in hammers:
            h.finish()
    total = sum(h.count for h in hammers)
    failures = [f for h in hammers for f in h.failures]
    assert total > 0, "the hammer sent nothing"
    assert not failures, f"{len(failures)} v1 errors during v2 deploy cycles " \
        f"({[dict(h.statuses) for h in hammers]}): {failures[:5]}"
    assert server.alive()


@pytest.mark.stress
def test_hammering_v2_while_it_is_undeployed_gets_only_200_or_404(server):
    server.deploy(Q, "1")
    server.deploy(Q, "2", endpoint_name="q2")
    infer_body = {"inputs": quad_inputs(XS)}
    hammers = [
        Hammer(server, "POST", f"/v2/models/{Q}/versions/2/infer", infer_body,
               quad_check(2, allowed=(200, 404))),
        Hammer(server, "POST", f"/v2/models/{Q}/versions/2/infer", infer_body,
               quad_check(2, allowed=(200, 404))),
        Hammer(server, "POST", f"/v2/models/{Q}/infer", infer_body,
               quad_check(None, allowed=(200,), version_from_body=True)),
        Hammer(server, "POST", "/predict/q2", {"input": XS}, status_check((200, 404))),
        Hammer(server, "GET", f"/v2/models/{Q}/versions/2", None, status_check((200, 404))),
        Hammer(server, "GET", f"/v2/models/{Q}/versions/2/ready", None, status_check((200, 404))),
    ]
    for h in hammers:
        h.start()
    try:
        for _ in range(40):
            hammers[0].wait_progress()
            server.undeploy(Q, "2")
            hammers[0].wait_progress()
            server.deploy(Q, "2", endpoint_name="q2")
    finally:
        for h in hammers:
            h.finish()
    report = {h.path: dict(h.statuses) for h in hammers}
    failures = [f"{h.path}: {f}" for h in hammers for f in h.failures]
    assert not failures, f"bad answers while v2 was undeployed/redeployed {report}: {failures[:5]}"
    assert hammers[0].statuses[200] and hammers[0].statuses[404], \
        f"the hammer never saw both states: {report}"
    assert server.alive() and server.get("/v2/health/live").status_code == 200, server.stderr()
    assert_quad(server, Q, "2", 2)


@pytest.mark.stress
def test_concurrent_deploys_of_one_version_yield_one_201_and_409s(server):
    results = []
    barrier = threading.Barrier(8)

    def go():
        barrier.wait(timeout=10)
        results.append(server.post("/deployments/deploy", {"model_name": Q, "version": "1"}))

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 7, f"concurrent deploys: {codes}"
    for r in results:
        if r.status_code == 409:
            expect_error(r, 409)
    assert len([d for d in server.deployments() if d.get("model_name") == Q]) == 1
    assert_quad(server, Q, "1", 1)


@pytest.mark.stress
def test_different_models_deploy_and_undeploy_in_parallel(server):
    targets = [(Q, "1"), (Q, "2"), (BC, "1"), (BC, "2"), ("identity", "1")]
    for _ in range(5):
        for action, expect in (("deploy", 201), ("undeploy", 200)):
            results = {}
            barrier = threading.Barrier(len(targets))

            def go(m, v, action=action, barrier=barrier, results=results):
                barrier.wait(timeout=10)
                results[(m, v)] = server.post(f"/deployments/{action}",
                                              {"model_name": m, "version": v})

            threads = [threading.Thread(target=go, args=t) for t in targets]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=30)
            for key, r in results.items():
                assert r.status_code == expect, f"{action} {key}: {describe(r)}"
            if action == "deploy":
                assert_quad(server, Q, "1", 1)
                assert_quad(server, Q, "2", 2)
    assert server.deployments() == []


SLOW_MS = 500


@pytest.mark.stress
@pytest.mark.parametrize("route", ["versioned", "unversioned", "predict_endpoint"])
def test_undeploy_waits_for_in_flight_requests(server, route):
    server.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": SLOW_MS})
    server.deploy("slow", "1", endpoint_name="slowpoke")
    if route == "predict_endpoint":
        path, body = "/predict/slowpoke", {"input": XS}
    else:
        path = "/v2/models/slow" + ("/versions/1" if route == "versioned" else "") + "/infer"
        body = {"inputs": quad_inputs(XS)}
    results = [None] * 3

    def call(i):
        try:
            results[i] = requests.post(server.url(path), json=body, timeout=15)
        except requests.RequestException as e:
            results[i] = e

    t0 = time.monotonic()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    time.sleep(0.15)  # let the requests reach the plugin, which holds them for SLOW_MS
    server.undeploy("slow", "1")
    undeploy_done = time.monotonic() - t0
    for t in threads:
        t.join(timeout=20)
    for i, r in enumerate(results):
        assert isinstance(r, requests.Response), f"in-flight request {i} failed: {r!r}"
        got = expect_status(r, 200)
        data = got["prediction"] if route == "predict_endpoint" else \
            outputs(got)["prediction"]["data"]
        assert data == V1_OF_XS, f"in-flight request {i}: {got!r}"
    assert undeploy_done >= (SLOW_MS - 100) / 1000, \
        f"undeploy returned after {undeploy_done:.3f}s, before the in-flight requests " \
        f"(held {SLOW_MS} ms) could have finished"
    r = requests.post(server.url(path), json=body, timeout=15)
    expect_error(r, 404)
    assert server.alive()
