"""`dynserve ctl` (issue 13, part 6) against the real server: every subcommand, human tables and
--json, and the exit codes scripts rely on (0 ok, 1 server error, 2 usage, 3 unreachable,
4 not found, 5 conflict, 6 unauthorized/forbidden, 7 unavailable)."""
import http.server
import json
import os
import subprocess
import threading

import pytest

from conftest import BIN, expect_status, fixture_plugin, free_port, model_plugin, quad_inputs

Q = "quadratic_predictor"


def ctl(server, *args, json_out=False, env=None, expect=0, url=None):
    cmd = [str(BIN), "ctl", "--server", url or server.base, *(["--json"] if json_out else []),
           *map(str, args)]
    e = dict(os.environ)
    e.pop("DYNSERVE_TOKEN", None)
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=e,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == expect, \
        f"{cmd} exited {p.returncode}, expected {expect}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    if json_out and expect == 0:
        return json.loads(p.stdout)
    return p


def table(p):
    """Rows of a human table as lists of cells (split on runs of two or more spaces)."""
    import re
    lines = [line for line in p.stdout.splitlines() if line.strip()]
    return [re.split(r"\s{2,}", line.strip()) for line in lines]


def test_status_and_models(server):
    p = ctl(server, "status")
    assert "ready:   yes" in p.stdout and "dynserve" in p.stdout, p.stdout
    st = ctl(server, "status", json_out=True)
    assert st["ready"] is True and st["metadata"]["name"] == "dynserve"
    rows = table(ctl(server, "models"))
    assert rows[0] == ["MODEL", "VERSIONS"]
    assert [Q, "1,2"] in rows
    assert ctl(server, "models", json_out=True) == expect_status(server.get("/models"), 200)


def test_register_upload_and_conflicts(server):
    p = ctl(server, "register", "fx", "1", fixture_plugin("slow"), "--config", '{"sleep_ms":0}')
    assert "registered fx version 1" in p.stdout
    ctl(server, "register", "fx", "1", fixture_plugin("slow"), expect=5)  # 409
    ctl(server, "register", "fx", "2", "/no/such/plugin.so", expect=1)  # 400
    ctl(server, "register", "fx", "2", "--config", expect=2)  # usage
    up = ctl(server, "upload", "up", "1", model_plugin(Q, 2), json_out=True)
    assert up["name"] == "up" and up["version"] == "1"
    assert "up" in server.models()
    ctl(server, "upload", "up", "2", "/no/such/file", expect=2)


def test_deploy_traffic_promote_rollback_undeploy(server):
    assert "deployed" in ctl(server, "deploy", Q, "1", "--endpoint", "quad").stdout
    ctl(server, "deploy", Q, "1", expect=5)
    ctl(server, "deploy", "nope", "1", expect=4)
    ctl(server, "deploy", Q, "2", "--options", "[1]", expect=2)
    d = ctl(server, "deploy", Q, "2", json_out=True)
    assert d["model_name"] == Q and d["version"] == "2" and d["status"] == "active"
    rows = table(ctl(server, "status"))
    assert any(r[:2] == [Q, "1"] and "quad" in r for r in rows), rows
    ctl(server, "traffic", Q, "1=90", "2=10")
    rows = table(ctl(server, "traffic", Q))
    assert rows[0] == ["VERSION", "WEIGHT"] and ["1", "90"] in rows and ["2", "10"] in rows
    ctl(server, "traffic", Q, "1=50", expect=1)  # weights must sum to 100: 400
    ctl(server, "traffic", Q, "garbage", expect=2)
    ctl(server, "promote", Q, "2")
    got = expect_status(server.get(f"/deployments/{Q}/traffic"), 200)
    assert json.dumps(got).count('"2"') >= 1 and "100" in json.dumps(got), got
    ctl(server, "rollback", Q)
    ctl(server, "promote", Q, "7", expect=5)  # 409: not deployed
    assert "undeployed" in ctl(server, "undeploy", Q, "2").stdout
    ctl(server, "undeploy", "--endpoint", "quad")
    ctl(server, "undeploy", Q, "1", expect=4)
    assert server.deployments() == []


def test_stats_table_and_events(server):
    server.deploy(Q, "1")
    for _ in range(3):
        expect_status(server.infer(Q, "1", quad_inputs([1.0])), 200)
    rows = table(ctl(server, "stats"))
    assert rows[0][:4] == ["MODEL", "VERSION", "REQUESTS", "ERRORS"]
    row = next(r for r in rows if r[:2] == [Q, "1"])
    assert row[2] == "3" and row[3] == "0", row
    assert len(table(ctl(server, "stats", "identity"))) == 1  # header only
    js = ctl(server, "stats", json_out=True)
    assert js == expect_status(server.get("/models/stats"), 200) or "stats" in js
    ev = table(ctl(server, "events", "--model", Q, "--limit", "5"))
    assert ev[0][:3] == ["ID", "AT", "KIND"] and any("deploy" in r for r in ev[1:]), ev
    assert ctl(server, "events", "--limit", "1", json_out=True)["events"]
    ctl(server, "events", "--bogus", expect=2)


def test_usage_and_unreachable_exit_codes(server):
    ctl(server, expect=2)
    ctl(server, "frobnicate", expect=2)
    ctl(server, "models", "extra", expect=2)
    assert "usage" in ctl(server, "--help").stdout
    dead = f"http://127.0.0.1:{free_port()}"
    p = ctl(server, "models", url=dead, expect=3)
    assert "cannot reach" in p.stderr


class Recorder(http.server.BaseHTTPRequestHandler):
    seen = []
    status = 200

    def do_GET(self):  # noqa: N802 -- http.server's naming
        Recorder.seen.append((self.path, self.headers.get("Authorization")))
        body = json.dumps({"models": []} if Recorder.status == 200 else {"error": "no"}).encode()
        self.send_response(Recorder.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.mark.parametrize("status,code", [(200, 0), (401, 6), (403, 6), (503, 7), (500, 1)])
def test_token_from_environment_and_auth_exit_codes(server, status, code):
    """DYNSERVE_TOKEN travels as a bearer token; 401/403 exit 6. A recording HTTP server on
    loopback stands in only to see the request's headers (the real server does not echo them)."""
    Recorder.seen, Recorder.status = [], status
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Recorder)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        ctl(server, "models", url=url, env={"DYNSERVE_TOKEN": "s3cret"}, expect=code)
    finally:
        httpd.shutdown()
    assert Recorder.seen == [("/models", "Bearer s3cret")]
