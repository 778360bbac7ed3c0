"""Canary deployments and stats over HTTP (issue 6): traffic splits, sticky routing, promote and
rollback, the automatic rollback guard, exact stats, persistence across restarts, /metrics."""
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import expect_error, expect_status, fixture_plugin, quad_inputs

Q = "quadratic_predictor"
UNVERSIONED = f"/v2/models/{Q}/infer"


def two_versions(srv, weights=None):
    srv.deploy(Q, "1")
    srv.deploy(Q, "2")
    if weights is not None:
        expect_status(srv.put(f"/deployments/{Q}/traffic", json=weights), 200)


def versions_hit(srv, n, headers=None, body=None):
    counts = {}
    with requests.Session() as s:
        for _ in range(n):
            r = s.post(srv.url(UNVERSIONED), json=body or {"inputs": quad_inputs([1.0])},
                       headers=headers or {}, timeout=10)
            assert r.status_code == 200, r.text
            v = r.json()["model_version"]
            counts[v] = counts.get(v, 0) + 1
    return counts


def traffic(srv, model=Q):
    return expect_status(srv.get(f"/deployments/{model}/traffic"), 200)


def stats_of(srv, version, model=Q):
    return expect_status(srv.get(f"/deployments/{model}/{version}/stats"), 200)


# ---- splits ---------------------------------------------------------------------------------

def test_a_90_10_split_sends_about_10_percent_to_v2(shared):
    two_versions(shared, {"1": 90, "2": 10})
    counts = versions_hit(shared, 2000)
    share = counts.get("2", 0) / 2000
    assert 0.06 <= share <= 0.14, counts


def test_the_same_routing_key_always_lands_on_the_same_version(shared):
    two_versions(shared, {"1": 50, "2": 50})
    for key in ("user-1", "user-2", "user-3"):
        counts = versions_hit(shared, 100, headers={"X-Routing-Key": key})
        assert len(counts) == 1, (key, counts)
    body = {"inputs": quad_inputs([1.0]), "parameters": {"routing_key": "user-7"}}
    assert len(versions_hit(shared, 50, body=body)) == 1
    spread = set()
    for i in range(40):
        spread |= set(versions_hit(shared, 1, headers={"X-Routing-Key": f"k{i}"}))
    assert spread == {"1", "2"}, "different keys should reach both versions"


@pytest.mark.parametrize("weights,status", [
    ({"1": 90, "2": 20}, 400), ({"1": 110, "2": -10}, 400), ({"1": 50.5, "2": 49.5}, 400),
    ({}, 400), ({"1": 90, "3": 10}, 409), ({"1": "90", "2": 10}, 400),
])
def test_invalid_splits_are_refused(shared, weights, status):
    two_versions(shared)
    expect_error(shared.put(f"/deployments/{Q}/traffic", json=weights), status)
    assert traffic(shared)["weights"] is None


def test_split_of_a_model_without_deployments_is_404(shared):
    expect_error(shared.put("/deployments/nosuchmodel/traffic", json={"1": 100}), 404)


def test_promote_and_rollback(shared):
    two_versions(shared, {"1": 90, "2": 10})
    expect_status(shared.post(f"/deployments/{Q}/promote", {"version": "2"}), 200)
    assert versions_hit(shared, 50) == {"2": 50}
    expect_status(shared.post(f"/deployments/{Q}/rollback"), 200)
    assert traffic(shared)["weights"] == {"1": 90, "2": 10}
    expect_error(shared.post(f"/deployments/{Q}/promote", {"version": "9"}), 409)
    expect_error(shared.post(f"/deployments/{Q}/promote", {"v": "2"}), 400)
    kinds = [e["kind"] for e in expect_status(shared.get("/deployments/events?limit=10"),
                                              200)["events"]]
    assert "rollback" in kinds and "traffic" in kinds, kinds


def test_rollback_without_history_is_404(server):
    server.deploy(Q, "1")
    expect_error(server.post(f"/deployments/{Q}/rollback"), 404)


@pytest.mark.stress
def test_undeploying_a_version_inside_a_split_loses_no_request(shared):
    two_versions(shared, {"1": 50, "2": 50})
    errors, stop = [], threading.Event()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(shared.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])},
                           timeout=10)
                if r.status_code != 200:
                    errors.append((r.status_code, r.text))

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    shared.undeploy(Q, "2")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors[:5]
    assert traffic(shared)["weights"] == {"1": 100}
    assert versions_hit(shared, 20) == {"1": 20}


