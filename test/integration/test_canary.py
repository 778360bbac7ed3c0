"""Canary deployments and stats over HTTP (issue 6): traffic splits, sticky routing, promote and
rollback, the automatic rollback guard, exact stats, persistence across restarts, /metrics."""
import os
import re
import shutil
import subprocess
import threading
import time

import pytest
import requests

from conftest import describe, expect_error, expect_status, fixture_plugin, quad_inputs

Q = "quadratic_predictor"
UNVERSIONED = f"/v2/models/{Q}/infer"
EXPECTED_AT_1 = {"1": 6.0, "2": 0.0}  # v1: 2x²+3x+1, v2: x²−1 at x = 1


def versioned(v, model=Q):
    return f"/v2/models/{model}/versions/{v}/infer"


def put_traffic(srv, body, model=Q):
    return expect_status(srv.put(f"/deployments/{model}/traffic", json=body), 200)


def two_versions(srv, weights=None):
    srv.deploy(Q, "1")
    srv.deploy(Q, "2")
    if weights is not None:
        put_traffic(srv, weights)


def versions_hit(srv, n, headers=None, body=None, check_outputs=True):
    """Send n unversioned requests that must all succeed; {version: count}."""
    counts = {}
    with requests.Session() as s:
        for _ in range(n):
            r = s.post(srv.url(UNVERSIONED), json=body or {"inputs": quad_inputs([1.0])},
                       headers=headers or {}, timeout=10)
            assert r.status_code == 200, describe(r)
            out = r.json()
            v = out["model_version"]
            if check_outputs and v in EXPECTED_AT_1:  # the answer really came from version v
                assert out["outputs"][0]["data"] == [EXPECTED_AT_1[v]], out
            counts[v] = counts.get(v, 0) + 1
    return counts


def traffic(srv, model=Q):
    return expect_status(srv.get(f"/deployments/{model}/traffic"), 200)


def nonzero(weights):
    return {v: w for v, w in weights.items() if w}


def stats_of(srv, version, model=Q):
    return expect_status(srv.get(f"/deployments/{model}/{version}/stats"), 200)


def events(srv, limit=50):
    return expect_status(srv.get(f"/deployments/events?limit={limit}"), 200)["events"]


# ---- splits ---------------------------------------------------------------------------------

def test_a_90_10_split_sends_about_10_percent_to_v2(shared):
    two_versions(shared)
    t = put_traffic(shared, {"1": 90, "2": 10})
    assert t["model_name"] == Q and t["weights"] == {"1": 90, "2": 10}, t
    assert traffic(shared)["weights"] == {"1": 90, "2": 10}
    counts = versions_hit(shared, 2000)
    assert set(counts) <= {"1", "2"}, counts
    share = counts.get("2", 0) / 2000
    assert 0.06 <= share <= 0.14, counts
    listed = expect_status(shared.get("/deployments"), 200)["traffic"]
    mine = [x for x in listed if x["model_name"] == Q]
    assert len(mine) == 1 and mine[0]["weights"] == {"1": 90, "2": 10}, listed


def test_the_same_routing_key_always_lands_on_the_same_version(shared):
    two_versions(shared, {"1": 50, "2": 50})
    for key in ("user-1", "user-2", "user-3", "ünïcode-key"):
        counts = versions_hit(shared, 100, headers={"X-Routing-Key": key.encode()})
        assert len(counts) == 1, (key, counts)
    for key in ("user-7", "user-8"):
        body = {"inputs": quad_inputs([1.0]), "parameters": {"routing_key": key}}
        counts = versions_hit(shared, 100, body=body)
        assert len(counts) == 1, (key, counts)
    spread = {}
    for i in range(60):
        (v,) = versions_hit(shared, 1, headers={"X-Routing-Key": f"k{i}"})
        spread[v] = spread.get(v, 0) + 1
    assert set(spread) == {"1", "2"}, f"different keys should reach both versions: {spread}"
    assert min(spread.values()) >= 10, spread  # 50/50: not all keys hash to one side


def test_routing_keys_are_hashed_into_the_weights(shared):
    two_versions(shared, {"1": 90, "2": 10})
    per_key = {}
    with requests.Session() as s:
        for i in range(400):
            r = s.post(shared.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])},
                       headers={"X-Routing-Key": f"customer-{i}"}, timeout=10)
            assert r.status_code == 200, describe(r)
            per_key[i] = r.json()["model_version"]
    share = sum(v == "2" for v in per_key.values()) / len(per_key)
    assert 0.04 <= share <= 0.18, f"{share:.1%} of keys on v2 for a 90/10 split"


