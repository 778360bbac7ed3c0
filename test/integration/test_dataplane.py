"""Open Inference Protocol data plane over HTTP (issue 5): every datatype (flat and nested), request
fields, the binary tensor extension in both directions, limits, and malformed requests answered
with 4xx JSON errors while the server keeps serving."""
import json
import socket
import struct
import threading
import time

import pytest
import requests

from conftest import HOST, describe, expect_error, expect_status, quad_inputs

Q = "quadratic_predictor"
IDENTITY = "/v2/models/identity/versions/1/infer"
QUAD = f"/v2/models/{Q}/versions/1/infer"

UINT64_MAX = 18446744073709551615
INT64_MIN = -9223372036854775808

# struct format letter of each fixed-size datatype (little-endian, as the extension requires)
PACK = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b",
        "INT16": "h", "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}


def identity_roundtrip(srv, tensor, **extra):
    srv.deploy("identity", "1")
    body = expect_status(srv.post(IDENTITY, {"inputs": [tensor], **extra}), 200)
    assert body["model_name"] == "identity" and body["model_version"] == "1", body
    out = {o["name"]: o for o in body["outputs"]}
    return body, out[tensor["name"]]


def same_as_fp16(a, b):
    """True when two numbers are the same IEEE binary16 value."""
    return struct.pack("<e", a) == struct.pack("<e", b)


