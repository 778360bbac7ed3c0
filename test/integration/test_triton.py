"""Triton's protocol extensions (issue 13): statistics and model repository, checked field by
field against Triton's documentation (triton-inference-server/server docs/protocol/
extension_statistics.md and extension_model_repository.md) and against what Triton's own Python
HTTP client (triton-inference-server/client, tritonclient/http/_client.py) sends and expects.
tritonclient itself is not installable here (no PyPI), so TritonHttpClient below reproduces its
requests byte for byte: the same paths, bodies and "any status but 200 is an error" rule."""
import concurrent.futures
import json
import shutil
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import expect_error, expect_status, fixture_plugin, quad_inputs, sha256_file

Q = "quadratic_predictor"
BC = "binary_classifier"


class TritonError(Exception):
    def __init__(self, status, msg):
        super().__init__(f"[{status}] {msg}")
        self.status, self.msg = status, msg


class TritonHttpClient:
    """What tritonclient.http.InferenceServerClient does for these calls (client repo,
    src/python/library/tritonclient/http/_client.py and _utils.py::_get_error)."""

    def __init__(self, base):
        self.base = base.rstrip("/") + "/"
        self.s = requests.Session()

    def _check(self, r):
        # _get_error: any status other than 200 is an error whose message is body["error"]
        if r.status_code != 200:
            body = r.text
            err = json.loads(body) if len(body) else {
                "error": "client received an empty response from the server."}
            raise TritonError(r.status_code, err["error"])
        return r

    def get_inference_statistics(self, model_name="", model_version=""):
        if model_name != "":
            if model_version != "":
                uri = "v2/models/{}/versions/{}/stats".format(urllib.parse.quote(model_name),
                                                                model_version)
            else:
                uri = "v2/models/{}/stats".format(urllib.parse.quote(model_name))
        else:
            uri = "v2/models/stats"
        return json.loads(self._check(self.s.get(self.base + uri, timeout=10)).content)

    def get_model_repository_index(self):
        r = self.s.post(self.base + "v2/repository/index", data="", timeout=10)
        return json.loads(self._check(r).content)

    def load_model(self, model_name, config=None):
        load_request = {}
        if config is not None:
            load_request.setdefault("parameters", {})["config"] = config
        r = self.s.post(self.base + "v2/repository/models/{}/load".format(
            urllib.parse.quote(model_name)), data=json.dumps(load_request), timeout=30)
        self._check(r)

    def unload_model(self, model_name, unload_dependents=False):
        body = {"parameters": {"unload_dependents": unload_dependents}}
        r = self.s.post(self.base + "v2/repository/models/{}/unload".format(
            urllib.parse.quote(model_name)), data=json.dumps(body), timeout=30)
        self._check(r)


@pytest.fixture
def triton(server):
    return TritonHttpClient(server.base)


# -- the documented shapes ----------------------------------------------------------------------

# extension_statistics.md: $duration_stat = {"count": $number, "ns": $number}
DURATION_KEYS = {"count", "ns"}
# $inference_stats: success, fail, queue, compute_input, compute_infer, compute_output,
# cache_hit, cache_miss
INFERENCE_STATS_KEYS = {"success", "fail", "queue", "compute_input", "compute_infer",
                        "compute_output", "cache_hit", "cache_miss"}
# $batch_stats: batch_size, compute_input, compute_infer, compute_output
BATCH_STATS_KEYS = {"batch_size", "compute_input", "compute_infer", "compute_output"}
# $model_stat: name, version, last_inference, inference_count, execution_count, inference_stats,
# response_stats, batch_stats, memory_usage
MODEL_STAT_KEYS = {"name", "version", "last_inference", "inference_count", "execution_count",
                   "inference_stats", "response_stats", "batch_stats", "memory_usage"}
# dynserve's additions (Triton's clients ignore unknown keys)
EXTRA_KEYS = {"request_count", "error_count", "avg_latency_ms", "p50_ms", "p95_ms", "p99_ms",
              "in_flight", "deployed_at", "traffic_weight", "shadow_count", "mismatch_count",
              "shadow_dropped"}


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def check_duration(d, where):
    assert isinstance(d, dict) and set(d) == DURATION_KEYS, f"{where}: {d!r}"
    assert is_count(d["count"]) and is_count(d["ns"]), f"{where}: {d!r}"