INVALID_SPLITS = [
    ("sum above 100", {"1": 90, "2": 20}, 400),
    ("sum below 100", {"1": 50, "2": 20}, 400),
    ("negative", {"1": 110, "2": -10}, 400),
    ("fractional", {"1": 50.5, "2": 49.5}, 400),
    ("empty", {}, 400),
    ("string weight", {"1": "90", "2": 10}, 400),
    ("bool weight", {"1": True, "2": 99}, 400),
    ("null weight", {"1": None, "2": 100}, 400),
    ("over 100 alone", {"1": 200, "2": -100}, 400),
    ("not an object", [90, 10], 400),
    ("weights form, bad sum", {"weights": {"1": 90, "2": 5}}, 400),
    ("weights form, unknown field", {"weights": {"1": 100, "2": 0}, "extra": 1}, 400),
    ("guard not an object", {"weights": {"1": 100, "2": 0}, "guard": 5}, 400),
    ("guard unknown field", {"weights": {"1": 100, "2": 0}, "guard": {"bogus": 1}}, 400),
    ("guard error rate above 1", {"weights": {"1": 100, "2": 0},
                                  "guard": {"max_error_rate": 2}}, 400),
    ("guard negative min_requests", {"weights": {"1": 100, "2": 0},
                                     "guard": {"min_requests": -1}}, 400),
    ("undeployed version", {"1": 90, "3": 10}, 409),
    ("unregistered version", {"1": 90, "77": 10}, 409),
]


@pytest.mark.parametrize("what,weights,status", INVALID_SPLITS, ids=[c[0] for c in INVALID_SPLITS])
def test_invalid_splits_are_refused_and_leave_the_split_alone(shared, what, weights, status):
    two_versions(shared, {"1": 70, "2": 30})
    expect_error(shared.put(f"/deployments/{Q}/traffic", json=weights), status)
    assert traffic(shared)["weights"] == {"1": 70, "2": 30}


def test_invalid_json_split_is_400(shared):
    two_versions(shared)
    expect_error(shared.put(f"/deployments/{Q}/traffic", data=b'{"1": 90,'), 400)


def test_split_of_an_unknown_model_is_404(shared):
    expect_error(shared.put("/deployments/nosuchmodel/traffic", json={"1": 100}), 404)
    expect_error(shared.post("/deployments/nosuchmodel/promote", {"version": "1"}), 404)
    expect_error(shared.post("/deployments/nosuchmodel/rollback"), 404)


def test_reading_the_split_of_an_unknown_model_is_404(shared):
    # contract: like every other route naming a model that does not exist (PUT traffic, promote,
    # rollback, /v2/models/<m>), GET answers 404 rather than an empty split
    expect_error(shared.get("/deployments/nosuchmodel/traffic"), 404)


def test_promote_and_rollback(shared):
    two_versions(shared, {"1": 90, "2": 10})
    body = expect_status(shared.post(f"/deployments/{Q}/promote", {"version": "2"}), 200)
    assert nonzero(body["weights"]) == {"2": 100}, body
    assert nonzero(traffic(shared)["weights"]) == {"2": 100}
    assert versions_hit(shared, 100) == {"2": 100}
    expect_status(shared.post(f"/deployments/{Q}/rollback"), 200)
    assert traffic(shared)["weights"] == {"1": 90, "2": 10}
    assert set(versions_hit(shared, 300)) == {"1", "2"}
    expect_error(shared.post(f"/deployments/{Q}/promote", {"version": "9"}), 409)
    expect_error(shared.post(f"/deployments/{Q}/promote", {"v": "2"}), 400)
    expect_error(shared.post(f"/deployments/{Q}/promote", {"version": "2", "x": 1}), 400)
    assert traffic(shared)["weights"] == {"1": 90, "2": 10}, "a refused promote changed the split"
    kinds = [e["kind"] for e in events(shared, 10)]
    assert "rollback" in kinds and "traffic" in kinds, kinds