def nest(flat, shape):
    """Row-major flat list -> nested lists of the given shape."""
    if len(shape) <= 1:
        return list(flat)
    step = len(flat) // shape[0]
    return [nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


# ---- datatypes ------------------------------------------------------------------------------

DATATYPE_CASES = [
    ("BOOL", [True, False, True, False]),
    ("UINT8", [0, 7, 128, 255]),
    ("UINT16", [0, 1, 40000, 65535]),
    ("UINT32", [0, 1, 3000000000, 4294967295]),
    ("UINT64", [0, 1, 2 ** 53 + 1, UINT64_MAX]),
    ("INT8", [-128, -1, 0, 127]),
    ("INT16", [-32768, -1, 0, 32767]),
    ("INT32", [-2147483648, -1, 0, 2147483647]),
    ("INT64", [INT64_MIN, -(2 ** 53) - 1, 0, 9223372036854775807]),
    ("FP16", [0.5, -2.0, 1024.0, 0.0]),
    ("FP32", [1.5, -0.25, 3.0e38, 1.0e-38]),
    ("FP64", [1e308, -2.5e-300, 0.1, -1.7976931348623157e308]),
    ("BYTES", ["hello", "", "ünïcode ✓", "with \"quotes\" and \\"]),
]


@pytest.mark.parametrize("datatype,data", DATATYPE_CASES, ids=[c[0] for c in DATATYPE_CASES])
def test_every_datatype_round_trips_flat(shared, datatype, data):
    _, out = identity_roundtrip(shared, {"name": "t", "datatype": datatype, "shape": [4],
                                         "data": data})
    assert out["datatype"] == datatype and out["shape"] == [4], out
    assert out["data"] == data, f"{datatype}: sent {data}, got {out['data']}"
    # exact integers: no silent trip through a double (2**53+1 is not a double)
    assert all(type(a) is type(b) for a, b in zip(out["data"], data)), out


@pytest.mark.parametrize("shape", [[2, 2], [1, 4], [4, 1], [1, 2, 1, 2]],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("datatype,data", DATATYPE_CASES, ids=[c[0] for c in DATATYPE_CASES])
def test_every_datatype_round_trips_nested(shared, datatype, data, shape):
    _, out = identity_roundtrip(shared, {"name": "t", "datatype": datatype, "shape": shape,
                                         "data": nest(data, shape)})
    # contract: like Triton, the response's data is flat (row-major) whatever the request sent
    assert out["datatype"] == datatype and out["shape"] == shape, out
    assert out["data"] == data, f"{datatype} {shape}: got {out['data']}"


def test_fp16_largest_finite_value_round_trips(shared):
    _, out = identity_roundtrip(shared, {"name": "h", "datatype": "FP16", "shape": [2],
                                         "data": [65504.0, -65504.0]})
    # contract: FP16 is written as the shortest decimal that reads back as the same binary16
    # value (numpy prints float16(65504) as 65500.0); it must be that value, not a neighbour.
    got = out["data"]
    assert same_as_fp16(got[0], 65504.0) and same_as_fp16(got[1], -65504.0), out


def test_extremes_are_exact_in_one_request(shared):
    shared.deploy("identity", "1")
    tensors = [
        {"name": "u64", "datatype": "UINT64", "shape": [1], "data": [UINT64_MAX]},
        {"name": "i64", "datatype": "INT64", "shape": [1], "data": [INT64_MIN]},
        {"name": "f64", "datatype": "FP64", "shape": [2], "data": [1e308, 5e-324]},
        {"name": "f16", "datatype": "FP16", "shape": [1], "data": [65504.0]},
    ]
    body = expect_status(shared.post(IDENTITY, {"inputs": tensors}), 200)
    out = {o["name"]: o["data"] for o in body["outputs"]}
    assert out["u64"] == [UINT64_MAX] and out["i64"] == [INT64_MIN], out
    assert out["f64"] == [1e308, 5e-324], out
    assert same_as_fp16(out["f16"][0], 65504.0), out


def test_empty_and_rank0_tensors(shared):
    _, out = identity_roundtrip(shared, {"name": "e", "datatype": "INT8", "shape": [0],
                                         "data": []})
    assert out["shape"] == [0] and out["data"] == [], out
    body = expect_status(shared.post(IDENTITY, {"inputs": [
        {"name": "s", "datatype": "FP64", "shape": [], "data": [2.5]}]}), 200)
    out = body["outputs"][0]
    assert out["shape"] == [] and out["data"] == [2.5], out


# ---- request fields ------------------------------------------------------------------------

def test_id_is_echoed_and_requested_outputs_limit_and_order_the_response(shared):
    inputs = [{"name": n, "datatype": "INT8", "shape": [1], "data": [i]}
              for i, n in enumerate("abcd")]
    shared.deploy("identity", "1")
    body = expect_status(shared.post(IDENTITY, {"id": "req-42", "inputs": inputs,
                                                "outputs": [{"name": "c"}, {"name": "a"}]}), 200)
    assert body["id"] == "req-42", body
    assert [o["name"] for o in body["outputs"]] == ["c", "a"], body
    assert [o["data"] for o in body["outputs"]] == [[2], [0]], body
    body = expect_status(shared.post(IDENTITY, {"inputs": inputs,
                                                "outputs": [{"name": "d"}]}), 200)
    assert [o["name"] for o in body["outputs"]] == ["d"] and "id" not in body, body
    body = expect_status(shared.post(IDENTITY, {"inputs": inputs}), 200)
    assert [o["name"] for o in body["outputs"]] == list("abcd"), body


def test_id_with_json_escapes_is_echoed_verbatim(shared):
    shared.deploy(Q, "1")
    rid = 'a"b\\c\n\u00e9\u2603'
    body = expect_status(shared.post(QUAD, {"id": rid, "inputs": quad_inputs([1.0])}), 200)
    assert body["id"] == rid, body


def test_parameters_are_accepted_on_request_and_tensors(shared):
    shared.deploy(Q, "1")
    inputs = quad_inputs([1.0, 2.0])
    inputs[0]["parameters"] = {"note": "x", "n": 3, "flag": True}
    body = expect_status(shared.post(QUAD, {"inputs": inputs, "parameters": {"priority": 1},
                                            "outputs": [{"name": "prediction",
                                                         "parameters": {"x": 1}}]}), 200)
    assert body["outputs"][0]["data"] == [6.0, 15.0], body


def test_unversioned_and_unknown_routes(shared):
    shared.deploy(Q, "1")
    body = expect_status(shared.post(f"/v2/models/{Q}/infer", {"inputs": quad_inputs([1.0])}),
                         200)
    assert body["model_version"] == "1" and body["outputs"][0]["data"] == [6.0], body
    expect_error(shared.post(f"/v2/models/{Q}/versions/2/infer",
                             {"inputs": quad_inputs([1.0])}), 404)
    expect_error(shared.post("/v2/models/nosuch/infer", {"inputs": quad_inputs([1.0])}), 404)
    expect_error(shared.post("/v2/models/nosuch/versions/1/infer",
                             {"inputs": quad_inputs([1.0])}), 404)


# ---- binary tensor extension ------------------------------------------------------------------

def binary_request(header, payload):
    head = json.dumps(header).encode()
    return head + payload, {"Inference-Header-Content-Length": str(len(head)),
                            "Content-Type": "application/octet-stream"}


def split_binary_response(resp):
    assert resp.status_code == 200, describe(resp)
    assert "Inference-Header-Content-Length" in resp.headers, \
        f"binary response without Inference-Header-Content-Length: {resp.headers}"
    n = int(resp.headers["Inference-Header-Content-Length"])
    assert 0 < n <= len(resp.content), (n, len(resp.content))
    assert int(resp.headers["Content-Length"]) == len(resp.content)
    return json.loads(resp.content[:n]), resp.content[n:]


def binary_outputs(head, raw):
    """{name: (output json, its raw bytes)} in the order of the header's outputs."""
    out, pos = {}, 0
    for o in head["outputs"]:
        if "data" in o:  # a JSON output among binary ones
            assert "binary_data_size" not in o.get("parameters", {}), o
            continue
        size = o["parameters"]["binary_data_size"]
        out[o["name"]] = (o, raw[pos:pos + size])
        pos += size
    assert pos == len(raw), f"binary sizes add up to {pos}, body has {len(raw)}"
    return out


def test_binary_input_and_output_round_trip(shared):
    shared.deploy(Q, "1")
    xs = [0.0, 1.0, 2.0, -1.5]
    body, headers = binary_request(
        {"inputs": [{"name": "input", "datatype": "FP32", "shape": [4, 1],
                     "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "prediction", "parameters": {"binary_data": True}}]},
        struct.pack("<4f", *xs))
    head, raw = split_binary_response(shared.post(QUAD, raw=body, headers=headers))
    out = head["outputs"][0]
    assert out["name"] == "prediction" and out["datatype"] == "FP32" and out["shape"] == [4, 1]
    assert out["parameters"]["binary_data_size"] == 16 and "data" not in out, head
    assert list(struct.unpack("<4f", raw)) == [2 * x * x + 3 * x + 1 for x in xs]


@pytest.mark.parametrize("datatype", list(PACK))
def test_binary_round_trip_of_every_fixed_size_datatype(shared, datatype):
    shared.deploy("identity", "1")
    vals = {"BOOL": [True, False, True], "FP16": [65504.0, -0.5, 1.0],
            "UINT64": [UINT64_MAX, 0, 1], "INT64": [INT64_MIN, -1, 1],
            "FP64": [1e308, -1e-308, 0.1]}.get(datatype, [1, 0, 2])
    payload = struct.pack(f"<3{PACK[datatype]}", *vals)
    body, headers = binary_request(
        {"id": "bin", "inputs": [{"name": "t", "datatype": datatype, "shape": [3],
                                  "parameters": {"binary_data_size": len(payload)}}],
         "outputs": [{"name": "t", "parameters": {"binary_data": True}}]}, payload)
    head, raw = split_binary_response(shared.post(IDENTITY, raw=body, headers=headers))
    assert head["id"] == "bin" and head["outputs"][0]["datatype"] == datatype, head
    assert raw == payload, (datatype, raw, payload)


def test_binary_input_with_json_output(shared):
    shared.deploy("identity", "1")
    payload = struct.pack("<2q", INT64_MIN, 7)
    body, headers = binary_request(
        {"inputs": [{"name": "t", "datatype": "INT64", "shape": [1, 2],
                     "parameters": {"binary_data_size": 16}}]}, payload)
    out = expect_status(shared.post(IDENTITY, raw=body, headers=headers), 200)
    assert out["outputs"][0]["data"] == [INT64_MIN, 7] and out["outputs"][0]["shape"] == [1, 2]


def test_mixed_binary_and_json_inputs(shared):
    shared.deploy("identity", "1")
    p1 = struct.pack("<2H", 1, 65535)
    p2 = struct.pack("<d", -2.5)
    body, headers = binary_request(
        {"inputs": [{"name": "a", "datatype": "UINT16", "shape": [2],
                     "parameters": {"binary_data_size": len(p1)}},
                    {"name": "j", "datatype": "INT8", "shape": [1], "data": [-3]},
                    {"name": "b", "datatype": "FP64", "shape": [1],
                     "parameters": {"binary_data_size": len(p2)}}],
         "outputs": [{"name": "b", "parameters": {"binary_data": True}}, {"name": "a"},
                     {"name": "j", "parameters": {"binary_data": True}}]}, p1 + p2)
    head, raw = split_binary_response(shared.post(IDENTITY, raw=body, headers=headers))
    assert [o["name"] for o in head["outputs"]] == ["b", "a", "j"], head
    assert head["outputs"][1]["data"] == [1, 65535], head
    outs = binary_outputs(head, raw)
    assert outs["b"][1] == p2 and outs["j"][1] == struct.pack("<b", -3), outs


def test_binary_data_output_parameter_makes_every_output_binary(shared):
    shared.deploy("binary_classifier", "1")
    r = shared.post("/v2/models/binary_classifier/versions/1/infer",
                    {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3],
                                 "data": [1, 2, 3, 0, 0, 0]}],
                     "parameters": {"binary_data_output": True}})
    head, raw = split_binary_response(r)
    outs = binary_outputs(head, raw)
    assert set(outs) == {"probability", "label"}, head
    probs = struct.unpack("<2f", outs["probability"][1])
    labels = struct.unpack("<2i", outs["label"][1])
    assert outs["label"][0]["datatype"] == "INT32" and outs["label"][0]["shape"] == [2, 1]
    assert all(0 < p < 1 for p in probs) and list(labels) == [int(p >= 0.5) for p in probs]


def test_binary_data_false_on_an_output_overrides_binary_data_output(shared):
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, {"inputs": [{"name": "a", "datatype": "INT32", "shape": [1],
                                           "data": [5]},
                                          {"name": "b", "datatype": "INT32", "shape": [1],
                                           "data": [6]}],
                               "outputs": [{"name": "a", "parameters": {"binary_data": False}},
                                           {"name": "b"}],
                               "parameters": {"binary_data_output": True}})
    head, raw = split_binary_response(r)
    # contract: Triton lets a per-output binary_data override binary_data_output
    assert head["outputs"][0]["data"] == [5], head
    assert raw == struct.pack("<i", 6), raw


def test_binary_bytes_tensor_uses_length_prefixes(shared):
    shared.deploy("identity", "1")
    items = [b"ab", b"", b"xyz", bytes(range(256))]
    payload = b"".join(struct.pack("<I", len(i)) + i for i in items)
    body, headers = binary_request(
        {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [4],
                     "parameters": {"binary_data_size": len(payload)}}],
         "outputs": [{"name": "s", "parameters": {"binary_data": True}}]}, payload)
    head, raw = split_binary_response(shared.post(IDENTITY, raw=body, headers=headers))
    assert head["outputs"][0]["parameters"]["binary_data_size"] == len(payload), head
    assert raw == payload