def test_guard_takes_traffic_from_a_failing_canary(server):
    two_versions(server)
    server.register(Q, "3", fixture_plugin("flaky"), config={"fail_rate": 0.5})
    server.deploy(Q, "3")
    expect_status(server.put(f"/deployments/{Q}/traffic", json={
        "weights": {"1": 50, "3": 50},
        "guard": {"max_error_rate": 0.05, "min_requests": 50, "window_s": 10}}), 200)
    with requests.Session() as s:
        for _ in range(400):
            s.post(server.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])}, timeout=10)
    deadline = time.monotonic() + 10
    while traffic(server)["weights"].get("3") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    t = traffic(server)
    assert t["weights"] == {"1": 100, "2": 0, "3": 0}, t
    assert t["guard"]["state"] == "tripped" and "error rate" in t["guard"]["reason"], t
    listed = expect_status(server.get("/deployments"), 200)["traffic"]
    assert listed[0]["guard"]["state"] == "tripped", listed
    events = expect_status(server.get("/deployments/events?limit=20"), 200)["events"]
    assert any(e["kind"] == "guard_rollback" for e in events), events
    assert versions_hit(server, 50) == {"1": 50}


# ---- stats ----------------------------------------------------------------------------------

def test_stats_are_exact(shared):
    shared.deploy(Q, "1")
    before = stats_of(shared, "1")["request_count"]
    with requests.Session() as s:
        for _ in range(300):
            assert s.post(shared.url(f"/v2/models/{Q}/versions/1/infer"),
                          json={"inputs": quad_inputs([1.0])}, timeout=10).status_code == 200
        for _ in range(7):
            s.post(shared.url(f"/v2/models/{Q}/versions/1/infer"), json={"inputs": []},
                   timeout=10)
    st = stats_of(shared, "1")
    assert st["request_count"] - before == 307, st
    assert st["error_4xx"] == 7 and st["error_5xx"] == 0 and st["error_count"] == 7, st
    assert st["in_flight"] == 0, st
    assert 0 < st["p50_ms"] <= st["p95_ms"] <= st["p99_ms"], st
    assert sum(b["count"] for b in st["histogram"]) == st["request_count"], st
    listed = expect_status(shared.get("/models/stats"), 200)["stats"]
    row = [x for x in listed if x["model_name"] == Q and x["version"] == "1"][0]
    for field in ("avg_latency_ms", "deployed_at", "status", "last_request_at"):
        assert field in row, row


def test_stats_of_an_undeployed_version_is_404(shared):
    expect_error(shared.get(f"/deployments/{Q}/1/stats"), 404)


def test_stats_and_split_survive_restarts(server_factory):
    srv = server_factory(args=["--stats-flush-s", "1"])
    two_versions(srv, {"weights": {"1": 90, "2": 10},
                       "guard": {"max_error_rate": 0.2, "min_requests": 10, "window_s": 5}})
    versions_hit(srv, 100)
    total = stats_of(srv, "1")["request_count"] + stats_of(srv, "2")["request_count"]
    assert total == 100
    srv.restart()
    assert stats_of(srv, "1")["request_count"] + stats_of(srv, "2")["request_count"] == 100
    t = traffic(srv)
    assert t["weights"] == {"1": 90, "2": 10} and t["guard"]["max_error_rate"] == 0.2, t
    versions_hit(srv, 10)
    time.sleep(1.5)  # one flush period
    srv.kill()
    srv.start()
    srv.wait_ready()
    assert stats_of(srv, "1")["request_count"] + stats_of(srv, "2")["request_count"] == 110
    assert traffic(srv)["weights"] == {"1": 90, "2": 10}


# ---- metrics --------------------------------------------------------------------------------

def test_metrics_exposition_has_the_families_and_passes_promtool(shared):
    two_versions(shared, {"1": 90, "2": 10})
    with requests.Session() as s:
        for _ in range(5):
            s.post(shared.url(f"/v2/models/{Q}/versions/1/infer"),
                   json={"inputs": quad_inputs([1.0])}, timeout=10)
    r = shared.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text
    text = r.text
    line = f'dynserve_inference_requests_total{{model="{Q}",version="1",code="200"}}'
    count = [ln for ln in text.splitlines() if ln.startswith(line)]
    assert count and float(count[0].split()[-1]) >= 5, text
    for family in ("dynserve_inference_duration_seconds_bucket", "dynserve_in_flight_requests",
                   'dynserve_deployments{status="active"} 2', "dynserve_traffic_weight",
                   "process_resident_memory_bytes"):
        assert family in text, family
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed")
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