def test_rollback_goes_back_one_change_at_a_time(shared):
    two_versions(shared, {"1": 90, "2": 10})
    put_traffic(shared, {"1": 50, "2": 50})
    put_traffic(shared, {"1": 20, "2": 80})
    expect_status(shared.post(f"/deployments/{Q}/rollback"), 200)
    assert traffic(shared)["weights"] == {"1": 50, "2": 50}
    expect_status(shared.post(f"/deployments/{Q}/rollback"), 200)
    assert traffic(shared)["weights"] == {"1": 90, "2": 10}


def test_rollback_without_history_is_404(shared):
    # no test in this module ever gives binary_classifier a split
    shared.deploy("binary_classifier", "1")
    shared.deploy("binary_classifier", "2")
    expect_error(shared.post("/deployments/binary_classifier/rollback"), 404)


@pytest.mark.stress
def test_undeploying_a_version_inside_a_split_loses_no_request(shared):
    two_versions(shared, {"1": 50, "2": 50})
    statuses, errors, stop = {}, [], threading.Event()
    lock = threading.Lock()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(shared.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])},
                           timeout=10)
                with lock:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code != 200:
                        errors.append((r.status_code, r.text))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.4)
    shared.undeploy(Q, "2")
    time.sleep(0.4)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not errors, (statuses, errors[:5])
    assert statuses.get(200, 0) > 20, statuses
    assert traffic(shared)["weights"] == {"1": 100}
    assert versions_hit(shared, 50) == {"1": 50}


@pytest.mark.stress
def test_split_changes_under_load_never_fail_a_request(shared):
    two_versions(shared, {"1": 50, "2": 50})
    errors, stop, seen = [], threading.Event(), set()

    def client():
        with requests.Session() as s:
            while not stop.is_set():
                r = s.post(shared.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])},
                           timeout=10)
                if r.status_code != 200:
                    errors.append((r.status_code, r.text))
                else:
                    seen.add(r.json()["model_version"])

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    for w in [{"1": 100, "2": 0}, {"1": 0, "2": 100}, {"1": 30, "2": 70}] * 5:
        put_traffic(shared, w)
        time.sleep(0.03)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors[:5]
    assert seen == {"1", "2"}, seen


# ---- the guard --------------------------------------------------------------------------------

def test_guard_takes_traffic_from_a_failing_canary(server):
    two_versions(server)
    server.register(Q, "3", fixture_plugin("flaky"),
                    config={"fail_rate": 0.5, "sleep_ms": 0, "sleep_rate": 0.0})
    server.deploy(Q, "3")
    t = put_traffic(server, {"weights": {"1": 50, "3": 50},
                             "guard": {"max_error_rate": 0.05, "min_requests": 50,
                                       "window_s": 10}})
    assert t["guard"]["max_error_rate"] == 0.05 and t["guard"]["state"] == "armed", t
    codes = {}
    with requests.Session() as s:
        for _ in range(400):
            r = s.post(server.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])}, timeout=10)
            codes[r.status_code] = codes.get(r.status_code, 0) + 1
            if r.status_code != 200:
                expect_error(r, 500)
            if traffic(server)["weights"].get("3") == 0:
                break  # the guard already acted
    assert codes.get(500, 0) > 0, f"the flaky canary never failed: {codes}"
    deadline = time.monotonic() + 10
    while traffic(server)["weights"].get("3") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    t = traffic(server)
    assert t["weights"].get("3") == 0 and t["weights"]["1"] == 100, \
        f"the guard did not take the canary's traffic within 10 s: {t}; client saw {codes}"
    assert t["guard"]["state"] == "tripped", t
    assert "error rate" in t["guard"]["reason"] and "3" in t["guard"]["reason"], t
    listed = [x for x in expect_status(server.get("/deployments"), 200)["traffic"]
              if x["model_name"] == Q]
    assert listed and listed[0]["guard"]["state"] == "tripped", listed
    assert "error rate" in listed[0]["guard"]["reason"], listed
    guard_events = [e for e in events(server) if e["kind"] == "guard_rollback"]
    assert guard_events and guard_events[0]["model_name"] == Q, events(server)
    assert "error rate" in str(guard_events[0]), guard_events
    rows = {r["version"]: r for r in expect_status(server.get("/models/stats"), 200)["stats"]
            if r["model_name"] == Q}
    assert rows["3"].get("traffic_weight") == 0 and rows["3"]["error_5xx"] > 0, rows
    assert versions_hit(server, 100) == {"1": 100}