def check_model_stat(st):
    """Every documented field with its documented JSON type."""
    assert isinstance(st, dict)
    missing = MODEL_STAT_KEYS - set(st)
    assert not missing, f"model_stat lacks Triton fields {missing}: {st!r}"
    assert set(st) - MODEL_STAT_KEYS <= EXTRA_KEYS, f"unexpected keys: {set(st) - MODEL_STAT_KEYS}"
    assert isinstance(st["name"], str) and isinstance(st["version"], str)
    for k in ("last_inference", "inference_count", "execution_count"):
        assert is_count(st[k]), f"{k} = {st[k]!r}"
    inf = st["inference_stats"]
    assert isinstance(inf, dict) and set(inf) == INFERENCE_STATS_KEYS, inf
    for k, d in inf.items():
        check_duration(d, f"inference_stats.{k}")
    assert isinstance(st["response_stats"], dict)
    assert isinstance(st["memory_usage"], list)
    assert isinstance(st["batch_stats"], list)
    for b in st["batch_stats"]:
        assert isinstance(b, dict) and set(b) == BATCH_STATS_KEYS, b
        assert is_count(b["batch_size"]) and b["batch_size"] >= 1
        for k in ("compute_input", "compute_infer", "compute_output"):
            check_duration(b[k], f"batch_stats[{b['batch_size']}].{k}")
    sizes = [b["batch_size"] for b in st["batch_stats"]]
    assert sizes == sorted(set(sizes)), f"batch sizes not unique and sorted: {sizes}"


def check_stats_document(doc):
    assert isinstance(doc, dict) and set(doc) == {"model_stats"}, doc
    assert isinstance(doc["model_stats"], list)
    for st in doc["model_stats"]:
        check_model_stat(st)
    return doc["model_stats"]


def quad_request(n):
    return {"inputs": quad_inputs([float(i) for i in range(n)])}


# -- statistics -----------------------------------------------------------------------------------


def test_server_metadata_advertises_both_extensions(server):
    ext = expect_status(server.get("/v2"), 200)["extensions"]
    assert "model_repository" in ext and "statistics" in ext


def test_stats_counts_equal_the_requests_sent(server, triton):
    server.deploy(Q, "1")
    t0 = int(time.time() * 1000)
    sizes = [2, 3, 2, 2, 5, 3, 1]
    with requests.Session() as s:
        for n in sizes:
            expect_status(s.post(server.url(f"/v2/models/{Q}/versions/1/infer"),
                                 json=quad_request(n)), 200)
        # two failures: a wrong input name (400) and a malformed body (400)
        bad = {"inputs": [{"name": "nope", "shape": [1, 1], "datatype": "FP32", "data": [1]}]}
        expect_error(s.post(server.url(f"/v2/models/{Q}/versions/1/infer"), json=bad), 400)
        expect_error(s.post(server.url(f"/v2/models/{Q}/versions/1/infer"), data="{"), 400)
        # the unversioned route counts for the version it was routed to
        expect_status(s.post(server.url(f"/v2/models/{Q}/infer"), json=quad_request(4)), 200)
    t1 = int(time.time() * 1000)
    sizes.append(4)
    doc = triton.get_inference_statistics(Q, "1")
    (st,) = check_stats_document(doc)
    assert (st["name"], st["version"]) == (Q, "1")
    inf = st["inference_stats"]
    assert inf["success"]["count"] == len(sizes)
    assert inf["fail"]["count"] == 2
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert inf[phase]["count"] == len(sizes), f"{phase}: {inf[phase]!r}"
    assert inf["compute_input"]["ns"] > 0 and inf["compute_output"]["ns"] > 0
    assert inf["success"]["ns"] >= inf["compute_input"]["ns"] + inf["compute_infer"]["ns"] + \
        inf["compute_output"]["ns"], inf
    assert inf["cache_hit"] == {"count": 0, "ns": 0} and inf["cache_miss"] == {"count": 0, "ns": 0}
    assert st["inference_count"] == sum(sizes)
    assert st["execution_count"] == len(sizes)
    by_size = {b["batch_size"]: b for b in st["batch_stats"]}
    assert set(by_size) == set(sizes)
    for n in set(sizes):
        assert by_size[n]["compute_infer"]["count"] == sizes.count(n)
    assert t0 - 1000 <= st["last_inference"] <= t1 + 1000
    # dynserve's extras agree with the Triton fields
    assert st["request_count"] == len(sizes) + 2 and st["error_count"] == 2
    assert st["in_flight"] == 0 and isinstance(st["deployed_at"], str)


