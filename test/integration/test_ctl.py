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
from test_auth import create_token, tls_server  # noqa: F401 -- tls_server is a fixture

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


# ---- against the real server: tokens, shadow, every --json, environment, TLS -----------------

TOKEN_RE = r"dsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}"


@pytest.fixture
def authed(server_factory):
    """A real server with auth on: an admin token made with `dynserve token create` first."""
    srv = server_factory(start=False)
    srv.admin = create_token(srv.data_dir, "root", "admin")
    srv.start()
    return srv


def as_(token):
    return {"DYNSERVE_TOKEN": token}


def test_tokens_create_list_revoke_against_the_real_server(authed):
    import re
    admin = as_(authed.admin)
    ctl(authed, "tokens", "list", expect=6)  # 401: no token
    ctl(authed, "tokens", "list", env=as_("dsk_0000000000000000_" + "x" * 43), expect=6)
    p = ctl(authed, "tokens", "create", "ci", "deployer", "--expires", "30d", env=admin)
    assert "created token ci (role deployer)" in p.stdout, p.stdout
    ci = re.search(TOKEN_RE, p.stdout).group(0)
    made = ctl(authed, "tokens", "create", "dash", "viewer", json_out=True, env=admin)
    assert made["name"] == "dash" and made["role"] == "viewer"
    assert re.fullmatch(TOKEN_RE, made["token"]), made
    ctl(authed, "tokens", "create", "ci", "viewer", env=admin, expect=5)  # 409: name taken
    ctl(authed, "tokens", "create", "x", "superuser", env=admin, expect=1)  # 400: no such role
    ctl(authed, "tokens", "create", "x", env=admin, expect=2)
    ctl(authed, "tokens", "frobnicate", env=admin, expect=2)

    rows = table(ctl(authed, "tokens", "list", env=admin))
    assert rows[0] == ["ID", "NAME", "ROLE", "CREATED_AT", "EXPIRES_AT", "LAST_USED_AT",
                       "REVOKED_AT"], rows
    names = {r[1]: r for r in rows[1:]}
    assert set(names) == {"root", "ci", "dash"} and names["ci"][2] == "deployer", rows
    listed = ctl(authed, "tokens", "list", json_out=True, env=admin)
    assert listed == expect_status(authed.get(
        "/tokens", headers={"Authorization": f"Bearer {authed.admin}"}), 200)
    assert all(ci not in json.dumps(t) for t in listed["tokens"]), "secrets are never listed"

    # the tokens work, with their roles
    assert "deployed" in ctl(authed, "deploy", Q, "1", env=as_(ci)).stdout
    ctl(authed, "tokens", "list", env=as_(ci), expect=6)  # 403: deployer is not admin
    ctl(authed, "deploy", Q, "2", env=as_(made["token"]), expect=6)  # 403: viewer
    assert [Q, "1,2"] in table(ctl(authed, "models", env=as_(made["token"])))

    assert "revoked token ci" in ctl(authed, "tokens", "revoke", "ci", env=admin).stdout
    ctl(authed, "models", env=as_(ci), expect=6)  # revoked: 401
    dash_id = next(t["id"] for t in listed["tokens"] if t["name"] == "dash")
    gone = ctl(authed, "tokens", "revoke", str(dash_id), json_out=True, env=admin)
    assert gone["name"] == "dash" and gone.get("revoked_at"), gone
    ctl(authed, "tokens", "revoke", "nope", env=admin, expect=4)
    revoked = {t["name"] for t in ctl(authed, "tokens", "list", json_out=True,
                                      env=admin)["tokens"] if t.get("revoked_at")}
    assert revoked == {"ci", "dash"}


def test_traffic_with_shadow_and_json(server):
    server.deploy(Q, "1")
    server.deploy(Q, "2")
    set_ = ctl(server, "traffic", Q, "1=100", "--shadow", "2:20", json_out=True)
    got = expect_status(server.get(f"/deployments/{Q}/traffic"), 200)
    assert got["shadow"]["version"] == "2" and got["shadow"]["percent"] == 20, got
    assert set_["shadow"] == got["shadow"], set_
    assert ctl(server, "traffic", Q, json_out=True) == got
    rows = table(ctl(server, "traffic", Q))
    assert ["1", "100"] in rows and any("shadow" in " ".join(r) and "2" in " ".join(r)
                                        for r in rows), rows
    ctl(server, "traffic", Q, "1=100", "--shadow", "2", expect=2)
    ctl(server, "traffic", Q, "1=100", "--shadow", "9:20", expect=5)  # not deployed: 409
    ctl(server, "traffic", "nope", "1=100", expect=4)
    ctl(server, "promote", Q, "2", json_out=True)  # --json: the server's reply, parsed
    after = expect_status(server.get(f"/deployments/{Q}/traffic"), 200)
    assert '"2"' in json.dumps(after) and "100" in json.dumps(after), after
    back = ctl(server, "rollback", Q, json_out=True)
    assert back == expect_status(server.get(f"/deployments/{Q}/traffic"), 200), back
    ctl(server, "rollback", "nope", expect=4)


def test_json_of_register_deploy_undeploy_and_stats(server):
    reg = ctl(server, "register", "fx", "1", fixture_plugin("slow"), json_out=True)
    assert reg["name"] == "fx" and reg["version"] == "1" and len(reg["plugin_sha256"]) == 64
    d = ctl(server, "deploy", "fx", "1", "--options", '{"timeout_ms":5000}', json_out=True)
    assert d["options"]["timeout_ms"] == 5000, d
    st = ctl(server, "stats", "fx", json_out=True)  # the server's /models/stats
    assert '"model_name": "fx"' in json.dumps(st) and set(st) == set(
        expect_status(server.get("/models/stats"), 200)), st
    rows = table(ctl(server, "stats", "fx"))
    assert len(rows) == 2 and rows[1][:2] == ["fx", "1"], rows
    u = ctl(server, "undeploy", "fx", "1", json_out=True)
    assert u["model_name"] == "fx" and u["version"] == "1", u
    ctl(server, "undeploy", "fx", "1", json_out=True, expect=4)
    ev = ctl(server, "events", "--model", "fx", json_out=True)["events"]
    assert {e["kind"] for e in ev} >= {"deploy", "undeploy"}, ev


def test_server_from_environment_and_timeout_option(server):
    e = {"DYNSERVE_SERVER": server.base}
    cmd = [str(BIN), "ctl", "models"]
    env = {**os.environ, **e}
    env.pop("DYNSERVE_TOKEN", None)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0 and Q in p.stdout, p
    assert Q in ctl(server, "--timeout", "5", "models").stdout
    for bad in ("0", "-1", "x", "86401"):
        ctl(server, "--timeout", bad, "models", expect=2)
    ctl(server, "--server", expect=2)


def test_tls_server_with_cacert_and_insecure(tls_server):
    p = ctl(tls_server, "models", expect=3)  # the certificate is not trusted: cannot reach
    assert "cannot reach" in p.stderr, p.stderr
    assert Q in ctl(tls_server, "--cacert", tls_server.cert, "models").stdout
    assert Q in ctl(tls_server, "--insecure", "models").stdout
    ctl(tls_server, "--cacert", expect=2)
