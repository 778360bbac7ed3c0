"""Open Inference Protocol data plane over HTTP (issue 5): every datatype, request fields, the
binary tensor extension, limits, and malformed requests answered with 4xx JSON errors while the
server keeps serving."""
import json
import socket
import struct
import threading
import time

import pytest
import requests

from conftest import HOST, expect_error, expect_status, quad_inputs

Q = "quadratic_predictor"
IDENTITY = "/v2/models/identity/versions/1/infer"
QUAD = f"/v2/models/{Q}/versions/1/infer"


def identity_roundtrip(srv, tensor, **extra):
    srv.deploy("identity", "1")
    body = expect_status(srv.post(IDENTITY, {"inputs": [tensor], **extra}), 200)
    out = {o["name"]: o for o in body["outputs"]}
    return body, out[tensor["name"]]


# ---- datatypes ------------------------------------------------------------------------------

DATATYPE_CASES = [
    ("BOOL", [True, False, True], [3]),
    ("UINT8", [0, 7, 255], [3]),
    ("UINT16", [0, 65535], [2]),
    ("UINT32", [0, 4294967295], [2]),
    ("UINT64", [0, 18446744073709551615], [2]),
    ("INT8", [-128, 0, 127], [3]),
    ("INT16", [-32768, 32767], [2]),
    ("INT32", [-2147483648, 2147483647], [2]),
    ("INT64", [-9223372036854775808, 9223372036854775807], [2]),
    ("FP16", [0.5, -2.0, 1024.0], [3]),
    ("FP32", [1.5, -0.25, 3.0e38], [3]),
    ("FP64", [1e308, -2.5e-300, 0.1], [3]),
    ("BYTES", ["hello", "", "ünïcode"], [3]),
]


@pytest.mark.parametrize("datatype,data,shape", DATATYPE_CASES, ids=[c[0] for c in DATATYPE_CASES])
def test_every_datatype_round_trips_through_identity(shared, datatype, data, shape):
    _, out = identity_roundtrip(shared, {"name": "t", "datatype": datatype, "shape": shape,
                                         "data": data})
    assert out["datatype"] == datatype and out["shape"] == shape, out
    assert out["data"] == data, f"{datatype}: sent {data}, got {out['data']}"


def test_nested_data_is_accepted_and_answered_flat(shared):
    _, out = identity_roundtrip(shared, {"name": "m", "datatype": "INT32", "shape": [2, 3],
                                         "data": [[1, 2, 3], [4, 5, 6]]})
    assert out["shape"] == [2, 3] and out["data"] == [1, 2, 3, 4, 5, 6], out


def test_id_is_echoed_and_requested_outputs_limit_and_order_the_response(shared):
    inputs = [{"name": "a", "datatype": "INT8", "shape": [1], "data": [1]},
              {"name": "b", "datatype": "INT8", "shape": [1], "data": [2]},
              {"name": "c", "datatype": "INT8", "shape": [1], "data": [3]}]
    shared.deploy("identity", "1")
    body = expect_status(shared.post(IDENTITY, {"id": "req-42", "inputs": inputs,
                                                "outputs": [{"name": "c"}, {"name": "a"}]}), 200)
    assert body["id"] == "req-42", body
    assert [o["name"] for o in body["outputs"]] == ["c", "a"], body


def test_parameters_are_accepted_on_request_and_tensors(shared):
    shared.deploy(Q, "1")
    inputs = quad_inputs([1.0])
    inputs[0]["parameters"] = {"note": "x"}
    body = expect_status(shared.post(QUAD, {"inputs": inputs, "parameters": {"priority": 1}}),
                         200)
    assert body["outputs"][0]["data"] == [6.0], body


# ---- binary tensor extension ------------------------------------------------------------------

def binary_request(header, payload):
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head)),
                            "Content-Type": "application/octet-stream"}


def split_binary_response(resp):
    n = int(resp.headers["Inference-Header-Content-Length"])
    return json.loads(resp.content[:n]), resp.content[n:]


def test_binary_input_and_output_round_trip(shared):
    shared.deploy(Q, "1")
    xs = [0.0, 1.0, 2.0, -1.5]
    body, headers = binary_request(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [4, 1],
                     "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "prediction", "parameters": {"binary_data": True}}]},
        struct.pack("<4f", *xs))
    r = shared.post(QUAD, raw=body, headers=headers)
    assert r.status_code == 200, r.text
    head, raw = split_binary_response(r)
    out = head["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 16 and "data" not in out, head
    assert list(struct.unpack("<4f", raw)) == [2 * x * x + 3 * x + 1 for x in xs]


def test_binary_data_output_parameter_makes_every_output_binary(shared):
    shared.deploy("binary_classifier", "1")
    r = shared.post("/v2/models/binary_classifier/versions/1/infer",
                    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 3],
                                 "data": [1, 2, 3]}],
                     "parameters": {"binary_data_output": True}})
    assert r.status_code == 200, r.text
    head, raw = split_binary_response(r)
    sizes = [o["parameters"]["binary_data_size"] for o in head["outputs"]]
    assert sum(sizes) == len(raw) == 8, (head, len(raw))


