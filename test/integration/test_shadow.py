"""Shadow traffic (issue 13, part 5): PUT /deployments/<m>/traffic {"shadow":{"version","percent"}}
copies that share of the unversioned requests to the shadow version off the client's path; the
client's answers come from the split only; the shadow's requests are counted in its stats with a
mismatch_count; a failing or saturated shadow never affects the client. The latency comparison
(client p99 with vs without a shadow) is a benchmark: bench/shadow."""
import time

import pytest
import requests

from conftest import expect_error, expect_status, fixture_plugin, model_plugin, quad_inputs

Q = "quadratic_predictor"
UNVERSIONED = f"/v2/models/{Q}/infer"


def traffic(srv, body, expect=200):
    r = srv.put(f"/deployments/{Q}/traffic", json=body)
    if expect == 200:
        return expect_status(r, 200)
    return expect_error(r, expect)


def triton_stat(srv, version):
    (st,) = expect_status(srv.get(f"/v2/models/{Q}/versions/{version}/stats"),
                          200)["model_stats"]
    return st


def wait_shadow_settled(srv, version, expected, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = triton_stat(srv, version)
        if st["shadow_count"] + st["shadow_dropped"] >= expected:
            return st
        time.sleep(0.05)
    pytest.fail(f"shadow of {version} handled {st['shadow_count']} + dropped "
                f"{st['shadow_dropped']}, expected {expected}")


def send(srv, n):
    versions = {}
    with requests.Session() as s:
        for i in range(n):
            r = s.post(srv.url(UNVERSIONED), json={"inputs": quad_inputs([1.0])}, timeout=30)
            js = expect_status(r, 200)
            versions[js["model_version"]] = versions.get(js["model_version"], 0) + 1
            assert js["outputs"][0]["data"] == [6.0], js  # v1's answer: 2+3+1
    return versions


def test_shadow_share_stats_and_mismatches(server):
    server.deploy(Q, "1")
    server.deploy(Q, "2")
    got = traffic(server, {"weights": {"1": 100, "2": 0},
                           "shadow": {"version": "2", "percent": 20}})
    assert got["shadow"] == {"version": "2", "percent": 20}, got
    assert expect_status(server.get(f"/deployments/{Q}/traffic"), 200)["shadow"] == \
        {"version": "2", "percent": 20}
    n = 2000
    assert send(server, n) == {"1": n}  # the client's answers all come from the split
    st = wait_shadow_settled(server, "2", int(n * 0.17))
    time.sleep(0.5)
    st = triton_stat(server, "2")
    handled = st["shadow_count"] + st["shadow_dropped"]
    assert abs(handled / n - 0.20) <= 0.03, f"shadow share {handled}/{n}"
    # v2 (x²−1 = 0 at x = 1) always differs from v1 (6): every compared request mismatches
    assert st["mismatch_count"] == st["shadow_count"] > 0, st
    # shadow requests are counted in the shadow version's own stats
    assert st["inference_stats"]["success"]["count"] == st["shadow_count"]
    assert triton_stat(server, "1")["inference_stats"]["success"]["count"] == n
    assert triton_stat(server, "1")["shadow_count"] == 0


def test_identical_shadow_has_no_mismatches(server):
    server.register(Q, "3", model_plugin(Q, 1))  # the same code as version 1
    server.deploy(Q, "1")
    server.deploy(Q, "3")
    traffic(server, {"weights": {"1": 100, "3": 0}, "shadow": {"version": "3", "percent": 50}})
    send(server, 200)
    st = wait_shadow_settled(server, "3", 100)
    assert st["shadow_count"] + st["shadow_dropped"] == 100
    assert st["mismatch_count"] == 0, st


def test_failing_shadow_never_affects_the_client(server):
    server.register(Q, "9", fixture_plugin("flaky"), config={"fail_rate": 1.0})
    server.deploy(Q, "1")
    server.deploy(Q, "9")
    traffic(server, {"weights": {"1": 100, "9": 0}, "shadow": {"version": "9", "percent": 100}})
    assert send(server, 300) == {"1": 300}
    st = wait_shadow_settled(server, "9", 300)
    assert st["inference_stats"]["fail"]["count"] == st["shadow_count"]
    assert st["mismatch_count"] == st["shadow_count"]


def test_shadow_validation_and_removal(server):
    server.deploy(Q, "1")
    traffic(server, {"weights": {"1": 100}, "shadow": {"version": "2", "percent": 10}}, 409)
    server.deploy(Q, "2")
    for bad in ({"version": "2", "percent": 101}, {"version": "2", "percent": -1},
                {"version": "2", "percent": 1.5}, {"version": "2"}, {"percent": 5},
                {"version": "2", "percent": 5, "extra": 1}, "2"):
        traffic(server, {"weights": {"1": 100, "2": 0}, "shadow": bad}, 400)
    traffic(server, {"weights": {"1": 100, "2": 0}, "shadow": {"version": "2", "percent": 10}})
    got = traffic(server, {"weights": {"1": 100, "2": 0}, "shadow": None})
    assert got.get("shadow") is None, got
    traffic(server, {"weights": {"1": 100, "2": 0}, "shadow": {"version": "2", "percent": 10}})
    server.undeploy(Q, "2")  # undeploying the shadow ends the shadow
    assert expect_status(server.get(f"/deployments/{Q}/traffic"), 200).get("shadow") is None
    assert send(server, 20) == {"1": 20}
