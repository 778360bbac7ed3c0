"""Large binary outputs (issue 14 section 6): an output asked for in binary (Triton's binary tensor
extension) is written after the JSON header straight from the output's memory, not copied into
the response body first. Whatever the path -- in process on the versioned and the unversioned
route, through the dynamic batcher, from an isolated worker, copied for a shadow, stored by an
async job -- it must come back byte-exact, with Content-Length and Inference-Header-Content-Length
right, on a keep-alive connection that goes on serving; --max-response-bytes still counts it."""
import concurrent.futures
import json
import os
import struct
import time

import pytest
import requests

from conftest import describe, expect_error, expect_status, fixture_plugin, model_plugin

IDENTITY = "/v2/models/identity/versions/1/infer"
BIG = (6 << 20) + 3  # 6 MiB and an odd tail: many TCP segments, not a multiple of anything


def binary_request(header, payload):
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head)),
                            "Content-Type": "application/octet-stream"}


def split_binary_response(resp):
    assert resp.status_code == 200, describe(resp)
    n = int(resp.headers["Inference-Header-Content-Length"])
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    assert 0 < n <= len(resp.content), (n, len(resp.content))
    return json.loads(resp.content[:n]), resp.content[n:]


def mixed_request(big):
    """A small binary output, the big one, a JSON output and a small binary one after it: the
    bytes must follow the header in the requested order."""
    a, d = bytes(range(5)), struct.pack("<3f", 1.5, -2.0, 0.25)
    tensors = [("a", "UINT8", [5], a), ("big", "UINT8", [len(big)], big),
               ("d", "FP32", [3], d)]
    header = {"id": "big-1",
              "inputs": [{"name": n, "datatype": dt, "shape": sh,
                          "parameters": {"binary_data_size": len(p)}} for n, dt, sh, p in tensors]
              + [{"name": "c", "datatype": "INT32", "shape": [2], "data": [7, -7]}],
              "outputs": [{"name": "a", "parameters": {"binary_data": True}},
                          {"name": "big", "parameters": {"binary_data": True}},
                          {"name": "c"},
                          {"name": "d", "parameters": {"binary_data": True}}]}
    body, headers = binary_request(header, a + big + d)
    return body, headers, a + big + d


def check_mixed(resp, want):
    head, raw = split_binary_response(resp)
    assert head["id"] == "big-1", head
    names = [o["name"] for o in head["outputs"]]
    assert names == ["a", "big", "c", "d"], head
    sizes = [o.get("parameters", {}).get("binary_data_size") for o in head["outputs"]]
    assert sizes == [5, BIG, None, 12], head
    assert head["outputs"][2]["data"] == [7, -7], head
    assert len(raw) == len(want) and raw == want, "binary outputs differ from the inputs"


def test_a_large_binary_output_is_byte_exact_on_both_routes_and_the_connection_serves_on(
        server_factory):
    srv = server_factory(args=["--max-response-bytes", str(32 << 20)])
    srv.deploy("identity", "1")
    big = os.urandom(BIG)
    body, headers, want = mixed_request(big)
    with requests.Session() as s:
        for path in (IDENTITY, "/v2/models/identity/infer", IDENTITY):
            check_mixed(s.post(srv.url(path), data=body, headers=headers, timeout=60), want)
            # a small JSON answer right after, on the same connection: the framing held
            r = s.post(srv.url(IDENTITY), json={"inputs": [
                {"name": "t", "datatype": "INT8", "shape": [2], "data": [1, -1]}]}, timeout=30)
            assert expect_status(r, 200)["outputs"][0]["data"] == [1, -1]
        # a binary output over --max-response-bytes is still a 413, and the server goes on
        huge = bytes(33 << 20)
        body, headers = binary_request(
            {"inputs": [{"name": "h", "datatype": "UINT8", "shape": [len(huge)],
                         "parameters": {"binary_data_size": len(huge)}}],
             "outputs": [{"name": "h", "parameters": {"binary_data": True}}]}, huge)
        err = expect_error(s.post(srv.url(IDENTITY), data=body, headers=headers, timeout=60),
                           413)["error"]
        assert "max-response-bytes" in err, err
    body, headers, want = mixed_request(big)
    check_mixed(srv.post(IDENTITY, raw=body, headers=headers, timeout=60), want)


