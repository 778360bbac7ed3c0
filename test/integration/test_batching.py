"""Issue 14 section 3: dynamic batching. A deployment with max_batch_size runs the requests that
arrive within max_queue_delay_us in one execute_batch call; each client still gets exactly its
own rows. The fixture plugin fixed_cost answers y = 3x + 7 row by row and tells in `calls` how
many requests shared the call, and fails when one instance is entered twice at once.
"""
import concurrent.futures
import threading

import pytest
import requests

from conftest import describe, expect_error, expect_status, fixture_plugin

FC = "fixed_cost"
CLIENTS = 64


def fc_inputs(xs):
    return [{"name": "x", "shape": [len(xs), 1], "datatype": "FP32", "data": list(xs)}]


def deploy(srv, version="1", expect=201, **opts):
    body = {"model_name": FC, "version": version, **opts}
    r = srv.post("/deployments/deploy", body)
    if expect == 201:
        return expect_status(r, 201)
    return expect_error(r, expect)


def outputs(body):
    return {o["name"]: o for o in body["outputs"]}


def triton_stats(srv, version="1"):
    body = expect_status(srv.get(f"/v2/models/{FC}/versions/{version}/stats"), 200)
    return body["model_stats"][0]


def hammer(srv, clients=CLIENTS, rounds=3, version="1"):
    """clients threads, each sending `rounds` one-row requests with its own x; returns
    [(x, status, body)]."""
    url = srv.url(f"/v2/models/{FC}/versions/{version}/infer")
    start = threading.Barrier(clients)

    def client(i):
        got = []
        with requests.Session() as s:
            start.wait()
            for k in range(rounds):
                x = float(i * 10 + k) + 0.5
                r = s.post(url, json={"inputs": fc_inputs([x])}, timeout=30)
                got.append((x, r.status_code, r.json()))
        return got

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [g for f in [pool.submit(client, i) for i in range(clients)] for g in f.result()]


@pytest.fixture
def batch_server(server_factory):
    srv = server_factory(args=("--threads", "96", "--max-conns-per-client", "0"))
    srv.register(FC, "1", fixture_plugin("fixed_cost"), config={"cost_us": 2000})
    return srv


def test_concurrent_one_row_clients_each_get_their_own_rows(batch_server):
    srv = batch_server
    d = deploy(srv, max_batch_size=32, max_queue_delay_us=2000, max_in_flight=CLIENTS)
    assert d["options"]["max_batch_size"] == 32, d
    results = hammer(srv)
    shared_calls = 0
    for x, status, body in results:
        assert status == 200, body
        out = outputs(body)
        assert out["y"]["shape"] == [1, 1], body
        assert out["y"]["data"] == [pytest.approx(3 * x + 7)], (x, body)
        calls = out["calls"]["data"][0]
        assert 1 <= calls <= 32, body
        shared_calls += calls > 1
    assert shared_calls > 0, "no request ever shared an execute_batch call"
    st = triton_stats(srv)
    assert st["inference_count"] == CLIENTS * 3, st
    assert st["execution_count"] < st["inference_count"], st
    sizes = {b["batch_size"]: b["compute_infer"]["count"] for b in st["batch_stats"]}
    assert max(sizes) > 1 and max(sizes) <= 32, st["batch_stats"]
    assert sum(n * c for n, c in sizes.items()) == st["inference_count"], sizes
    assert sum(sizes.values()) == st["execution_count"], sizes
    mine = [x for x in expect_status(srv.get("/models/stats"), 200)["stats"]
            if x["model_name"] == FC and x["version"] == "1"][0]
    assert mine["execution_count"] == st["execution_count"], mine
    assert mine["inference_count"] == st["inference_count"], mine
    assert sum(int(n) * c for n, c in mine["batch_sizes"].items()) == mine["inference_count"]
    text = expect_status_text(srv.get("/metrics"))
    assert f'dynserve_batch_size_count{{model="{FC}",version="1"}} {st["execution_count"]}' \
        in text, text
    assert f'dynserve_batch_size_bucket{{model="{FC}",version="1",le="+Inf"}}' in text


def expect_status_text(r):
    assert r.status_code == 200, describe(r)
    return r.text


def test_without_batching_every_request_is_its_own_call(batch_server):
    srv = batch_server
    deploy(srv, max_in_flight=CLIENTS)
    results = hammer(srv, clients=16, rounds=2)
    for x, status, body in results:
        assert status == 200, body
        assert outputs(body)["calls"]["data"] == [1], body
    st = triton_stats(srv)
    assert st["execution_count"] == st["inference_count"] == 32, st


def test_a_multi_row_request_keeps_its_rows_in_order(batch_server):
    srv = batch_server
    deploy(srv, max_batch_size=16, max_queue_delay_us=1000)
    xs = [1.0, 2.0, 3.0, 4.0, 5.0]
    r = srv.post(f"/v2/models/{FC}/versions/1/infer", {"inputs": fc_inputs(xs)})
    body = expect_status(r, 200)
    assert outputs(body)["y"]["data"] == [pytest.approx(3 * x + 7) for x in xs], body
    assert outputs(body)["y"]["shape"] == [5, 1]


