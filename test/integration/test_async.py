"""Async inference (issue 13, part 4): POST .../infer?async=true -> 202 + job id + Location;
GET /v2/jobs/<id>; bounded retention by time and count; 429 when the queue is full; jobs of an
undeployed version fail cleanly; 1,000 concurrent jobs, none lost or duplicated; nothing survives
a restart."""
import concurrent.futures
import time

import pytest
import requests

from conftest import expect_error, expect_status, fixture_plugin, quad_inputs

Q = "quadratic_predictor"


def v1(x):
    return 2 * x * x + 3 * x + 1


def submit(srv, path, body, session=None, expect=202):
    r = (session or requests).post(srv.url(path + "?async=true"), json=body, timeout=30)
    if expect != 202:
        return expect_error(r, expect), r
    js = expect_status(r, 202)
    assert js["status"] == "queued" and len(js["id"]) == 32, js
    assert r.headers["Location"] == f"/v2/jobs/{js['id']}", r.headers
    return js["id"], r


def wait_running(srv, job_id, timeout=10):
    deadline = time.monotonic() + timeout
    while expect_status(srv.get(f"/v2/jobs/{job_id}"), 200)["status"] == "queued":
        assert time.monotonic() < deadline, f"job {job_id} still queued after {timeout}s"
        time.sleep(0.01)


def wait_done(srv, job_id, timeout=60, session=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        js = expect_status((session or requests).get(srv.url(f"/v2/jobs/{job_id}"), timeout=30),
                           200)
        assert js["status"] in ("queued", "running", "succeeded", "failed"), js
        if js["status"] in ("succeeded", "failed"):
            return js
        time.sleep(0.02)
    pytest.fail(f"job {job_id} not done after {timeout}s: {js!r}")


def test_async_job_answers_what_the_sync_call_answers(server):
    server.deploy(Q, "1")
    body = {"id": "req-7", "inputs": quad_inputs([1.0, 2.0])}
    sync = expect_status(server.post(f"/v2/models/{Q}/versions/1/infer", body), 200)
    job_id, _ = submit(server, f"/v2/models/{Q}/versions/1/infer", body)
    js = wait_done(server, job_id)
    assert js["status"] == "succeeded" and js["http_status"] == 200, js
    assert js["response"] == sync
    assert js["model_name"] == Q and js["model_version"] == "1"
    assert js["created_at"] <= js["started_at"] <= js["finished_at"]
    r = server.get(f"/v2/jobs/{job_id}/result")
    assert expect_status(r, 200) == sync
    # the unversioned route works too, routed when the job runs
    job_id, _ = submit(server, f"/v2/models/{Q}/infer", body)
    js = wait_done(server, job_id)
    assert js["response"]["model_version"] == "1" and js["model_version"] is None
    # a bad request fails as a job with the sync call's status and message
    job_id, _ = submit(server, f"/v2/models/{Q}/versions/1/infer", {"inputs": []})
    js = wait_done(server, job_id)
    assert js["status"] == "failed" and js["http_status"] == 400 and js["error"], js
    expect_error(server.get(f"/v2/jobs/{job_id}/result"), 400)


def test_unknown_job_and_not_deployed(server):
    expect_error(server.get("/v2/jobs/" + "0" * 32), 404)
    expect_error(server.get("/v2/jobs/short"), 404)
    expect_error(server.post("/v2/jobs/" + "0" * 32, {}), 405, 404)
    submit(server, f"/v2/models/{Q}/versions/1/infer", {"inputs": quad_inputs([1.0])},
           expect=404)


@pytest.mark.stress
def test_1000_concurrent_jobs_none_lost_none_duplicated(server_factory):
    srv = server_factory(args=["--async-max-queued", "2000", "--async-workers", "4"])
    srv.deploy(Q, "1")
    n_threads, per_thread = 8, 125

    def send(t):
        out = []
        with requests.Session() as s:
            for i in range(per_thread):
                x = float(t * per_thread + i)
                job_id, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer",
                                   {"id": str(int(x)), "inputs": quad_inputs([x])}, session=s)
                out.append((job_id, x))
        return out

    with concurrent.futures.ThreadPoolExecutor(n_threads) as ex:
        jobs = [j for part in ex.map(send, range(n_threads)) for j in part]
    ids = [j for j, _ in jobs]
    assert len(ids) == 1000 and len(set(ids)) == 1000, "duplicate job ids"
    with requests.Session() as s:
        for job_id, x in jobs:
            js = wait_done(srv, job_id, session=s)
            assert js["status"] == "succeeded", js
            resp = js["response"]
            assert resp["id"] == str(int(x)), f"job {job_id} answered another request: {resp!r}"
            assert resp["outputs"][0]["data"] == [v1(x)], resp
    st = expect_status(srv.get(f"/v2/models/{Q}/versions/1/stats"), 200)["model_stats"][0]
    assert st["inference_stats"]["success"]["count"] == 1000


def test_full_queue_is_429_and_undeployed_jobs_fail_cleanly(server_factory):
    srv = server_factory(args=["--async-max-queued", "2", "--async-workers", "1"])
    srv.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": 1500})
    srv.deploy("slow", "1")
    srv.deploy(Q, "1")
    body = {"inputs": quad_inputs([1.0])}
    running, _ = submit(srv, "/v2/models/slow/versions/1/infer", body)
    wait_running(srv, running)
    queued, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer", body)
    err, r = submit(srv, f"/v2/models/{Q}/versions/1/infer", body, expect=429)
    assert r.headers.get("Retry-After"), r.headers
    assert expect_status(srv.get(f"/v2/jobs/{queued}"), 200)["status"] == "queued"
    srv.undeploy(Q, "1")  # the queued job's version goes away before it runs
    js = wait_done(srv, queued)
    assert js["status"] == "failed" and js["http_status"] == 404 and "not deployed" in js["error"]
    assert wait_done(srv, running)["status"] == "succeeded"
    # the queue has room again
    job, _ = submit(srv, "/v2/models/slow/versions/1/infer", body)
    assert wait_done(srv, job)["status"] == "succeeded"