def test_a_large_binary_output_from_an_isolated_worker_is_byte_exact(server_factory):
    srv = server_factory()
    r = srv.post("/deployments/deploy",
                 {"model_name": "identity", "version": "1", "isolation": "process"})
    assert expect_status(r, 201)["options"]["isolation"] == "process", r.text
    big = os.urandom(BIG)
    body, headers, want = mixed_request(big)
    with requests.Session() as s:
        for _ in range(3):
            check_mixed(s.post(srv.url(IDENTITY), data=body, headers=headers, timeout=60), want)


def test_a_large_binary_output_through_the_batcher_is_byte_exact(server_factory):
    """fixed_cost (y = 3x + 7 row by row, `calls` = requests in the call) with dynamic batching:
    a request of 1 Mi rows (more than max_batch_size: it runs alone, through the batcher's run)
    answered in binary while one-row clients are batched around it."""
    srv = server_factory(args=("--threads", "32", "--max-conns-per-client", "0"))
    srv.register("fixed_cost", "1", fixture_plugin("fixed_cost"), config={"cost_us": 500})
    expect_status(srv.post("/deployments/deploy",
                           {"model_name": "fixed_cost", "version": "1", "max_batch_size": 32,
                            "max_queue_delay_us": 2000, "max_in_flight": 32}), 201)
    rows = 1 << 20
    xs = [float(i % 1024) for i in range(rows)]
    payload = struct.pack(f"<{rows}f", *xs)
    want_y = struct.pack(f"<{rows}f", *[3 * x + 7 for x in xs])
    body, headers = binary_request(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [rows, 1],
                     "parameters": {"binary_data_size": len(payload)}}],
         "parameters": {"binary_data_output": True}}, payload)
    url = srv.url("/v2/models/fixed_cost/versions/1/infer")

    def small(i):
        with requests.Session() as s:
            for k in range(5):
                x = float(i * 10 + k)
                r = s.post(url, json={"inputs": [{"name": "x", "datatype": "FP32",
                                                  "shape": [1, 1], "data": [x]}]}, timeout=30)
                out = {o["name"]: o for o in expect_status(r, 200)["outputs"]}
                assert out["y"]["data"] == [3 * x + 7], out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(small, i) for i in range(8)]
        with requests.Session() as s:
            for _ in range(2):
                head, raw = split_binary_response(s.post(url, data=body, headers=headers,
                                                         timeout=120))
                sizes = {o["name"]: o["parameters"]["binary_data_size"] for o in head["outputs"]}
                assert sizes == {"y": 4 * rows, "calls": 4 * rows}, head
                ys = raw[:4 * rows] if head["outputs"][0]["name"] == "y" else raw[4 * rows:]
                calls = raw[4 * rows:] if head["outputs"][0]["name"] == "y" else raw[:4 * rows]
                assert ys == want_y, "batched binary output differs"
                assert calls == struct.pack("<i", 1) * rows
        for f in futs:
            f.result()


def test_a_shadow_and_an_async_job_get_the_whole_binary_answer(server_factory):
    """Both copy the answer (a shadow compares it with its own, a job stores it): the copy must
    hold the bytes the client got without the body copy."""
    srv = server_factory()
    srv.register("identity", "2", model_plugin("identity", 1))
    srv.deploy("identity", "1")
    srv.deploy("identity", "2")
    expect_status(srv.put("/deployments/identity/traffic",
                          json={"weights": {"1": 100, "2": 0},
                                "shadow": {"version": "2", "percent": 100}}), 200)
    big = os.urandom(BIG)
    body, headers, want = mixed_request(big)
    for _ in range(3):
        check_mixed(srv.post("/v2/models/identity/infer", raw=body, headers=headers, timeout=60),
                    want)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        (st,) = expect_status(srv.get("/v2/models/identity/versions/2/stats"),
                              200)["model_stats"]
        if st["shadow_count"] + st["shadow_dropped"] >= 3:
            break
        time.sleep(0.05)
    assert st["shadow_count"] >= 1 and st["mismatch_count"] == 0, st

    r = srv.post(IDENTITY + "?async=true", raw=body, headers=headers, timeout=60)
    job = expect_status(r, 202)["id"]
    while time.monotonic() < deadline + 60:
        js = expect_status(srv.get(f"/v2/jobs/{job}"), 200)
        if js["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.02)
    assert js["status"] == "succeeded", js
    check_mixed(srv.get(f"/v2/jobs/{job}/result", timeout=60), want)
