"""Churn under load (issue 11, "zero failed requests under churn").

For STRESS_SECONDS (default 60) eight keep-alive clients call the versioned, unversioned and
/predict routes while two threads deploy, undeploy, split, promote and roll back. Asserted:
  - zero failed requests of any kind: no connection error, no 5xx, no wrong answer;
  - 404 only on routes of versions that the churn really takes away (never on the stable ones);
  - exact stats for the stable version (its request_count equals what the clients saw it serve);
  - the registry passes PRAGMA integrity_check afterwards;
  - RSS after warm-up stays within a bound (memory flat under churn).
Counts, not durations: the machine is shared.
"""
import os
import pathlib
import random
import sqlite3
import threading
import time

import requests

from ds_conftest import expect_status, quad_inputs

SECONDS = float(os.environ.get("STRESS_SECONDS", "60"))
CLIENTS = int(os.environ.get("STRESS_CLIENTS", "8"))
RSS_GROWTH_MAX = int(os.environ.get("STRESS_RSS_GROWTH_MB", "8")) * 1024 * 1024

Q, B = "quadratic_predictor", "binary_classifier"
Q1 = lambda x: 2 * x * x + 3 * x + 1  # noqa: E731
Q2 = lambda x: x * x - 1  # noqa: E731


def rss(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def heap_gauges(srv):
    """(heap in use outside SQLite, SQLite's) in KiB from /metrics; None where not reported."""
    v = {}
    for line in requests.get(srv.url("/metrics"), timeout=30).text.splitlines():
        name, _, value = line.partition(" ")
        if name in ("dynserve_heap_inuse_bytes", "dynserve_sqlite_memory_bytes"):
            v[name] = int(float(value)) // 1024
    if "dynserve_heap_inuse_bytes" not in v:
        return None
    return v["dynserve_heap_inuse_bytes"] - v["dynserve_sqlite_memory_bytes"], \
        v["dynserve_sqlite_memory_bytes"]


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []
        self.served_by_q1 = 0
        self.not_found = {}

    def fail(self, what):
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(what)
            else:
                self.failures[-1] = f"... and more; last: {what}"

    def count(self, by_q1=False):
        with self.lock:
            self.ok += 1
            self.served_by_q1 += by_q1

    def count_404(self, route):
        with self.lock:
            self.not_found[route] = self.not_found.get(route, 0) + 1


def client(srv, stop, tally, seed):
    rnd = random.Random(seed)
    s = requests.Session()
    routes = ["q1", "q", "predict", "q2", "b"]
    while not stop.is_set():
        route = rnd.choice(routes)
        x = float(rnd.randint(-5, 5))
        try:
            if route == "predict":
                r = s.post(srv.url("/predict/q-stable"), json={"input": [x]}, timeout=30)
            elif route == "b":
                r = s.post(srv.url(f"/v2/models/{B}/infer"),
                           json={"inputs": [{"name": "input", "shape": [1, 3],
                                             "datatype": "FP32", "data": [x, 1, 2]}]},
                           timeout=30)
            else:
                path = {"q1": f"/v2/models/{Q}/versions/1/infer", "q": f"/v2/models/{Q}/infer",
                        "q2": f"/v2/models/{Q}/versions/2/infer"}[route]
                r = s.post(srv.url(path), json={"inputs": quad_inputs([x])}, timeout=30)
        except requests.RequestException as e:
            tally.fail(f"{route}: {e!r}")
            s = requests.Session()
            continue
        check(route, x, r, tally)


def check(route, x, r, tally):
    if r.status_code == 404 and route in ("q2", "b"):
        tally.count_404(route)  # a version the churn takes away; the stable ones never 404
        return
    if r.status_code != 200:
        tally.fail(f"{route}: {r.status_code} {r.text[:200]}")
        return
    body = r.json()
    if route == "predict":
        ok = body.get("prediction") == [Q1(x)] and body.get("version") == "1"
        tally.count(by_q1=True) if ok else tally.fail(f"predict: {body}")
        return
    if route == "b":
        tally.count() if "outputs" in body else tally.fail(f"b: {body}")
        return
    version = str(body.get("model_version"))
    y = body["outputs"][0]["data"][0]
    expected = {"1": Q1(x), "2": Q2(x)}.get(version)
    if expected is None or y != expected or (route == "q1" and version != "1") or \
            (route == "q2" and version != "2"):
        tally.fail(f"{route}: wrong answer {body} for x={x}")
        return
    tally.count(by_q1=version == "1")


def churn_quadratic(srv, stop, errors):
    s = requests.Session()
    rnd = random.Random(1)
    while not stop.is_set():
        steps = [("post", "/deployments/deploy", {"model_name": Q, "version": "2"}, (201, 409)),
                 ("put", f"/deployments/{Q}/traffic", {"weights": {"1": 80, "2": 20}}, (200,)),
                 ("post", f"/deployments/{Q}/promote", {"version": "2"}, (200,)),
                 ("post", f"/deployments/{Q}/rollback", None, (200, 409)),
                 ("put", f"/deployments/{Q}/traffic", {"weights": {"1": 100, "2": 0}}, (200,)),
                 ("post", "/deployments/undeploy", {"model_name": Q, "version": "2"}, (200, 404))]
        for method, path, body, codes in steps[: rnd.randint(2, len(steps))] + steps[-1:]:
            r = getattr(s, method)(srv.url(path), json=body, timeout=60)
            if r.status_code not in codes:
                errors.append(f"{method} {path}: {r.status_code} {r.text[:200]}")


def churn_binary(srv, stop, errors):
    s = requests.Session()
    while not stop.is_set():
        for v in ("1", "2"):
            r = s.post(srv.url("/deployments/deploy"), json={"model_name": B, "version": v},
                       timeout=60)
            if r.status_code not in (201, 409):
                errors.append(f"deploy {B} {v}: {r.status_code} {r.text[:200]}")
        r = s.put(srv.url(f"/deployments/{B}/traffic"), json={"weights": {"1": 50, "2": 50}},
                  timeout=60)
        if r.status_code != 200:
            errors.append(f"traffic {B}: {r.status_code} {r.text[:200]}")
        for v in ("2", "1"):
            r = s.post(srv.url("/deployments/undeploy"), json={"model_name": B, "version": v},
                       timeout=60)
            if r.status_code not in (200, 404):
                errors.append(f"undeploy {B} {v}: {r.status_code} {r.text[:200]}")


def test_churn_under_load_fails_no_request(server_factory):
    srv = server_factory(args=["--threads", "32"])
    expect_status(srv.post("/deployments/deploy", {"model_name": Q, "version": "1",
                                                   "endpoint_name": "q-stable"}), 201)
    stop = threading.Event()
    tally, errors = Tally(), []
    threads = [threading.Thread(target=client, args=(srv, stop, tally, i)) for i in range(CLIENTS)]
    threads += [threading.Thread(target=churn_quadratic, args=(srv, stop, errors)),
                threading.Thread(target=churn_binary, args=(srv, stop, errors))]
    for t in threads:
        t.start()
    samples = []  # (seconds, RSS, heap gauges) every tenth of the run: printed, for bench/churn
    for i in range(1, 11):
        time.sleep(SECONDS / 10)
        samples.append((round(SECONDS * i / 10), rss(srv.proc.pid), heap_gauges(srv)))
    warm, end = samples[2][1], samples[-1][1]
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not tally.failures, f"{len(tally.failures)} failed requests, e.g. {tally.failures[:10]}"
    assert not errors, f"management calls failed: {errors[:10]}"
    assert tally.ok > 100, f"only {tally.ok} requests succeeded"
    stats = expect_status(srv.get("/models/stats"), 200)["stats"]
    q1 = [s for s in stats if s["model_name"] == Q and str(s["version"]) == "1"]
    assert q1 and q1[0]["request_count"] == tally.served_by_q1, (q1, tally.served_by_q1)
    assert q1[0]["error_count"] == 0, q1
    assert end - warm <= RSS_GROWTH_MAX, f"RSS grew {warm} -> {end} after warm-up"
    srv.stop()
    db = sqlite3.connect(srv.data_dir / "registry.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    print(f"\nchurn: {tally.ok} requests ok, 0 failed, 404 on churned routes {tally.not_found}; "
          "RSS KiB by second: " + ", ".join(f"{t}s {r // 1024}" for t, r, _ in samples) +
          "\nchurn: heap KiB in use outside SQLite / SQLite's, by second: " +
          ", ".join(f"{t}s {h[0]}/{h[1]}" if h else f"{t}s -" for t, _, h in samples))