def test_json_bytes_answered_in_binary_with_length_prefixes(shared):
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2],
                                           "data": ["ab", "ü"]}],
                               "parameters": {"binary_data_output": True}})
    _, raw = split_binary_response(r)
    assert raw == struct.pack("<I", 2) + b"ab" + struct.pack("<I", 2) + "ü".encode(), raw


def test_fp16_binary_output_is_exact(shared):
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, {"inputs": [{"name": "h", "datatype": "FP16", "shape": [3],
                                           "data": [65504.0, -65504.0, 6.103515625e-05]}],
                               "outputs": [{"name": "h", "parameters": {"binary_data": True}}]})
    _, raw = split_binary_response(r)
    assert raw == struct.pack("<3e", 65504.0, -65504.0, 6.103515625e-05), raw


# ---- malformed requests --------------------------------------------------------------------

def q(data, shape=None, datatype="FP32", name="input", **extra):
    t = {"name": name, "datatype": datatype, "shape": shape or [len(data), 1], "data": data}
    t.update(extra)
    return {"inputs": [t]}


def raw_tensor(data_text):
    return (b'{"inputs": [{"name": "input", "datatype": "FP32", "shape": [1,1], "data": '
            + data_text + b"}]}")


# (id, body: dict as JSON or bytes as is, text the error must contain or None)
MALFORMED = [
    ("not json", b"hello", None),
    ("truncated", b'{"inputs": [{"name": "input"', None),
    ("truncated number", raw_tensor(b"[1.")[:-3], None),
    ("trailing garbage", b'{"inputs": []} x', None),
    ("two documents", json.dumps(q([1.0])).encode() * 2, None),
    ("empty body", b"", None),
    ("json array", b"[]", None),
    ("json string", b'"x"', None),
    ("null", b"null", None),
    ("unknown top-level field", {"inputs": q([1.0])["inputs"], "bogus": 1}, "bogus"),
    ("inputs not a list", {"inputs": {}}, None),
    ("no inputs field", {"outputs": []}, None),
    ("empty inputs", {"inputs": []}, None),
    ("input not an object", {"inputs": [1]}, None),
    ("missing name", {"inputs": [{"datatype": "FP32", "shape": [1, 1], "data": [1]}]}, None),
    ("name not a string", {"inputs": [{"name": 5, "datatype": "FP32", "shape": [1, 1],
                                       "data": [1]}]}, None),
    ("missing datatype", {"inputs": [{"name": "input", "shape": [1, 1], "data": [1]}]}, "input"),
    ("missing shape", {"inputs": [{"name": "input", "datatype": "FP32", "data": [1]}]}, "input"),
    ("missing data", {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1]}]},
     "input"),
    ("unknown datatype", q([1.0], datatype="FP128"), "input"),
    ("lowercase datatype", q([1.0], datatype="fp32"), "input"),
    ("datatype not a string", q([1.0], datatype=32), "input"),
    ("shape not a list", q([1.0], shape=7), "input"),
    ("shape of strings", q([1.0], shape=["1", "1"]), "input"),
    ("negative dim", q([1.0], shape=[-1, 1]), "input"),
    ("fractional dim", q([1.0], shape=[1.5, 1]), "input"),
    ("data not a list", q({"a": 1}, shape=[1, 1]), "input"),
    ("too few elements", q([1.0], shape=[2, 1]), "input"),
    ("too many elements", q([1.0, 2.0, 3.0], shape=[2, 1]), "input"),
    ("overflowing dims", q([1.0], shape=[4294967296, 4294967296, 4294967296]), "input"),
    ("dim beyond int64", q([1.0], shape=[18446744073709551616, 1]), "input"),
    ("huge dims product", q([1.0], shape=[9223372036854775807, 2]), "input"),
    ("string for FP32", q(["x"]), "input"),
    ("bool for FP32", q([True]), "input"),
    ("null element", q([None]), "input"),
    ("object element", q([{}]), "input"),
    ("number too large for FP32", q([1e39]), "input"),
    ("NaN literal", raw_tensor(b"[NaN]"), None),
    ("hex literal", raw_tensor(b"[0x10]"), None),
    ("ragged nesting", q([[1.0], [2.0, 3.0]], shape=[2, 1]), "input"),
    ("wrong input name", q([1.0], name="x"), None),
    ("wrong dtype for model", q([1], datatype="INT32"), "input"),
    ("wrong rank for model", q([1.0], shape=[1]), "input"),
    ("wrong fixed dim", q([1.0, 2.0], shape=[1, 2]), "input"),
    ("duplicate inputs", {"inputs": q([1.0])["inputs"] * 2}, "input"),
    ("unexpected extra input", {"inputs": q([1.0])["inputs"] + [
        {"name": "extra", "datatype": "FP32", "shape": [1], "data": [1]}]}, "extra"),
    ("unknown requested output", {**q([1.0]), "outputs": [{"name": "nope"}]}, "nope"),
    ("output requested twice", {**q([1.0]), "outputs": [{"name": "prediction"}] * 2},
     "prediction"),
    ("outputs not a list", {**q([1.0]), "outputs": "prediction"}, None),
    ("id not a string", {**q([1.0]), "id": 5}, None),
    ("parameters not an object", {**q([1.0]), "parameters": [1]}, None),
    ("unknown tensor field", q([1.0], colour="red"), "colour"),
    ("invalid utf-8 in a name", b'{"inputs": [{"name": "\xff\xfe", "datatype": "FP32", '
                                b'"shape": [1,1], "data": [1]}]}', None),
    ("invalid utf-8 in a key", b'{"inputs": [{"\xc3\x28": 1, "name": "input", "datatype": "FP32", '
                               b'"shape": [1,1], "data": [1]}]}', None),
    ("lone surrogate escape", b'{"id": "\\ud800", "inputs": [{"name": "input", '
                              b'"datatype": "FP32", "shape": [1,1], "data": [1]}]}', None),
    ("bad escape", b'{"inputs": [{"name": "in\\qput", "datatype": "FP32", "shape": [1,1], '
                   b'"data": [1]}]}', None),
    ("control char in string", b'{"id": "a\x01b", "inputs": [{"name": "input", '
                               b'"datatype": "FP32", "shape": [1,1], "data": [1]}]}', None),
    ("depth bomb", raw_tensor(b"[" * 10000 + b"1" + b"]" * 10000), None),
    ("object depth bomb", b'{"parameters": ' + b'{"a":' * 10000 + b"1" + b"}" * 10000
     + b', "inputs": []}', None),
    ("unclosed depth bomb", b'{"inputs": [' + b"[" * 100000, None),
]