def test_guard_takes_traffic_from_a_slow_canary(shared):
    shared.deploy(Q, "1")
    shared.register(Q, "4", fixture_plugin("flaky"),
                    config={"fail_rate": 0.0, "sleep_ms": 30, "sleep_rate": 1.0})
    shared.deploy(Q, "4")
    put_traffic(shared, {"weights": {"1": 50, "4": 50},
                         "guard": {"max_p99_ratio": 2.0, "min_requests": 20, "window_s": 10}})
    versions_hit(shared, 100, check_outputs=False)
    deadline = time.monotonic() + 10
    while traffic(shared)["weights"].get("4") != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    t = traffic(shared)
    assert t["weights"] == {"1": 100, "4": 0} and t["guard"]["state"] == "tripped", t
    assert "p99" in t["guard"]["reason"], t


def test_a_healthy_canary_keeps_its_traffic(shared):
    two_versions(shared)
    put_traffic(shared, {"weights": {"1": 50, "2": 50},
                         "guard": {"max_error_rate": 0.05, "min_requests": 20, "window_s": 5}})
    versions_hit(shared, 100)
    time.sleep(1.5)  # at least one guard evaluation
    t = traffic(shared)
    assert t["weights"] == {"1": 50, "2": 50} and t["guard"]["state"] == "armed", t


# ---- stats ----------------------------------------------------------------------------------

def test_stats_are_exact(shared):
    shared.deploy(Q, "1")
    before = stats_of(shared, "1")
    with requests.Session() as s:
        for _ in range(300):
            r = s.post(shared.url(versioned("1")), json={"inputs": quad_inputs([1.0])},
                       timeout=10)
            assert r.status_code == 200, describe(r)
    st = stats_of(shared, "1")
    assert st["request_count"] - before["request_count"] == 300, (before, st)
    assert st["error_count"] == before["error_count"], st
    with requests.Session() as s:
        for _ in range(7):
            expect_error(s.post(shared.url(versioned("1")), json={"inputs": []}, timeout=10),
                         400)
    st = stats_of(shared, "1")
    assert st["request_count"] - before["request_count"] == 307, st
    assert st["error_4xx"] - before["error_4xx"] == 7, st
    assert st["error_5xx"] == before["error_5xx"], st
    assert st["error_count"] == st["error_4xx"] + st["error_5xx"], st
    assert st["in_flight"] == 0, st
    assert 0 < st["p50_ms"] <= st["p95_ms"] <= st["p99_ms"], st
    assert st["avg_latency_ms"] > 0, st
    assert sum(b["count"] for b in st["histogram"]) == st["request_count"], st
    les = [b["le_ms"] for b in st["histogram"]]
    assert les == sorted(les), "histogram buckets are not in increasing order"
    assert st["status"] == "active" and st["last_request_at"] and st["deployed_at"], st
    listed = expect_status(shared.get("/models/stats"), 200)["stats"]
    rows = [x for x in listed if x["model_name"] == Q and x["version"] == "1"]
    assert len(rows) == 1, listed
    for field in ("request_count", "error_count", "error_4xx", "error_5xx", "in_flight",
                  "deployed_at", "status"):
        assert rows[0][field] == st[field], (field, rows[0], st)
    for field in ("avg_latency_ms", "p50_ms", "p95_ms", "p99_ms", "last_request_at"):
        assert field in rows[0], rows[0]


@pytest.mark.stress
def test_stats_are_exact_under_concurrency(shared):
    shared.deploy(Q, "2")
    before = stats_of(shared, "2")["request_count"]
    failures = []

    def client():
        with requests.Session() as s:
            for _ in range(75):
                r = s.post(shared.url(versioned("2")), json={"inputs": quad_inputs([1.0])},
                           timeout=10)
                if r.status_code != 200:
                    failures.append(describe(r))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not failures, failures[:3]
    st = stats_of(shared, "2")
    assert st["request_count"] - before == 300 and st["in_flight"] == 0, st
    assert sum(b["count"] for b in st["histogram"]) == st["request_count"], st


def test_5xx_are_counted_exactly(shared):
    shared.register("flaky_model", "1", fixture_plugin("flaky"), config={"fail_rate": 0.5})
    shared.deploy("flaky_model", "1")
    seen = {}
    with requests.Session() as s:
        for _ in range(100):
            r = s.post(shared.url(versioned("1", "flaky_model")),
                       json={"inputs": quad_inputs([1.0])}, timeout=10)
            seen[r.status_code] = seen.get(r.status_code, 0) + 1
    assert set(seen) == {200, 500}, seen
    st = stats_of(shared, "1", "flaky_model")
    assert st["request_count"] == 100 and st["error_5xx"] == seen[500], (seen, st)
    assert st["error_4xx"] == 0 and st["error_count"] == seen[500], (seen, st)