def test_binary_bytes_tensor_uses_length_prefixes(shared):
    shared.deploy("identity", "1")
    items = [b"ab", b"", b"xyz"]
    payload = b"".join(struct.pack("<I", len(i)) + i for i in items)
    body, headers = binary_request(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [3],
                     "parameters": {"binary_data_size": len(payload)}}],
         "outputs": [{"name": "s", "parameters": {"binary_data": True}}]}, payload)
    r = shared.post(IDENTITY, raw=body, headers=headers)
    assert r.status_code == 200, r.text
    _, raw = split_binary_response(r)
    assert raw == payload


# ---- malformed requests --------------------------------------------------------------------

def q(data, shape=None, datatype="FP32", name="input", **extra):
    t = {"name": name, "datatype": datatype, "shape": shape or [len(data), 1], "data": data}
    t.update(extra)
    return {"inputs": [t]}


MALFORMED = [
    ("not json", b"hello"),
    ("truncated", b'{"inputs": [{"name": "input"'),
    ("trailing garbage", b'{"inputs": []} x'),
    ("empty body", b""),
    ("json array", b"[]"),
    ("json string", b'"x"'),
    ("null", b"null"),
    ("unknown top-level field", {"inputs": q([1.0])["inputs"], "bogus": 1}),
    ("inputs not a list", {"inputs": {}}),
    ("no inputs field", {"outputs": []}),
    ("empty inputs", {"inputs": []}),
    ("input not an object", {"inputs": [1]}),
    ("missing name", {"inputs": [{"datatype": "FP32", "shape": [1, 1], "data": [1]}]}),
    ("missing datatype", {"inputs": [{"name": "input", "shape": [1, 1], "data": [1]}]}),
    ("missing shape", {"inputs": [{"name": "input", "datatype": "FP32", "data": [1]}]}),
    ("missing data", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1]}]}),
    ("unknown datatype", q([1.0], datatype="FP128")),
    ("lowercase datatype", q([1.0], datatype="fp32")),
    ("shape not a list", q([1.0], shape=7)),
    ("negative dim", q([1.0], shape=[-1, 1])),
    ("fractional dim", q([1.0], shape=[1.5, 1])),
    ("too few elements", q([1.0], shape=[2, 1])),
    ("too many elements", q([1.0, 2.0, 3.0], shape=[2, 1])),
    ("overflowing dims", q([1.0], shape=[4294967296, 4294967296, 4294967296])),
    ("string for FP32", q(["x"])),
    ("bool for FP32", q([True])),
    ("null element", q([None])),
    ("object element", q([{}])),
    ("ragged nesting", q([[1.0], [2.0, 3.0]], shape=[2, 1])),
    ("wrong input name", q([1.0], name="x")),
    ("wrong dtype for model", q([1], datatype="INT32")),
    ("wrong rank for model", q([1.0], shape=[1])),
    ("wrong fixed dim", q([1.0, 2.0], shape=[1, 2])),
    ("duplicate inputs", {"inputs": q([1.0])["inputs"] * 2}),
    ("unexpected extra input", {"inputs": q([1.0])["inputs"] + [
        {"name": "extra", "datatype": "FP32", "shape": [1], "data": [1]}]}),
    ("unknown requested output", {**q([1.0]), "outputs": [{"name": "nope"}]}),
    ("outputs not a list", {**q([1.0]), "outputs": "prediction"}),
    ("id not a string", {**q([1.0]), "id": 5}),
    ("parameters not an object", {**q([1.0]), "parameters": [1]}),
    ("unknown tensor field", q([1.0], colour="red")),
    ("invalid utf-8", b'{"inputs": [{"name": "\xff\xfe", "datatype": "FP32", "shape": [1,1], '
                      b'"data": [1]}]}'),
    ("bad escape", b'{"inputs": [{"name": "in\\qput", "datatype": "FP32", "shape": [1,1], '
                   b'"data": [1]}]}'),
    ("depth bomb", b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1,1], "data": '
                   + b"[" * 10000 + b"1" + b"]" * 10000 + b"}]}"),
    ("number too large for FP32", q([1e39])),
]


