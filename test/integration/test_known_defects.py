"""The known defects listed in issue 11, each with a test."""
import requests

from conftest import expect_status, model_plugin, quad_inputs

Q = "quadratic_predictor"


def test_identical_plugin_bytes_never_share_a_dlopen_image(server):
    data = model_plugin(Q, 1).read_bytes()
    server.upload("twin", 1, data)
    server.upload("twin", 2, data)
    server.deploy("twin", 1)
    server.deploy("twin", 2)
    maps = open(f"/proc/{server.proc.pid}/maps").read()
    loaded = {line.split()[-1] for line in maps.splitlines() if "/plugins/loaded/twin+" in line}
    assert len(loaded) == 2, loaded
    for v in (1, 2):
        body = expect_status(server.infer("twin", v, quad_inputs([1.0])), 200)
        assert body["outputs"][0]["data"] == [6.0]


def test_identity_metadata_says_any(server):
    server.deploy("identity", 1)
    meta = expect_status(server.get("/v2/models/identity/versions/1"), 200)
    for io in meta["inputs"] + meta["outputs"]:
        assert io["datatype"] == "ANY" and io["shape"] == [-1], meta


def stats_row(srv, model, version):
    rows = expect_status(srv.get("/models/stats"), 200)["stats"]
    return next(r for r in rows if r["model_name"] == model and str(r["version"]) == str(version))


def test_last_request_at_survives_a_restart(server):
    server.deploy(Q, 1)
    expect_status(server.infer(Q, 1, quad_inputs([1.0])), 200)
    before = stats_row(server, Q, 1)
    assert before["last_request_at"] is not None
    server.restart()
    server.wait_ready()
    after = stats_row(server, Q, 1)
    assert after["request_count"] == 1
    assert after["last_request_at"] == before["last_request_at"], (before, after)


def test_traffic_and_rollback_events_have_a_null_version(server):
    server.deploy(Q, 1)
    server.deploy(Q, 2)
    expect_status(server.put(f"/deployments/{Q}/traffic", json={"1": 50, "2": 50}), 200)
    expect_status(server.put(f"/deployments/{Q}/traffic", json={"1": 90, "2": 10}), 200)
    expect_status(server.post(f"/deployments/{Q}/rollback"), 200)
    events = expect_status(server.get("/deployments/events?limit=50"), 200)["events"]
    model_wide = [e for e in events if e["kind"] in ("traffic", "rollback")]
    assert model_wide and all(e["version"] is None for e in model_wide), model_wide


def test_lifetime_totals_per_version_outlive_its_deployments(server):
    for round_ in range(2):
        server.deploy(Q, 1)
        for _ in range(3):
            expect_status(server.infer(Q, 1, quad_inputs([1.0])), 200)
        server.undeploy(Q, 1)
    server.restart()
    server.wait_ready()
    versions = expect_status(server.get("/models/stats"), 200)["versions"]
    v1 = [v for v in versions if v["model_name"] == Q and v["version"] == "1"]
    assert v1 and v1[0]["request_count"] == 6 and v1[0]["deployed"] is False, versions
    server.deploy(Q, 1)
    expect_status(server.infer(Q, 1, quad_inputs([1.0])), 200)
    versions = expect_status(server.get("/models/stats"), 200)["versions"]
    v1 = [v for v in versions if v["model_name"] == Q and v["version"] == "1"]
    assert v1[0]["request_count"] == 7 and v1[0]["deployed"] is True, v1


def test_a_request_to_a_removed_route_leaves_the_connection_usable(server):
    server.deploy(Q, 2)
    server.undeploy(Q, 2)
    with requests.Session() as s:
        url = server.url(f"/v2/models/{Q}/versions/2/infer")
        for _ in range(3):
            r = s.post(url, json={"inputs": quad_inputs([1.0])}, timeout=10)
            assert r.status_code == 404 and r.json()["error"]
        assert s.get(server.url("/v2/health/live"), timeout=10).status_code == 200