def test_stats_of_an_undeployed_version_is_404(shared):
    expect_error(shared.get(f"/deployments/{Q}/1/stats"), 404)
    expect_error(shared.get(f"/deployments/{Q}/99/stats"), 404)
    expect_error(shared.get("/deployments/nosuchmodel/1/stats"), 404)
    shared.deploy(Q, "1")
    stats_of(shared, "1")
    shared.undeploy(Q, "1")
    expect_error(shared.get(f"/deployments/{Q}/1/stats"), 404)


GUARD = {"max_error_rate": 0.2, "max_p99_ratio": 3.0, "min_requests": 10, "window_s": 5}


def total_requests(srv):
    return stats_of(srv, "1")["request_count"] + stats_of(srv, "2")["request_count"]


def test_stats_and_split_survive_restarts(server_factory):
    srv = server_factory(args=["--stats-flush-s", "1"])
    two_versions(srv, {"weights": {"1": 90, "2": 10}, "guard": GUARD})
    versions_hit(srv, 100)
    v1_before = stats_of(srv, "1")["request_count"]
    assert total_requests(srv) == 100
    srv.restart()  # SIGTERM: totals are flushed at shutdown
    assert total_requests(srv) == 100, "lifetime totals did not survive a clean restart"
    assert stats_of(srv, "1")["request_count"] == v1_before
    t = traffic(srv)
    assert t["weights"] == {"1": 90, "2": 10}, t
    for k, v in GUARD.items():
        assert t["guard"][k] == v, (k, t)
    assert t["guard"]["state"] == "armed", t
    counts = versions_hit(srv, 10)
    assert set(counts) <= {"1", "2"}, counts
    assert total_requests(srv) == 110, "request_count did not continue from the stored total"
    time.sleep(2.5)  # at least one flush period after the last request
    srv.kill()
    srv.start()
    srv.wait_ready()
    assert traffic(srv)["weights"] == {"1": 90, "2": 10}, "kill -9 lost the split"
    assert total_requests(srv) == 110, "kill -9 lost totals flushed before the crash"


def test_a_crash_right_after_a_split_change_keeps_it(server_factory):
    srv = server_factory()  # default (long) stats flush: the split must not depend on it
    two_versions(srv, {"1": 90, "2": 10})
    put_traffic(srv, {"1": 60, "2": 40})
    srv.kill()
    srv.start()
    srv.wait_ready()
    assert traffic(srv)["weights"] == {"1": 60, "2": 40}
    expect_status(srv.post(f"/deployments/{Q}/rollback"), 200)
    assert traffic(srv)["weights"] == {"1": 90, "2": 10}, "the split history did not survive"


def test_a_tripped_guard_survives_a_restart(server_factory):
    srv = server_factory()
    srv.deploy(Q, "1")
    srv.register(Q, "3", fixture_plugin("flaky"), config={"fail_rate": 1.0})
    srv.deploy(Q, "3")
    put_traffic(srv, {"weights": {"1": 50, "3": 50},
                      "guard": {"max_error_rate": 0.05, "min_requests": 10, "window_s": 10}})
    with requests.Session() as s:
        for _ in range(60):
            s.post(srv.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])}, timeout=10)
    deadline = time.monotonic() + 10
    while traffic(srv)["guard"]["state"] != "tripped" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert traffic(srv)["guard"]["state"] == "tripped", traffic(srv)
    srv.restart()
    t = traffic(srv)
    assert t["weights"] == {"1": 100, "3": 0}, f"the canary got its traffic back: {t}"
    # contract: the tripped state and its reason are kept, so the dashboard still shows why
    assert t["guard"]["state"] == "tripped" and "error rate" in t["guard"]["reason"], t