def post_body(srv, path, body):
    return srv.post(path, raw=body) if isinstance(body, bytes) else srv.post(path, body)


@pytest.mark.parametrize("what,body,names", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_gets_4xx_json_error_and_server_keeps_serving(shared, what, body, names):
    shared.deploy(Q, "1")
    err = expect_error(post_body(shared, QUAD, body), 400)
    if names is not None:
        assert names in err["error"], f"{what}: error does not name {names!r}: {err}"
    expect_status(shared.get("/v2/health/live"), 200)
    good = expect_status(shared.post(QUAD, {"inputs": quad_inputs([1.0])}), 200)
    assert good["outputs"][0]["data"] == [6.0]


OUT_OF_RANGE = [
    ("UINT8", 300), ("UINT8", 256), ("UINT8", -1), ("UINT16", 65536), ("UINT32", -1),
    ("UINT32", 4294967296), ("UINT64", -1), ("UINT64", 18446744073709551616),
    ("UINT64", 1e20), ("INT8", 128), ("INT8", -129), ("INT16", 32768), ("INT32", 1.5),
    ("INT32", 2147483648), ("INT64", 9223372036854775808), ("INT64", 1.0e19),
    ("UINT8", 2.5), ("INT32", "1"), ("BOOL", 1), ("BOOL", 0), ("BOOL", "true"), ("BOOL", None),
    ("FP16", 70000.0), ("FP32", "x"), ("FP64", "1.0"), ("BYTES", 5),
    ("BYTES", True), ("BYTES", None),
]


@pytest.mark.parametrize("datatype,value", OUT_OF_RANGE,
                         ids=[f"{d}-{v!r}" for d, v in OUT_OF_RANGE])
def test_out_of_range_or_wrong_type_value_is_400_naming_the_tensor(shared, datatype, value):
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, {"inputs": [{"name": "tensor_x", "datatype": datatype,
                                           "shape": [2], "data": [0 if datatype != "BYTES"
                                                                  else "a", value]
                                           if datatype != "BOOL" else [True, value]}]})
    body = expect_error(r, 400)
    assert "tensor_x" in body["error"], body
    expect_status(shared.get("/v2/health/live"), 200)