def test_stats_all_models_one_model_and_not_deployed(server, triton):
    server.deploy(Q, "1")
    server.deploy(Q, "2")
    server.deploy(BC, "1")
    all_stats = check_stats_document(triton.get_inference_statistics())
    assert {(s["name"], s["version"]) for s in all_stats} == {(Q, "1"), (Q, "2"), (BC, "1")}
    quad = check_stats_document(triton.get_inference_statistics(Q))
    assert {(s["name"], s["version"]) for s in quad} == {(Q, "1"), (Q, "2")}
    for st in all_stats:
        assert st["inference_stats"]["success"]["count"] == 0 and st["last_inference"] == 0
        assert st["batch_stats"] == []
    with pytest.raises(TritonError) as e:
        triton.get_inference_statistics("identity")
    assert e.value.status == 404
    with pytest.raises(TritonError) as e:
        triton.get_inference_statistics(Q, "3")
    assert e.value.status == 404
    expect_error(server.post("/v2/models/stats", {}), 405)
    server.undeploy(Q, "2")
    quad = check_stats_document(triton.get_inference_statistics(Q))
    assert [s["version"] for s in quad] == ["1"]
    server.undeploy(Q, "1")
    server.undeploy(BC, "1")
    assert triton.get_inference_statistics() == {"model_stats": []}


def test_stats_count_concurrent_requests_exactly(server, triton):
    server.deploy(Q, "1")
    n_threads, per_thread = 8, 50

    def send(_):
        ok = 0
        with requests.Session() as s:
            for _ in range(per_thread):
                r = s.post(server.url(f"/v2/models/{Q}/versions/1/infer"), json=quad_request(1),
                           timeout=30)
                ok += r.status_code == 200
        return ok

    with concurrent.futures.ThreadPoolExecutor(n_threads) as ex:
        total = sum(ex.map(send, range(n_threads)))
    assert total == n_threads * per_thread
    (st,) = check_stats_document(triton.get_inference_statistics(Q, "1"))
    assert st["inference_stats"]["success"]["count"] == total
    assert st["inference_stats"]["queue"]["count"] == total
    assert st["execution_count"] == total and st["inference_count"] == total


# -- model repository ---------------------------------------------------------------------------


def index_states(triton):
    idx = triton.get_model_repository_index()
    assert isinstance(idx, list)
    out = {}
    for e in idx:
        # $repository_index_response entries: name, version (#optional), state, reason
        assert isinstance(e, dict) and set(e) == {"name", "version", "state", "reason"}, e
        assert all(isinstance(e[k], str) for k in e), e
        assert e["state"] in ("READY", "UNAVAILABLE", "LOADING", "UNLOADING"), e
        assert (e["name"], e["version"]) not in out, f"listed twice: {e!r}"
        out[(e["name"], e["version"])] = (e["state"], e["reason"])
    return out


def assert_views_agree(server, triton):
    """READY in the index == active in GET /deployments; every registered version is listed."""
    states = index_states(triton)
    registered = {(m, v) for m, vs in server.models().items() for v in vs}
    assert set(states) == registered
    active = {(d["model_name"], d["version"]) for d in server.deployments()
              if d["status"] == "active"}
    ready = {k for k, (st, _) in states.items() if st == "READY"}
    assert ready == active, f"index READY {ready} != /deployments active {active}"
    ready_only = triton.s.post(server.url("/v2/repository/index"), json={"ready": True}).json()
    assert {(e["name"], e["version"]) for e in ready_only} == ready
    assert all(e["state"] == "READY" for e in ready_only)
    return states


def test_repository_index_load_unload_agree_with_deployments(server, triton):
    states = assert_views_agree(server, triton)
    assert all(s == ("UNAVAILABLE", "unloaded") for s in states.values()), states
    # load with no parameters: the newest version, as Triton's default version policy
    triton.load_model(Q)
    states = assert_views_agree(server, triton)
    assert states[(Q, "2")][0] == "READY" and states[(Q, "1")][0] == "UNAVAILABLE"
    expect_status(server.infer(Q, "2", quad_inputs([1.0])), 200)
    # load names versions in parameters; a loaded version stays loaded (200)
    expect_status(server.post(f"/v2/repository/models/{Q}/load",
                              {"parameters": {"versions": ["1", "2"]}}), 200)
    states = assert_views_agree(server, triton)
    assert states[(Q, "1")][0] == "READY" and states[(Q, "2")][0] == "READY"
    # /deployments routes change the same state
    server.deploy(BC, "1")
    states = assert_views_agree(server, triton)
    assert states[(BC, "1")][0] == "READY"
    triton.unload_model(Q)
    states = assert_views_agree(server, triton)
    assert states[(Q, "1")] == ("UNAVAILABLE", "unloaded")
    expect_error(server.infer(Q, "1", quad_inputs([1.0])), 404)
    server.undeploy(BC, "1")
    assert_views_agree(server, triton)
    # unloading a model with nothing loaded succeeds, as in Triton
    triton.unload_model(BC)
    assert_views_agree(server, triton)
    # the repository load shows in the events like any deploy
    kinds = [e["kind"] for e in expect_status(server.get("/deployments/events?limit=100"),
                                              200)["events"] if e["model_name"] == Q]
    assert kinds.count("deploy") == 2 and kinds.count("undeploy") == 2, kinds