# ---- metrics --------------------------------------------------------------------------------

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def samples(text):
    """{(name, labels as frozenset of (k, v)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"unparsable sample line {line!r}"
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metric(smp, name, **labels):
    return smp.get((name, frozenset(labels.items())))


def scrape(srv):
    r = srv.get("/metrics")
    assert r.status_code == 200, describe(r)
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    return r.text


def test_metrics_exposition_has_the_families_and_passes_promtool(shared):
    two_versions(shared, {"1": 90, "2": 10})
    before = samples(scrape(shared))
    ok_before = metric(before, "dynserve_inference_requests_total", model=Q, version="1",
                       code="200") or 0
    bad_before = metric(before, "dynserve_inference_requests_total", model=Q, version="1",
                        code="400") or 0
    with requests.Session() as s:
        for _ in range(25):
            assert s.post(shared.url(versioned("1")), json={"inputs": quad_inputs([1.0])},
                          timeout=10).status_code == 200
        for _ in range(3):
            assert s.post(shared.url(versioned("1")), json={"inputs": []},
                          timeout=10).status_code == 400
    text = scrape(shared)
    smp = samples(text)
    assert f'dynserve_inference_requests_total{{model="{Q}",version="1",code="200"}}' in text
    ok = metric(smp, "dynserve_inference_requests_total", model=Q, version="1", code="200")
    bad = metric(smp, "dynserve_inference_requests_total", model=Q, version="1", code="400")
    assert ok - ok_before == 25 and bad - bad_before == 3, (ok_before, ok, bad_before, bad)
    # the duration histogram agrees with the counters
    codes_total = sum(v for (n, lab), v in smp.items()
                      if n == "dynserve_inference_requests_total"
                      and ("model", Q) in lab and ("version", "1") in lab)
    count = metric(smp, "dynserve_inference_duration_seconds_count", model=Q, version="1")
    inf = metric(smp, "dynserve_inference_duration_seconds_bucket", model=Q, version="1",
                 le="+Inf")
    assert count == inf == codes_total, (count, inf, codes_total)
    assert metric(smp, "dynserve_inference_duration_seconds_sum", model=Q, version="1") > 0
    assert "# TYPE dynserve_inference_duration_seconds histogram" in text
    assert "# TYPE dynserve_inference_requests_total counter" in text
    assert any(n == "dynserve_in_flight_requests" for n, _ in smp), text
    assert metric(smp, "dynserve_in_flight_requests", model=Q, version="1") in (0, None)
    assert metric(smp, "dynserve_deployments", status="active") == 2, text
    assert metric(smp, "dynserve_traffic_weight", model=Q, version="1") == 90, text
    assert metric(smp, "dynserve_traffic_weight", model=Q, version="2") == 10, text
    assert metric(smp, "process_resident_memory_bytes") > 0, text
    promtool = shutil.which("promtool") or ("/usr/bin/promtool"
                                             if os.access("/usr/bin/promtool", os.X_OK) else None)
    if promtool is None:
        pytest.skip("promtool not installed")
    check = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_stats_have_one_and_five_minute_windows(shared):
    shared.deploy(Q, "1")
    with requests.Session() as s:
        for _ in range(40):
            r = s.post(shared.url(versioned("1")), json={"inputs": quad_inputs([1.0])},
                       timeout=10)
            assert r.status_code == 200, describe(r)
    st = stats_of(shared, "1")
    rows = [x for x in expect_status(shared.get("/models/stats"), 200)["stats"]
            if x["model_name"] == Q and x["version"] == "1"]
    assert len(rows) == 1
    for entry in (st, rows[0]):
        w = entry["window"]
        assert set(w) == {"1m", "5m"}, w
        assert w["1m"]["window_s"] == 60, w
        assert 286 <= w["5m"]["window_s"] <= 300, w
        for name in ("1m", "5m"):
            x = w[name]
            assert set(x) >= {"request_rate", "error_rate", "p50_ms", "p95_ms", "p99_ms"}, x
            # the 40 requests just sent are inside both windows (counts only grow here)
            assert x["request_count"] >= 40, (name, x)
            # JSON numbers carry 15 significant digits
            assert x["request_rate"] == pytest.approx(x["request_count"] / x["window_s"])
            assert 0 <= x["error_rate"] <= 1, x
            assert 0 < x["p50_ms"] <= x["p95_ms"] <= x["p99_ms"], x
    smp = samples(scrape(shared))
    for window in ("1m", "5m"):
        assert metric(smp, "dynserve_window_request_rate", model=Q, version="1",
                      window=window) > 0, window
        assert metric(smp, "dynserve_window_error_ratio", model=Q, version="1",
                      window=window) is not None
        assert metric(smp, "dynserve_window_latency_seconds", model=Q, version="1",
                      window=window, percentile="p99") > 0