def test_invalid_utf8_in_a_json_bytes_element_is_400(shared):
    """JSON text is UTF-8 (RFC 8259): an invalid sequence inside a BYTES string is a bad request,
    and echoing it would make the response itself invalid JSON."""
    shared.deploy("identity", "1")
    r = shared.post(IDENTITY, raw=b'{"inputs": [{"name": "s", "datatype": "BYTES", "shape": [1],'
                                  b' "data": ["\xff\xfe"]}]}')
    if r.status_code == 200:
        try:
            r.content.decode("utf-8")
        except UnicodeDecodeError:
            pytest.fail(f"invalid UTF-8 in a BYTES element was accepted (200) and echoed as "
                        f"invalid UTF-8 JSON: {r.content[:200]!r}")
    body = expect_error(r, 400)
    assert "s" in body["error"], body


BIN_HEAD = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 1],
                        "parameters": {"binary_data_size": 8}}]}


def bin_case(head, payload, header_len=None):
    h = json.dumps(head).encode()
    return h + payload, str(len(h)) if header_len is None else header_len


def _with_size(size):
    return {"inputs": [{**BIN_HEAD["inputs"][0], "parameters": {"binary_data_size": size}}]}


BAD_BINARY = [
    ("short payload", *bin_case(BIN_HEAD, b"\0" * 4)),
    ("extra payload", *bin_case(BIN_HEAD, b"\0" * 12)),
    ("header length beyond body", bin_case(BIN_HEAD, b"\0" * 8)[0],
     str(len(bin_case(BIN_HEAD, b"\0" * 8)[0]) + 10)),
    ("header length not a number", bin_case(BIN_HEAD, b"\0" * 8)[0], "abc"),
    ("header length negative", bin_case(BIN_HEAD, b"\0" * 8)[0], "-5"),
    ("header length cuts the json", bin_case(BIN_HEAD, b"\0" * 8)[0],
     str(len(json.dumps(BIN_HEAD)) - 3)),
    ("binary_data_size mismatches shape", *bin_case(_with_size(12), b"\0" * 12)),
    ("binary_data_size negative", *bin_case(_with_size(-8), b"\0" * 8)),
    ("binary_data_size not a number", *bin_case(_with_size("8"), b"\0" * 8)),
    ("binary_data_size fractional", *bin_case(_with_size(7.5), b"\0" * 8)),
    ("binary_data_size huge", *bin_case(_with_size(2 ** 64), b"\0" * 8)),
    ("both data and binary_data_size",
     *bin_case({"inputs": [{**BIN_HEAD["inputs"][0], "data": [1, 2]}]}, b"\0" * 8)),
    ("binary payload but no binary input", *bin_case(q([1.0]), b"\0" * 4)),
]