def async_metrics(srv):
    """The async families of GET /metrics as {series: value}."""
    text = srv.get("/metrics").text
    return {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
            if line.startswith("dynserve_async_")}


def test_metrics_count_the_job_store(server_factory):
    srv = server_factory(args=["--async-max-queued", "2", "--async-workers", "1",
                               "--async-max-kept", "2"])
    srv.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": 1500})
    srv.deploy("slow", "1")
    srv.deploy(Q, "1")
    m = async_metrics(srv)
    assert m['dynserve_async_job_events_total{event="submitted"}'] == 0, m
    assert m['dynserve_async_bytes'] == 0 and m['dynserve_async_jobs{state="queued"}'] == 0, m
    body = {"inputs": quad_inputs([1.0])}
    slow, _ = submit(srv, "/v2/models/slow/versions/1/infer", body)
    wait_running(srv, slow)
    queued, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer", body)
    submit(srv, f"/v2/models/{Q}/versions/1/infer", body, expect=429)
    m = async_metrics(srv)
    assert m['dynserve_async_jobs{state="running"}'] == 1, m
    assert m['dynserve_async_jobs{state="queued"}'] == 1, m
    assert m['dynserve_async_job_events_total{event="submitted"}'] == 2, m
    assert m['dynserve_async_job_events_total{event="rejected"}'] == 1, m
    assert m['dynserve_async_bytes'] > 0, m
    srv.undeploy(Q, "1")  # the queued job fails with 404 when it runs
    assert wait_done(srv, queued)["status"] == "failed"
    assert wait_done(srv, slow)["status"] == "succeeded"
    srv.deploy(Q, "1")
    last, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer", body)
    wait_done(srv, last)  # a third finished job: --async-max-kept 2 drops the oldest
    m = async_metrics(srv)
    assert m['dynserve_async_job_events_total{event="succeeded"}'] == 2, m
    assert m['dynserve_async_job_events_total{event="failed"}'] == 1, m
    assert m['dynserve_async_job_events_total{event="dropped"}'] == 1, m
    assert m['dynserve_async_jobs{state="finished"}'] == 2, m
    assert m['dynserve_async_jobs{state="queued"}'] == 0, m
    assert m['dynserve_async_jobs{state="running"}'] == 0, m


def test_retention_by_count_and_by_time(server_factory):
    srv = server_factory(args=["--async-max-kept", "3", "--async-retention-s", "2"])
    srv.deploy(Q, "1")
    ids = []
    for i in range(5):
        job_id, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer",
                           {"inputs": quad_inputs([float(i)])})
        wait_done(srv, job_id)
        ids.append(job_id)
    for old in ids[:2]:
        expect_error(srv.get(f"/v2/jobs/{old}"), 404)
    for kept in ids[2:]:
        expect_status(srv.get(f"/v2/jobs/{kept}"), 200)
    time.sleep(3.5)
    for kept in ids[2:]:
        expect_error(srv.get(f"/v2/jobs/{kept}"), 404)


def test_memory_budget_evicts_old_results_and_refuses_what_cannot_fit(server_factory):
    srv = server_factory(args=["--async-max-bytes", "1048576", "--async-workers", "1"])
    srv.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": 1500})
    srv.deploy("slow", "1")
    srv.deploy(Q, "1")
    big = {"inputs": quad_inputs([1.25] * 100000)}  # ~0.6 MB of JSON; its result is larger
    first, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer", big)
    assert wait_done(srv, first)["status"] == "succeeded"
    # A second big job does not fit beside the first result: the oldest result makes room.
    second, _ = submit(srv, "/v2/models/slow/versions/1/infer", big)
    expect_error(srv.get(f"/v2/jobs/{first}"), 404)
    # While the second one's body is held (it sleeps), a third cannot fit at all.
    err, r = submit(srv, f"/v2/models/{Q}/versions/1/infer", big, expect=429)
    assert "--async-max-bytes" in err["error"] and r.headers.get("Retry-After"), (err, r.headers)
    small, _ = submit(srv, f"/v2/models/{Q}/versions/1/infer", {"inputs": quad_inputs([2.0])})
    done = wait_done(srv, second)
    assert done["status"] == "succeeded", done
    out = done["response"]["outputs"][0]
    assert len(out["data"]) == 100000 and out["data"][0] == pytest.approx(v1(1.25))
    assert wait_done(srv, small)["response"]["outputs"][0]["data"] == [pytest.approx(v1(2.0))]


def test_jobs_do_not_survive_a_restart(server):
    server.deploy(Q, "1")
    job_id, _ = submit(server, f"/v2/models/{Q}/versions/1/infer",
                       {"inputs": quad_inputs([1.0])})
    wait_done(server, job_id)
    server.restart()
    server.wait_ready()
    expect_error(server.get(f"/v2/jobs/{job_id}"), 404)


def test_bad_async_flags_are_refused(server_factory, tmp_path):
    import subprocess
    from conftest import BIN
    for flag in (["--async-workers", "0"], ["--async-max-queued", "-1"],
                 ["--async-retention-s", "x"], ["--async-max-bytes", "1000"]):
        p = subprocess.run([str(BIN), "--port", "0", "--data-dir", str(tmp_path / "d"), *flag],
                           capture_output=True, timeout=30)
        assert p.returncode == 2, (flag, p.returncode, p.stderr)
