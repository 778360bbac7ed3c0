"""Scale-out, locally: PostgreSQL, three dynserve replicas on it, nginx in front (README
"Scale-out"). One scenario, in order, on one cluster (starting it is most of the cost):

  deploy on replica 1           -> all three serve it within 1 s
  traffic split on replica 2    -> the answers through nginx split as set
  undeploy on replica 3         -> gone on every replica
  kill -9 a replica under load  -> nginx keeps answering: 0 failed requests
  restart the killed replica    -> it serves what the registry says, and says so

The 1 s bound is the issue's requirement, not a speed goal: propagation is a NOTIFY plus a
reconcile pass (a few ms); bench/cluster measures it.
"""
import threading
import time

import pytest
import requests

from cluster_harness import Cluster, infer_body, wait_until

MODEL = "quadratic_predictor"
V1_AT_1 = 6.0  # version 1: 2x^2 + 3x + 1 at x = 1
V2_AT_1 = 0.0  # version 2: x^2 - 1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("scaleout"), replicas=3) as c:
        yield c


def deploy(replica, version):
    r = replica.post("/deployments/deploy", json={"model_name": MODEL, "version": version})
    assert r.status_code == 201, r.text
    assert replica.serves(MODEL, version)  # the replica that took it serves it when it returns


def all_serve(cluster, version, want=True, timeout=1.0):
    _, took = wait_until(lambda: all(r.serves(MODEL, version) == want for r in cluster.replicas),
                         timeout)
    return took < timeout


def test_a_deploy_on_one_replica_is_served_by_all_within_a_second(cluster):
    deploy(cluster.replica(0), "1")
    assert all_serve(cluster, "1"), [r.serves(MODEL, "1") for r in cluster.replicas]
    # each replica reports what it serves: GET /deployments on any shows all three
    def listed():
        d = cluster.replica(2).get("/deployments").json()["deployments"]
        row = [x for x in d if x["model_name"] == MODEL and x["version"] == "1"]
        return row and sorted(row[0]["replicas"]) == ["r1", "r2", "r3"]
    assert wait_until(listed, 3)[0]
    reps = cluster.replica(1).get("/deployments/replicas").json()
    assert {r["id"] for r in reps["replicas"] if r["live"]} == {"r1", "r2", "r3"}


def answers_through_lb(cluster, n):
    s = requests.Session()
    out = {}
    for _ in range(n):
        r = s.post(cluster.lb(f"/v2/models/{MODEL}/infer"), json=infer_body(1.0), timeout=5)
        assert r.status_code == 200, r.text
        y = r.json()["outputs"][0]["data"][0]
        out[y] = out.get(y, 0) + 1
    return out


def test_a_split_set_on_another_replica_splits_the_answers_through_nginx(cluster):
    deploy(cluster.replica(0), "2")
    assert all_serve(cluster, "2")
    r = cluster.replica(1).put(f"/deployments/{MODEL}/traffic", json={"1": 30, "2": 70})
    assert r.status_code == 200, r.text

    def split_everywhere():
        for rep in cluster.replicas:
            t = [x for x in rep.get("/deployments").json()["traffic"] if x["model_name"] == MODEL]
            if not t or t[0]["weights"] != {"1": 30, "2": 70}:
                return False
        return True
    assert wait_until(split_everywhere, 1.0)[0]
    n = 600
    got = answers_through_lb(cluster, n)
    assert set(got) <= {V1_AT_1, V2_AT_1}, got
    share = got.get(V2_AT_1, 0) / n
    # 600 random picks at p = 0.7: sd 0.019; 0.08 is over 4 sd, so this fails only if the split
    # is wrong (e.g. a replica still routing 100% to the newest version would pull it to ~0.8)
    assert abs(share - 0.7) < 0.08, got
    per_replica = {rep.id: rep.get("/models/stats").json() for rep in cluster.replicas}
    served = [sum(s["request_count"] for s in p["stats"] if s["model_name"] == MODEL)
              for p in per_replica.values()]
    assert all(c > 0 for c in served), served  # nginx spread the requests over all three


def test_cluster_stats_sum_every_replica(cluster):
    def summed():
        body = cluster.replica(0).get("/models/stats?scope=cluster").json()
        local = [rep.get("/models/stats").json() for rep in cluster.replicas]
        want = sum(s["request_count"] for p in local for s in p["stats"]
                   if s["model_name"] == MODEL and s["version"] == "2")
        got = [s for s in body["stats"] if s["model_name"] == MODEL and s["version"] == "2"]
        return got and got[0]["request_count"] == want and len(got[0]["replicas"]) == 3 and got
    found, _ = wait_until(summed, 5, 0.2)  # peers report once a second
    assert found, cluster.replica(0).get("/models/stats?scope=cluster").text
    assert found[0]["p50_ms"] > 0
    metrics = cluster.replica(1).get("/metrics").text
    assert 'dynserve_replica_info{replica="r2"' in metrics


def test_an_undeploy_on_a_third_replica_is_gone_everywhere(cluster):
    r = cluster.replica(2).post("/deployments/undeploy", json={"model_name": MODEL, "version": "1"})
    assert r.status_code == 200, r.text
    assert all_serve(cluster, "1", want=False)
    assert all_serve(cluster, "2")


def test_killing_a_replica_under_load_fails_no_request_and_it_converges_on_restart(cluster):
    failures, ok = [], [0]
    stop = threading.Event()

    def load():
        s = requests.Session()
        while not stop.is_set():
            try:
                r = s.post(cluster.lb(f"/v2/models/{MODEL}/versions/2/infer"),
                           json=infer_body(1.0), timeout=5)
                if r.status_code == 200 and r.json()["outputs"][0]["data"][0] == V2_AT_1:
                    ok[0] += 1
                else:
                    failures.append(f"{r.status_code} {r.text[:200]}")
            except requests.RequestException as e:
                failures.append(repr(e))
    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    victim = cluster.replica(1)
    before = ok[0]
    victim.kill()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join(10)
    assert not failures, failures[:5]
    assert ok[0] > before + 20  # it kept answering after the kill

    # Meanwhile the cluster changed: the restarted replica must come back to the registry's state.
    deploy(cluster.replica(0), "1")
    victim.start()
    assert victim.serves(MODEL, "1") and victim.serves(MODEL, "2")
    assert all_serve(cluster, "1")

    def lists_itself():
        d = cluster.replica(0).get("/deployments").json()["deployments"]
        return all("r2" in x["replicas"] for x in d if x["model_name"] == MODEL)
    assert wait_until(lists_itself, 3)[0]