@pytest.mark.parametrize("what,body,header_len", BAD_BINARY, ids=[b[0] for b in BAD_BINARY])
def test_bad_binary_request_is_400(shared, what, body, header_len):
    shared.deploy(Q, "1")
    r = shared.post(QUAD, raw=body, headers={"Inference-Header-Content-Length": header_len,
                                             "Content-Type": "application/octet-stream"})
    expect_error(r, 400)
    expect_status(shared.get("/v2/health/live"), 200)


@pytest.mark.parametrize("what,datatype,payload", [
    ("BYTES prefix beyond the data", "BYTES", struct.pack("<I", 9) + b"ab"),
    ("BYTES truncated prefix", "BYTES", b"\x01\x00"),
    ("BYTES trailing bytes", "BYTES", struct.pack("<I", 1) + b"a" + b"zz"),
    ("BOOL byte other than 0/1", "BOOL", b"\x07"),
])
def test_bad_binary_element_is_400_naming_the_tensor(shared, what, datatype, payload):
    shared.deploy("identity", "1")
    body, headers = binary_request(
        {"inputs": [{"name": "bt", "datatype": datatype, "shape": [1],
                     "parameters": {"binary_data_size": len(payload)}}]}, payload)
    err = expect_error(shared.post(IDENTITY, raw=body, headers=headers), 400)
    assert "bt" in err["error"], err


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", [QUAD, f"/v2/models/{Q}/infer"], ids=["versioned", "unversioned"])
def test_wrong_method_on_an_infer_route_is_405(shared, method, path):
    shared.deploy(Q, "1")
    expect_error(requests.request(method, shared.url(path), timeout=10), 405)


