"""Issue 14 section 5: what deploying and undeploying cost. Each live deployment shows its load
time (dlopen + create), deploy -> ready time and the process RSS around its load in
GET /deployments and its stats route; an undeploy answers with its drain and unload times and
RSS; /metrics has per-deployment gauges and process-wide counters of loads, unloads and load
failures by reason.
"""
import pytest

from conftest import expect_error, expect_status, fixture_plugin
from test_canary import metric, samples, scrape

Q = "quadratic_predictor"


def load_of(entry):
    load = entry["load"]
    assert set(load) == {"load_ms", "ready_ms", "rss_before_bytes", "rss_after_bytes",
                         "rss_delta_bytes"}, load
    return load


def test_deploy_and_undeploy_report_what_they_cost(server):
    d = server.deploy(Q, "1")
    load = load_of(d)
    assert load["load_ms"] > 0, load
    assert load["ready_ms"] >= load["load_ms"], load
    assert load["rss_after_bytes"] > 0 and load["rss_before_bytes"] > 0, load
    assert load["rss_delta_bytes"] == load["rss_after_bytes"] - load["rss_before_bytes"]
    listed = [x for x in server.deployments() if x["model_name"] == Q][0]
    assert load_of(listed) == load, (listed, load)
    one = expect_status(server.get(f"/deployments/{Q}/1/stats"), 200)
    assert load_of(one) == load, one
    smp = samples(scrape(server))
    assert metric(smp, "dynserve_loads_total") == 1
    assert metric(smp, "dynserve_deployment_load_seconds", model=Q, version="1") == \
        pytest.approx(load["load_ms"] / 1000, rel=1e-6)
    assert metric(smp, "dynserve_deployment_ready_seconds", model=Q, version="1") > 0
    assert metric(smp, "dynserve_deployment_memory_bytes", model=Q, version="1") == \
        load["rss_delta_bytes"]

    gone = server.undeploy(Q, "1")
    unload = gone["unload"]
    assert unload["drain_ms"] >= 0 and unload["unload_ms"] > 0, unload
    assert unload["rss_freed_bytes"] == unload["rss_before_bytes"] - unload["rss_after_bytes"]
    smp = samples(scrape(server))
    assert metric(smp, "dynserve_unloads_total") == 1
    assert metric(smp, "dynserve_unload_duration_seconds_count") == 1
    assert metric(smp, "dynserve_drain_duration_seconds_count") == 1
    assert metric(smp, "dynserve_unload_duration_seconds_sum") > 0
    assert metric(smp, "dynserve_deployment_load_seconds", model=Q, version="1") is None


def test_load_failures_are_counted_by_reason(server_factory):
    srv = server_factory(args=("--plugin-dir", str(fixture_plugin("create_fails").parent)))
    v1 = srv.register("broken", "1", fixture_plugin("flaky"))
    (srv.data_dir / "plugins" / f"{v1['plugin_sha256']}.so").unlink()  # cannot load any more
    srv.deploy("broken", "1", expect=500)
    expect_error(srv.post("/deployments/deploy", {"model_name": Q, "version": "1",
                                                  "max_batch_size": 4}), 400)
    smp = samples(scrape(srv))
    # ("create" is counted by test_deploy.c: registration already refuses a failing create)
    for reason, n in (("open", 1), ("create", 0), ("options", 1), ("worker", 0), ("memory", 0)):
        assert metric(smp, "dynserve_load_failures_total", reason=reason) == n, reason
    assert metric(smp, "dynserve_loads_total") == 0


def test_a_restored_deployment_shows_its_load_but_no_deploy_call(server):
    server.deploy(Q, "2")
    server.restart()
    server.wait_ready()  # live comes before the restore
    listed = [x for x in server.deployments() if x["model_name"] == Q][0]
    load = load_of(listed)
    assert load["load_ms"] > 0 and load["ready_ms"] is None, load
    assert metric(samples(scrape(server)), "dynserve_loads_total") == 1