def test_repository_load_version_parameter_forms(server, triton):
    for params in ({"version": "1"}, {"version": 1}, {"versions": "1,2"}):
        expect_status(server.post(f"/v2/repository/models/{Q}/load", {"parameters": params}),
                      200)
        states = assert_views_agree(server, triton)
        assert states[(Q, "1")][0] == "READY"
        triton.unload_model(Q)


def test_repository_errors_are_triton_shaped(server, triton):
    with pytest.raises(TritonError) as e:
        triton.load_model("no_such_model")
    assert e.value.status == 404 and e.value.msg
    with pytest.raises(TritonError) as e:
        triton.load_model(Q, config=json.dumps({"backend": "onnxruntime"}))
    assert e.value.status == 400 and "config" in e.value.msg
    with pytest.raises(TritonError) as e:
        triton.unload_model("no_such_model")
    assert e.value.status == 404
    base = "/v2/repository"
    expect_error(server.post(f"{base}/models/{Q}/load", {"parameters": {"version": "9"}}), 404)
    expect_error(server.post(f"{base}/models/{Q}/load", {"parameters": {"bogus": 1}}), 400)
    expect_error(server.post(f"{base}/models/{Q}/load", {"parameters": [1]}), 400)
    expect_error(server.post(f"{base}/models/{Q}/load", {"extra": 1}), 400)
    expect_error(server.post(f"{base}/models/{Q}/load", raw="{"), 400)
    expect_error(server.post(f"{base}/models/{Q}/unload",
                             {"parameters": {"unload_dependents": "yes"}}), 400)
    expect_error(server.post(f"{base}/index", {"ready": "yes"}), 400)
    expect_error(server.post(f"{base}/index", raw="[]"), 400)
    expect_error(server.get(f"{base}/index"), 405)
    expect_error(server.get(f"{base}/models/{Q}/load"), 405)
    expect_error(server.post(f"{base}/models/{Q}/reload", {}), 404)
    assert_views_agree(server, triton)


def test_repository_index_reports_failed_deployments_with_their_reason(server, triton, tmp_path):
    plugin = tmp_path / "broken.so"
    shutil.copyfile(fixture_plugin("flaky"), plugin)
    server.register("fragile", "1", plugin)
    server.deploy("fragile", "1")
    server.stop()
    (server.data_dir / "plugins" / f"{sha256_file(plugin)}.so").unlink()
    server.start()
    server.wait_ready()
    triton = TritonHttpClient(server.base)  # the restarted server listens on a new port
    states = assert_views_agree(server, triton)
    state, reason = states[("fragile", "1")]
    assert state == "UNAVAILABLE" and reason and reason != "unloaded", (state, reason)
    # unload closes the failed record, as POST /deployments/undeploy does
    triton.unload_model("fragile")
    states = assert_views_agree(server, triton)
    assert states[("fragile", "1")] == ("UNAVAILABLE", "unloaded")
    assert all(d["model_name"] != "fragile" for d in server.deployments())


def test_repository_index_shows_unloading_while_requests_drain(server, triton):
    server.register("slow", "1", fixture_plugin("slow"), config={"sleep_ms": 1500})
    server.deploy("slow", "1")
    inflight = threading.Thread(target=lambda: server.post(
        "/v2/models/slow/versions/1/infer", {"inputs": quad_inputs([1.0])}, timeout=30))
    inflight.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the request is in flight
        st = expect_status(server.get("/models/stats"), 200)["stats"]
        if any(s["model_name"] == "slow" and s["in_flight"] > 0 for s in st):
            break
        time.sleep(0.01)
    unloader = threading.Thread(target=lambda: triton.unload_model("slow"))
    unloader.start()
    seen = set()
    while unloader.is_alive():
        seen.add(index_states(triton)[("slow", "1")][0])
        time.sleep(0.01)
    unloader.join()
    inflight.join()
    assert "UNLOADING" in seen, seen
    assert index_states(triton)[("slow", "1")] == ("UNAVAILABLE", "unloaded")