@pytest.mark.parametrize("opts, words", [
    ({"max_batch_size": 0}, "max_batch_size"),
    ({"max_batch_size": -3}, "max_batch_size"),
    ({"max_batch_size": 1.5}, "max_batch_size"),
    ({"max_batch_size": "8"}, "max_batch_size"),
    ({"max_batch_size": 5000}, "max_batch_size"),
    ({"max_batch_size": 8, "max_queue_delay_us": -1}, "max_queue_delay_us"),
    ({"max_batch_size": 8, "max_queue_delay_us": 10 ** 12}, "max_queue_delay_us"),
    ({"max_queue_delay_us": 100}, "need"),
    ({"preferred_batch_sizes": [2]}, "need"),
    ({"max_batch_size": 8, "preferred_batch_sizes": [4, 2]}, "preferred_batch_sizes"),
    ({"max_batch_size": 8, "preferred_batch_sizes": []}, "preferred_batch_sizes"),
    ({"max_batch_size": 8, "preferred_batch_sizes": [16]}, "above max_batch_size"),
    ({"max_batch_size": 8, "preferred_batch_sizes": "4"}, "preferred_batch_sizes"),
    ({"max_batch_size": 65}, "can run in one call (64)"),
    ({"max_batch_size": 8, "isolation": "process"}, "in process only"),
])
def test_bad_batching_options_are_400(batch_server, opts, words):
    msg = deploy(batch_server, expect=400, **opts)["error"]
    assert words in msg, msg
    assert batch_server.deployments() == []


def test_a_plugin_without_execute_batch_refuses_batching(batch_server):
    msg = expect_error(batch_server.post("/deployments/deploy", {
        "model_name": "quadratic_predictor", "version": "1", "max_batch_size": 4}), 400)["error"]
    assert "does not support dynamic batching" in msg, msg
    assert batch_server.deployments() == []


def test_batching_options_survive_a_restart(batch_server):
    srv = batch_server
    deploy(srv, max_batch_size=8, max_queue_delay_us=500, preferred_batch_sizes=[4, 8],
           max_in_flight=CLIENTS)
    srv.restart()
    listed = [d for d in srv.deployments() if d["model_name"] == FC]
    assert listed and listed[0]["options"]["max_batch_size"] == 8, listed
    assert listed[0]["options"]["max_queue_delay_us"] == 500, listed
    assert listed[0]["options"]["preferred_batch_sizes"] == [4, 8], listed
    results = hammer(srv, clients=16, rounds=2)
    assert all(s == 200 for _, s, _ in results), results
    assert max(outputs(b)["calls"]["data"][0] for _, _, b in results) <= 8
    st = triton_stats(srv)
    assert st["execution_count"] < st["inference_count"], st


def test_undeploy_drains_queued_requests(batch_server):
    """Requests waiting in a batch (a long queue delay) when the undeploy comes all finish: the
    undeploy returns, and every request got a complete answer or a clean error."""
    srv = batch_server
    deploy(srv, max_batch_size=64, max_queue_delay_us=1500000, max_in_flight=CLIENTS)
    url = srv.url(f"/v2/models/{FC}/versions/1/infer")

    def one(i):
        r = requests.post(url, json={"inputs": fc_inputs([float(i)])}, timeout=30)
        return i, r.status_code, r.json()

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(one, i) for i in range(8)]
        threading.Event().wait(0.5)  # they are queued (the batch waits 1.5 s)
        srv.undeploy(FC, "1")
        done = [f.result(timeout=30) for f in futs]
    for i, status, body in done:
        assert status in (200, 404, 503), body
        if status == 200:
            assert outputs(body)["y"]["data"] == [pytest.approx(3 * i + 7)], body
    assert any(status == 200 for _, status, _ in done), done


@pytest.mark.parametrize("model", ["breast_cancer", "digits"])  # xgboost, onnx backends
def test_real_models_give_each_client_its_rows_under_batching(server_factory, model):
    """The backends' execute_batch: 32 concurrent clients, each with its own row of the test
    split (and some with two rows), get the answers the same version gives them unbatched."""
    np = pytest.importorskip("numpy")
    from test_models import split_of
    srv = server_factory(args=("--threads", "96", "--max-conns-per-client", "0"))
    x, _ = split_of(model)
    rows = [x[i:i + 1 + (i % 3 == 0)] for i in range(32)]
    url = srv.url(f"/v2/models/{model}/versions/1/infer")

    def ask(session, r):
        body = {"inputs": [{"name": "input", "shape": list(r.shape), "datatype": "FP32",
                            "data": r.ravel().tolist()}]}
        resp = session.post(url, json=body, timeout=30)
        assert resp.status_code == 200, describe(resp)
        return {o["name"]: (o["shape"], o["data"]) for o in resp.json()["outputs"]}

    expect_status(srv.post("/deployments/deploy", {"model_name": model, "version": "1"}), 201)
    with requests.Session() as s:
        want = [ask(s, r) for r in rows]
    srv.undeploy(model, "1")
    expect_status(srv.post("/deployments/deploy", {
        "model_name": model, "version": "1", "max_batch_size": 64, "max_queue_delay_us": 5000,
        "max_in_flight": 64}), 201)
    start = threading.Barrier(len(rows))

    def client(i):
        with requests.Session() as s:
            start.wait()
            return ask(s, rows[i])

    with concurrent.futures.ThreadPoolExecutor(len(rows)) as pool:
        got = list(pool.map(client, range(len(rows))))
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.keys() == w.keys(), (i, g, w)
        for name in w:
            assert g[name][0] == w[name][0], (i, name, g[name], w[name])
            assert np.allclose(g[name][1], w[name][1], atol=1e-5), (i, name, g[name], w[name])
    body = expect_status(srv.get(f"/v2/models/{model}/versions/1/stats"), 200)
    st = body["model_stats"][0]
    assert st["inference_count"] == sum(len(r) for r in rows), st
    assert st["execution_count"] < len(rows), st