# ---- limits ---------------------------------------------------------------------------------

def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def test_element_limit_is_400_and_body_limit_is_413(server_factory):
    srv = server_factory(args=["--max-elements", "1000", "--max-body-bytes", "4096"])
    srv.deploy(Q, "1")
    srv.deploy("identity", "1")
    over = compact(q([1] * 1001))
    assert len(over) < 4096
    body = expect_error(srv.post(QUAD, raw=over), 400)
    assert "input" in body["error"], body
    expect_status(srv.post(QUAD, raw=compact(q([1] * 1000))), 200)
    # the limit counts every tensor of the request together
    split = {"inputs": [{"name": n, "datatype": "INT8", "shape": [600], "data": [1] * 600}
                        for n in ("a", "b")]}
    expect_error(srv.post(IDENTITY, raw=compact(split)), 400)
    # a shape that claims more than the limit is refused before any data is read
    expect_error(srv.post(QUAD, raw=compact(q([1.0], shape=[1001, 1]))), 400)
    # binary input over the element limit
    payload = b"\0" * 4004
    b, headers = binary_request({"inputs": [{"name": "input", "datatype": "FP32",
                                             "shape": [1001, 1],
                                             "parameters": {"binary_data_size": 4004}}]},
                                payload)
    expect_error(srv.post(QUAD, raw=b, headers=headers), 400, 413)
    expect_error(srv.post(QUAD, raw=b'{"inputs": [' + b" " * 5000 + b"]}"), 413)
    expect_error(srv.post(QUAD, raw=compact(q([1.25] * 900))), 413)  # < 1000 elements, > 4 KiB
    expect_status(srv.get("/v2/health/live"), 200)
    expect_status(srv.post(QUAD, {"inputs": quad_inputs([1.0])}), 200)


def test_nesting_limit_is_configurable(server_factory):
    srv = server_factory(args=["--max-depth", "4"])
    srv.deploy("identity", "1")
    deep = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1, 1, 1, 1],
                        "data": [[[[1]]]]}]}
    expect_error(srv.post(IDENTITY, deep), 400)
    shallow = {"inputs": [{"name": "t", "datatype": "INT8", "shape": [1], "data": [1]}]}
    expect_status(srv.post(IDENTITY, shallow), 200)


def stall(port, path, content_length=1000, sent=b'{"inputs":'):
    """A connection that announces content_length body bytes but sends only `sent`."""
    s = socket.create_connection((HOST, port), timeout=10)
    s.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              f"Content-Length: {content_length}\r\n\r\n".encode() + sent)
    return s


