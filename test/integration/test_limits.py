"""Issue 10 (limits that hold): HTTP framing, slow and idle clients, per-route body limits,
bounded client-controlled counts, unknown names that never allocate, escaped NULs in names and
rate limits (429 with Retry-After).

Framing and slow-client tests speak raw HTTP over sockets: a client library would never send
what they send.
"""
import json
import re
import socket
import threading
import time

import pytest
import requests

from conftest import HOST, describe, expect_error, expect_status, quad_inputs

Q = "quadratic_predictor"
RAW_TIMEOUT_S = 5.0


def raw(port, data, timeout=RAW_TIMEOUT_S, src=None):
    """Send data on a new connection; return (bytes received, closed by the server?)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if src:
        s.bind((src, 0))
    s.settimeout(timeout)
    s.connect((HOST, port))
    s.sendall(data)
    got, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            got += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    s.close()
    return got, closed


def statuses(data):
    return [int(m) for m in re.findall(rb"HTTP/1\.[01] (\d{3}) ", data)]


def error_of(data):
    head, _, body = data.partition(b"\r\n\r\n")
    return json.loads(body.decode())["error"]


def expect_400_and_closed(port, data):
    got, closed = raw(port, data)
    assert statuses(got) == [400], f"expected exactly one 400, got {got[:400]!r}"
    assert closed, f"connection left open after a framing error: {got[:400]!r}"
    assert b"connection: close" in got.lower()
    assert error_of(got)
    return got


# -- HTTP framing (RFC 9112 §6.3) ----------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_400_and_closed(shared):
    smuggled = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"
    body = b"0\r\n\r\n" + smuggled
    req = (b"POST /deployments/deploy HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    got = expect_400_and_closed(shared.port, req)
    assert b'"live"' not in got, "the smuggled request was served"


def test_conflicting_content_lengths_are_400_and_closed(shared):
    expect_400_and_closed(shared.port, b"POST /deployments/deploy HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Length: 2\r\nContent-Length: 30\r\n\r\n{}" + b" " * 28)


def test_non_numeric_content_length_is_400_and_closed(shared):
    expect_400_and_closed(shared.port, b"POST /deployments/deploy HTTP/1.1\r\nHost: localhost\r\n"
                          b"Content-Length: 2abc\r\n\r\n{}")


@pytest.mark.parametrize("req", [
    b"GET /v2/health/live HTTP/1.1\nHost: x\n\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: x\nAccept: */*\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\nHost: localhost\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\n",
], ids=["all-bare-lf", "bare-lf-between-fields", "bare-lf-request-line", "bare-lf-end"])
def test_bare_lf_line_endings_are_400_and_closed(shared, req):
    expect_400_and_closed(shared.port, req)


@pytest.mark.parametrize("req", [
    b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nContent-Length : 0\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-A: 1\r\n folded\r\n\r\n",
    b"GET /v2/health/live HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(70)) +
    b"Host: localhost\r\n\r\n",
], ids=["space-before-colon", "folded-line", "too-many-fields"])
def test_ambiguous_header_blocks_are_400_and_closed(shared, req):
    expect_400_and_closed(shared.port, req)


def test_well_framed_pipelined_requests_are_all_served(shared):
    one = b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n"
    post = (b"POST /v2/models/none/infer HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}")
    got, _ = raw(shared.port, one + post + one, timeout=2)
    assert statuses(got) == [200, 404, 200], got[:600]


def test_oversized_header_block_is_refused(shared):
    got, closed = raw(shared.port, b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\nX-Big: " +
                      b"a" * 20000 + b"\r\n\r\n")
    assert statuses(got) and statuses(got)[0] in (400, 413, 431), got[:300]
    assert closed


# -- slow and idle clients -----------------------------------------------------------------------


def probe_health(srv, n=10, pause=0.2):
    ok = 0
    for _ in range(n):
        try:
            r = requests.get(srv.url("/v2/health/live"), timeout=10)
            ok += r.status_code == 200
        except requests.RequestException:
            pass
        time.sleep(pause)
    return ok


def open_slow(port, n, first=b"GET /v2/health/live HTTP/1.1\r\n", src=None):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if src:
            s.bind((src, 0))
        s.settimeout(5)
        s.connect((HOST, port))
        if first:
            s.sendall(first)
        socks.append(s)
    return socks


def drip(socks, stop):
    """Send one header byte per connection now and then, as a slowloris client does."""
    while not stop.is_set():
        for s in socks:
            try:
                s.sendall(b"X")
            except OSError:
                pass
        stop.wait(0.5)


def test_200_slow_header_clients_do_not_take_health_away(server_factory):
    # A header deadline far longer than the test: only the connection guard can help.
    srv = server_factory(args=["--header-timeout-ms", "120000", "--threads", "64"])
    socks = open_slow(srv.port, 200)
    stop = threading.Event()
    t = threading.Thread(target=drip, args=(socks, stop), daemon=True)
    t.start()
    try:
        ok = probe_health(srv)
        assert ok == 10, f"only {ok}/10 health probes answered beside 200 slow-header clients"
        r = requests.get(srv.url("/models"), timeout=5)
        assert r.status_code == 200, describe(r)
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()


def test_idle_connections_do_not_take_health_away(server_factory):
    srv = server_factory(args=["--threads", "16"])
    socks = open_slow(srv.port, 300, first=None)
    try:
        assert probe_health(srv) == 10
    finally:
        for s in socks:
            s.close()


def test_header_deadline_drops_a_slow_client(server_factory):
    srv = server_factory(args=["--header-timeout-ms", "1000"])
    got, closed = raw(srv.port, b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n", timeout=10)
    assert closed, "a client that never finished its headers was kept past the deadline"
    assert b'"live"' not in got


def test_connections_per_client_address_are_capped(server_factory):
    srv = server_factory(args=["--max-conns-per-client", "4"])
    socks = open_slow(srv.port, 10, src="127.0.0.2")
    time.sleep(1.0)
    alive = 0
    for s in socks:
        s.settimeout(0.5)
        try:  # closed by the server: end-of-file, after a 400 for the unfinished head at most
            got = b""
            while chunk := s.recv(4096):
                got += chunk
            assert not got or statuses(got) == [400], got[:300]
        except socket.timeout:
            alive += 1
        except OSError:
            pass
        s.close()
    assert alive <= 4, f"{alive} connections from one address are open (cap 4)"
    assert probe_health(srv, n=3, pause=0) == 3  # another address is not affected
    text = srv.get("/metrics").text
    assert re.search(r"^dynserve_http_connections_evicted_total \d+", text, re.M), text[-2000:]


def keep_alive_client(srv, n, failures, served, retried=None):
    """n requests on one keep-alive session. A 503 that says Connection: close and Retry-After
    is the server handing the connection's worker on before the body arrived (nothing ran): the
    client retries it once on a new connection, as the answer invites, and it is counted."""
    s = requests.Session()
    body = {"inputs": quad_inputs([1.0])}
    for _ in range(n):
        try:
            r = s.post(srv.url("/v2/models/quadratic_predictor/versions/1/infer"), json=body,
                       timeout=30)
            if (retried is not None and r.status_code == 503 and
                    r.headers.get("Connection", "").lower() == "close" and
                    "Retry-After" in r.headers):
                retried.append(r.json()["error"])
                s = requests.Session()
                r = s.post(srv.url("/v2/models/quadratic_predictor/versions/1/infer"), json=body,
                           timeout=30)
            served.append(r.status_code)
        except requests.RequestException as e:
            failures.append(repr(e)[:200])
            s = requests.Session()


def test_keep_alive_clients_outnumbering_workers_never_fail_at_the_tcp_level(server_factory):
    # More keep-alive clients than workers keeps the connection guard under pressure, so it
    # hands workers on between requests. Shutting a kept-alive connection in both directions
    # (as it first did) lost a request that crossed the kick: ~15% of them failed with "Remote
    # end closed connection without response". Now every request gets an HTTP answer, and a
    # connection the server ends is ended by an answer that says "Connection: close".
    # No inference caps (--thread-reserve 0, --default-max-in-flight 0): 12 clients on one
    # deployment would get their by-design 503 "saturated" beside the kicks this measures.
    srv = server_factory(args=["--threads", "8", "--thread-reserve", "0",
                               "--default-max-in-flight", "0"])
    expect_status(srv.post("/deployments/deploy",
                           {"model_name": "quadratic_predictor", "version": "1"}), 201)
    failures, served, retried = [], [], []
    threads = [threading.Thread(target=keep_alive_client,
                                args=(srv, 150, failures, served, retried))
               for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    # The one close left that no server can remove (README "Slow and idle clients"): a kept-alive
    # connection quiet for a second is kicked just as its client, stalled that long, sends
    # again. 0 on a quiet machine; 2 of 1,800 seen at load ~5 (the old guard: ~15%).
    assert len(failures) <= 12 * 150 // 100, f"{len(failures)} of {12 * 150} failed: {failures[:5]}"
    assert all("Remote end closed connection without response" in f for f in failures), failures
    assert served.count(200) == len(served) == 12 * 150 - len(failures), sorted(set(served))
    # A kick that lands between a request's headers and its body (Python sends them apart) is
    # answered 503 + Retry-After + Connection: close; rare (a connection must have been quiet
    # for a second to be kicked), and never a 400 blaming the client.
    assert len(retried) <= 12 * 150 // 100, retried[:3]
    assert all("nothing ran" in e for e in retried), retried[:3]


def test_max_conns_per_client_rejects_bad_values(tmp_path):
    from test_server import run_to_exit
    code, _, err = run_to_exit(tmp_path, ["--max-conns-per-client", "-1", "--port", "0"])
    assert code == 2, err


# -- per-route body limits -----------------------------------------------------------------------


def test_json_limit_applies_to_json_routes_and_upload_limit_only_to_uploads(server_factory):
    srv = server_factory(args=["--max-body-bytes", "4096", "--max-upload-bytes", "200000"])
    big_json = {"name": "x", "version": "1", "plugin": "/p", "config": {"pad": "a" * 8000}}
    expect_error(srv.post("/models", big_json), 413)
    expect_error(srv.post("/deployments/deploy", {"model_name": "a" * 8000, "version": "1"}), 413)
    # an upload route takes up to --max-upload-bytes (the bytes are refused for not being ELF)
    r = srv.put("/models/big/versions/1", data=b"\0" * 100000,
                headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400, describe(r)
    r = srv.put("/models/big/versions/1", data=b"\0" * 300000,
                headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 413, describe(r)
    # a JSON body on the upload path gets the JSON limit
    r = srv.put("/models/big/versions/1", data=b" " * 8000,
                headers={"Content-Type": "application/json"})
    assert r.status_code == 413, describe(r)
    assert "big" not in srv.models()


# -- bounded counts, names, unknown names ----------------------------------------------------------


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unknown_model_names_never_allocate(server):
    s = requests.Session()

    def burst(start, n):
        for i in range(start, start + n):
            r = s.post(server.url("/deployments/deploy"),
                       json={"model_name": f"ghost{i}", "version": "1"}, timeout=10)
            assert r.status_code == 404, describe(r)
            r = s.post(server.url(f"/v2/models/ghost{i}/infer"),
                       json={"inputs": quad_inputs([1])}, timeout=10)
            assert r.status_code == 404, describe(r)

    burst(0, 2000)  # warm up: thread buffers, SQLite page cache
    before = rss_kib(server.proc.pid)
    burst(2000, 20000)
    grown = rss_kib(server.proc.pid) - before
    maps = open(f"/proc/{server.proc.pid}/maps").read()
    if "libasan" in maps or "libtsan" in maps:
        pytest.skip("a sanitizer's allocator quarantine makes RSS meaningless (the 404s held)")
    # The bug this guards against kept ~700 bytes per unknown name (35 MB per 50,000).
    assert grown < 3 * 1024, f"RSS grew by {grown} KiB over 20,000 unknown names"


def test_events_limit_and_names_are_bounded(shared):
    expect_error(shared.get("/deployments/events?limit=100000000"), 400)
    expect_error(shared.get("/deployments/events?limit=-1"), 400)
    expect_error(shared.post("/deployments/deploy", {"model_name": "m" * 65, "version": "1"}), 400)


@pytest.mark.parametrize("body", [
    {"model_name": "quadratic_predictor\u0000x", "version": "1"},
    {"model_name": "quadratic_predictor", "version": "1\u0000"},
    {"model_name": "quadratic_predictor", "version": "1", "endpoint_name": "e\u0000f"},
])
def test_escaped_nul_in_a_name_is_refused(shared, body):
    r = shared.post("/deployments/deploy", raw=json.dumps(body))
    expect_error(r, 400)
    assert shared.deployments() == [], "a name with an escaped NUL was deployed"


def test_escaped_nul_in_register_name_is_refused(shared):
    r = shared.post("/models", raw='{"name":"x\\u0000y","version":"1","plugin":"/p"}')
    expect_error(r, 400)
    assert "x" not in shared.models()


# -- rate limits ---------------------------------------------------------------------------------


def burst_statuses(srv, n, path="/v2/health/ready", method="get", **kw):
    s = requests.Session()
    out = []
    for _ in range(n):
        r = getattr(s, method)(srv.url(path), timeout=10, **kw)
        out.append(r)
    return out


def assert_429(r):
    body = expect_error(r, 429)
    ra = r.headers.get("Retry-After")
    assert ra and ra.isdigit() and int(ra) >= 1, f"429 without a whole-second Retry-After: {r.headers}"
    return body


def test_rate_limit_per_client_answers_429_with_retry_after(server_factory):
    srv = server_factory(args=["--rate-limit", "2:5"])
    got = burst_statuses(srv, 30, "/models")
    codes = [r.status_code for r in got]
    assert codes.count(200) >= 5 and codes.count(429) >= 10, codes
    assert_429(next(r for r in got if r.status_code == 429))
    # health stays open to probes however fast they come
    assert all(r.status_code == 200 for r in burst_statuses(srv, 20, "/v2/health/live"))
    time.sleep(1.5)  # /metrics is limited too: let the bucket refill
    text = srv.get("/metrics").text
    m = re.search(r'^dynserve_rate_limited_total\{scope="client"\} (\d+)', text, re.M)
    assert m and int(m.group(1)) >= 10, text[-2000:]


def test_rate_limit_per_deployment_from_limits_route(server_factory):
    srv = server_factory()
    srv.deploy(Q, "1")
    r = srv.put(f"/deployments/{Q}/1/limits", data=json.dumps({"rate_limit": {"rps": 1, "burst": 3}}))
    body = expect_status(r, 200)
    assert body["rate_limit"] == {"rps": 1, "burst": 3}, body
    got = burst_statuses(srv, 12, f"/v2/models/{Q}/versions/1/infer", method="post",
                         json={"inputs": quad_inputs([1])})
    codes = [r.status_code for r in got]
    assert 3 <= codes.count(200) <= 5 and codes.count(429) >= 7, codes
    assert_429(next(r for r in got if r.status_code == 429))
    other = srv.post(f"/v2/models/{Q}/versions/2/infer", {"inputs": quad_inputs([1])})
    assert other.status_code == 404  # not deployed; but never 429
    stats = expect_status(srv.get(f"/deployments/{Q}/1/stats"), 200)
    assert stats.get("rate_limited", 0) >= 7, stats
    text = srv.get("/metrics").text
    assert re.search(r'^dynserve_rate_limited_total\{scope="deployment",model="%s",version="1"\} \d+'
                     % Q, text, re.M), text[-3000:]
    expect_status(srv.get(f"/deployments/{Q}/1/limits"), 200)
    expect_error(srv.put(f"/deployments/{Q}/1/limits", data=json.dumps({"rate_limit": {"rps": -1}})), 400)
    expect_error(srv.put(f"/deployments/{Q}/1/limits", data=json.dumps({"bogus": 1})), 400)
    expect_error(srv.put(f"/deployments/{Q}/2/limits", data=json.dumps({"rate_limit": None})), 404)
    # off again
    expect_status(srv.put(f"/deployments/{Q}/1/limits", data=json.dumps({"rate_limit": None})), 200)
    codes = [r.status_code for r in burst_statuses(srv, 8, f"/v2/models/{Q}/versions/1/infer",
                                                    method="post", json={"inputs": quad_inputs([1])})]
    assert codes == [200] * 8, codes


def test_rate_limit_in_deploy_body_survives_restart(server_factory):
    srv = server_factory()
    r = srv.post("/deployments/deploy", {"model_name": Q, "version": "2",
                                         "rate_limit": {"rps": 0.5, "burst": 2}})
    expect_status(r, 201)
    srv.restart()
    srv.wait_ready()
    got = burst_statuses(srv, 6, f"/v2/models/{Q}/versions/2/infer", method="post",
                         json={"inputs": quad_inputs([1])})
    codes = [r.status_code for r in got]
    assert codes.count(200) == 2 and codes.count(429) == 4, codes
    assert int(next(r for r in got if r.status_code == 429).headers["Retry-After"]) >= 1


def test_rate_limit_from_limits_route_survives_restart(server_factory):
    srv = server_factory()
    srv.deploy(Q, "1")
    expect_status(srv.put(f"/deployments/{Q}/1/limits",
                          data=json.dumps({"rate_limit": {"rps": 0.5, "burst": 2}})), 200)
    events = expect_status(srv.get("/deployments/events"), 200)["events"]
    assert any(e["kind"] == "limits" and e["version"] == "1" for e in events), events
    srv.restart()
    srv.wait_ready()
    body = expect_status(srv.get(f"/deployments/{Q}/1/limits"), 200)
    assert body["rate_limit"] == {"rps": 0.5, "burst": 2}, body
    d = next(d for d in srv.deployments() if d["model_name"] == Q)
    assert d["options"]["rate_limit"] == {"rps": 0.5, "burst": 2}, d
    got = burst_statuses(srv, 6, f"/v2/models/{Q}/versions/1/infer", method="post",
                         json={"inputs": quad_inputs([1])})
    codes = [r.status_code for r in got]
    assert codes.count(200) == 2 and codes.count(429) == 4, codes
    # removing it is stored too
    expect_status(srv.put(f"/deployments/{Q}/1/limits", data=json.dumps({"rate_limit": None})),
                  200)
    srv.restart()
    srv.wait_ready()
    assert expect_status(srv.get(f"/deployments/{Q}/1/limits"), 200)["rate_limit"] is None
    codes = [r.status_code for r in burst_statuses(srv, 6, f"/v2/models/{Q}/versions/1/infer",
                                                    method="post",
                                                    json={"inputs": quad_inputs([1])})]
    assert codes == [200] * 6, codes