@pytest.mark.parametrize("what,body", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_gets_4xx_json_error_and_server_keeps_serving(shared, what, body):
    shared.deploy(Q, "1")
    r = shared.post(QUAD, raw=body) if isinstance(body, bytes) else shared.post(QUAD, body)
    expect_error(r, 400, 413)
    expect_status(shared.get("/v2/health/live"), 200)
    good = expect_status(shared.post(QUAD, {"inputs": quad_inputs([1.0])}), 200)
    assert good["outputs"][0]["data"] == [6.0]


@pytest.mark.parametrize("datatype,value", [
    ("UINT8", 300), ("UINT8", -1), ("UINT32", -1), ("INT8", 128), ("INT32", 1.5),
    ("INT64", 9223372036854775808), ("BOOL", 1), ("BOOL", "true"), ("UINT64", 1e20),
    ("FP16", 70000.0),
])
def test_out_of_range_value_is_400_naming_the_tensor(shared, datatype, value):
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, {"inputs": [{"name": "tensor_x", "datatype": datatype,
                                           "shape": [1], "data": [value]}]})
    body = expect_error(r, 400)
    assert "tensor_x" in body["error"], body


def test_binary_sizes_that_do_not_add_up_are_400(shared):
    shared.deploy(Q, "1")
    ok_head = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 1],
                           "parameters": {"binary_data_size": 8}}]}
    body, headers = binary_request(ok_head, b"\0" * 4)  # 4 bytes instead of 8
    expect_error(shared.post(QUAD, raw=body, headers=headers), 400)
    body, headers = binary_request(ok_head, b"\0" * 8)
    headers["Inference-Header-Content-Length"] = str(len(body) + 10)  # beyond the body
    expect_error(shared.post(QUAD, raw=body, headers=headers), 400)
    headers["Inference-Header-Content-Length"] = "abc"
    expect_error(shared.post(QUAD, raw=body, headers=headers), 400)


def test_get_on_an_infer_route_is_405(shared):
    shared.deploy(Q, "1")
    expect_error(shared.get(QUAD), 405)


# ---- limits ---------------------------------------------------------------------------------

def test_element_limit_is_400_and_body_limit_is_413(server_factory):
    srv = server_factory(args=["--max-elements", "1000", "--max-body-bytes", "8192"])
    srv.deploy(Q, "1")
    body = expect_error(srv.post(QUAD, q([1.0] * 1001)), 400)
    assert "input" in body["error"], body
    expect_status(srv.post(QUAD, q([1.0] * 500)), 200)
    expect_error(srv.post(QUAD, raw=b'{"inputs": [' + b" " * 9000 + b"]}"), 413)
    expect_status(srv.get("/v2/health/live"), 200)


def test_fp16_largest_finite_value_round_trips(shared):
    _, out = identity_roundtrip(shared, {"name": "h", "datatype": "FP16", "shape": [1],
                                         "data": [65504.0]})
    # shortest text that reads back as the same binary16 value: 65500 rounds to 65504
    assert out["data"][0] in (65504.0, 65500.0), out


def test_nesting_limit_is_configurable(server_factory):
    srv = server_factory(args=["--max-depth", "4"])
    srv.deploy("identity", "1")
    deep = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1, 1, 1, 1],
                        "data": [[[[1]]]]}]}
    expect_error(srv.post(IDENTITY, deep), 400)


def test_a_stalled_partial_body_does_not_hold_the_server(server_factory):
    srv = server_factory(args=["--request-timeout-ms", "500", "--threads", "4"])
    srv.deploy(Q, "1")
    stalled = []
    for _ in range(3):  # hold several workers with bodies that never arrive
        s = socket.create_connection((HOST, srv.port), timeout=5)
        s.sendall(f"POST {QUAD} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  f"Content-Length: 1000\r\n\r\n{{\"inputs\":".encode())
        stalled.append(s)
    try:
        deadline = time.monotonic() + 5
        ok = 0
        while time.monotonic() < deadline and ok < 5:
            r = srv.post(QUAD, {"inputs": quad_inputs([1.0])}, timeout=5)
            ok += r.status_code == 200
        assert ok == 5, "requests did not get through while partial bodies stalled"
        for s in stalled:  # the server gave up on them (closed or answered an error)
            s.settimeout(5)
            try:
                data = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100]
    finally:
        for s in stalled:
            s.close()
    expect_status(srv.get("/v2/health/live"), 200)


def test_concurrent_malformed_and_good_requests_never_5xx(shared):
    shared.deploy(Q, "1")
    bad_bodies = [m[1] for m in MALFORMED[:20]]
    errors = []

    def hammer(i):
        with requests.Session() as s:
            for k in range(40):
                body = bad_bodies[(i + k) % len(bad_bodies)]
                kw = {"data": body} if isinstance(body, bytes) else {"json": body}
                r = s.post(shared.url(QUAD), timeout=10, **kw)
                if r.status_code >= 500:
                    errors.append((r.status_code, r.text))
                r = s.post(shared.url(QUAD), json={"inputs": quad_inputs([2.0])}, timeout=10)
                if r.status_code != 200:
                    errors.append((r.status_code, r.text))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:5]