def test_a_stalled_partial_body_does_not_hold_the_server(server_factory):
    # more stalled connections than worker threads: only the timeout can free them. No
    # server-wide inference cap (--thread-reserve 0) and no per-deployment one
    # (--default-max-in-flight 0): with 3 threads they would allow 2 calls, and 1 call of this
    # deployment, at once and answer the next 503 by design, which is not what this measures.
    srv = server_factory(args=["--request-timeout-ms", "500", "--threads", "3",
                               "--thread-reserve", "0", "--default-max-in-flight", "0"])
    srv.deploy(Q, "1")
    stalled = [stall(srv.port, QUAD) for _ in range(5)]
    try:
        results = []

        def client():
            t0 = time.monotonic()
            try:
                r = requests.post(srv.url(QUAD), json={"inputs": quad_inputs([1.0])}, timeout=15)
                results.append((r.status_code, time.monotonic() - t0,
                                r.text if r.status_code != 200 else ""))
            except requests.RequestException as e:
                results.append((repr(e), time.monotonic() - t0, ""))

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        assert [r[0] for r in results] == [200] * 4, \
            f"requests did not get through while partial bodies stalled: {results}"
        assert max(r[1] for r in results) < 10, results
        for s in stalled:  # each stalled request was dropped: closed or answered with a 4xx
            s.settimeout(10)
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            except socket.timeout:
                pytest.fail("a partial body was still held open 10 s after a 500 ms timeout")
            assert data == b"" or data.startswith(b"HTTP/1.1 4"), data[:200]
    finally:
        for s in stalled:
            s.close()
    expect_status(srv.get("/v2/health/live"), 200)


@pytest.mark.stress
def test_concurrent_malformed_and_good_requests_never_5xx(shared):
    shared.deploy(Q, "1")
    bad_bodies = [m[1] for m in MALFORMED if m[0] not in ("depth bomb", "object depth bomb",
                                                           "unclosed depth bomb")]
    errors = []

    def hammer(i):
        with requests.Session() as s:
            for k in range(40):
                body = bad_bodies[(i * 7 + k) % len(bad_bodies)]
                kw = {"data": body} if isinstance(body, bytes) else {"json": body}
                r = s.post(shared.url(QUAD), timeout=10, **kw)
                if r.status_code != 400:
                    errors.append((r.status_code, r.text))
                r = s.post(shared.url(QUAD), json={"inputs": quad_inputs([2.0])}, timeout=10)
                if r.status_code != 200 or r.json()["outputs"][0]["data"] != [15.0]:
                    errors.append((r.status_code, r.text))

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:5]
    expect_status(shared.get("/v2/health/live"), 200)


# ---- bounded responses (--max-response-bytes) -------------------------------------------------

def test_a_response_over_max_response_bytes_is_a_413_and_the_server_keeps_serving(server_factory):
    srv = server_factory(args=["--max-response-bytes", "8192"])
    srv.deploy("identity", "1")
    n = 4000  # 4,000 FP32 as JSON text: ~16 KB, twice the cap
    tensor = {"name": "t", "datatype": "FP32", "shape": [n], "data": [1.5] * n}
    with requests.Session() as s:
        r = s.post(srv.url(IDENTITY), json={"inputs": [tensor]}, timeout=30)
        err = expect_error(r, 413)["error"]
        assert "max-response-bytes" in err and "8192" in err, err
        # the same keep-alive connection still serves, and a small echo passes
        small = {"name": "t", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}
        r = s.post(srv.url(IDENTITY), json={"inputs": [small]}, timeout=30)
        assert r.status_code == 200, describe(r)
        assert r.json()["outputs"][0]["data"] == [1, 2, 3, 4]
        # 1,000 FP32 as binary output is 4,000 bytes plus a short JSON header: under the cap
        payload = struct.pack("<1000f", *([0.25] * 1000))
        body, headers = binary_request(
            {"inputs": [{"name": "t", "datatype": "FP32", "shape": [1000],
                         "parameters": {"binary_data_size": len(payload)}}],
             "outputs": [{"name": "t", "parameters": {"binary_data": True}}]}, payload)
        head, raw = split_binary_response(s.post(srv.url(IDENTITY), data=body, headers=headers,
                                                 timeout=30))
        assert raw == payload, head
    # management responses are bounded by the same cap but stay far below it
    expect_status(srv.get("/models/stats"), 200)
