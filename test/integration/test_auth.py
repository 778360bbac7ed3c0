"""Issue 10 (authentication and safe defaults): tokens, roles, JWT, the audit trail, CORS, Origin
and Host rules, loopback-only default, TLS, file modes.

The route matrix walks every route in ROUTES with every role and with every kind of bad
credential, and asserts the status: 401 (with WWW-Authenticate: Bearer) without a valid token,
403 with the wrong role, and anything but 401/403 when allowed (the handler then answers 200,
400 or 404 for the harmless bodies used here; nothing in the matrix changes state).
"""
import base64
import hashlib
import hmac
import json
import os
import pathlib
import re
import socket
import sqlite3
import stat
import subprocess
import time

import jwt
import pytest
import requests

from conftest import (BIN, HOST, HTTP_TIMEOUT_S, Server, ServerStartError, describe,
                      expect_error, expect_status, free_port, model_plugin, quad_inputs)

ROLES = ("inference", "viewer", "deployer", "admin")
ALLOWED = {  # need -> roles that may
    "open": set(ROLES),
    "token": set(ROLES),
    "infer": {"inference", "deployer", "admin"},
    "read": {"viewer", "deployer", "admin"},
    "deploy": {"deployer", "admin"},
    "admin": {"admin"},
}
HS_SECRET = "integration-test-secret-0123456789abcdef"
AUDIENCE = "dynserve-test"

# (method, path, JSON body or None, need). Bodies are harmless: invalid or about nothing.
ROUTES = [
    ("GET", "/v2", None, "open"),
    ("GET", "/v2/health/live", None, "open"),
    ("GET", "/v2/health/ready", None, "open"),
    ("GET", "/", None, "open"),
    ("GET", "/index.html", None, "open"),
    ("GET", "/v2/models/quadratic_predictor", None, "infer"),
    ("GET", "/v2/models/quadratic_predictor/versions/1", None, "infer"),
    ("GET", "/v2/models/quadratic_predictor/versions/1/ready", None, "infer"),
    ("GET", "/v2/models/quadratic_predictor/ready", None, "infer"),
    ("POST", "/v2/models/quadratic_predictor/versions/1/infer", {"inputs": []}, "infer"),
    ("POST", "/v2/models/quadratic_predictor/infer", {"inputs": []}, "infer"),
    ("POST", "/predict/nothing_here", {"input": 1}, "infer"),
    ("POST", "/predict", {"input": 1}, "infer"),
    ("GET", "/v2/jobs/none", None, "infer"),
    ("GET", "/v2/jobs/none/result", None, "infer"),
    ("GET", "/v2/models/stats", None, "read"),
    ("GET", "/v2/models/quadratic_predictor/stats", None, "read"),
    ("GET", "/v2/models/quadratic_predictor/versions/1/stats", None, "read"),
    ("POST", "/v2/repository/index", {}, "read"),
    ("POST", "/v2/repository/models/no_such_model/load", {}, "deploy"),
    ("POST", "/v2/repository/models/no_such_model/unload", {}, "deploy"),
    ("GET", "/models", None, "read"),
    ("GET", "/models/stats", None, "read"),
    ("GET", "/models/quadratic_predictor/versions/1", None, "read"),
    ("POST", "/models", {}, "admin"),
    ("PUT", "/models/no_such_model/versions/1", b"", "admin"),
    ("DELETE", "/models/no_such_model/versions/1", None, "admin"),
    ("GET", "/deployments", None, "read"),
    ("GET", "/deployments/events", None, "read"),
    ("GET", "/deployments/replicas", None, "read"),
    ("GET", "/deployments/quadratic_predictor/traffic", None, "read"),
    ("GET", "/deployments/quadratic_predictor/1/stats", None, "read"),
    ("POST", "/deployments/deploy", {}, "deploy"),
    ("POST", "/deployments/undeploy", {}, "deploy"),
    ("PUT", "/deployments/quadratic_predictor/traffic", {}, "deploy"),
    ("POST", "/deployments/quadratic_predictor/promote", {}, "deploy"),
    ("POST", "/deployments/no_such_model/rollback", {}, "deploy"),
    ("PUT", "/deployments/no_such_model/1/limits", {}, "deploy"),
    ("GET", "/deployments/no_such_model/1/limits", None, "read"),
    ("GET", "/metrics", None, "read"),
    ("GET", "/openapi.json", None, "read"),
    ("GET", "/docs", None, "read"),
    ("GET", "/auth/whoami", None, "token"),
    ("GET", "/tokens", None, "admin"),
    ("POST", "/tokens", {}, "admin"),
    ("DELETE", "/tokens/no_such_token", None, "admin"),
    # not routes: closed by the table's last row, never open
    ("POST", "/", {}, "admin"),
    ("DELETE", "/models", None, "admin"),
]


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cli(data_dir, *args, check=True):
    """Run `dynserve token ...`; returns the CompletedProcess."""
    p = subprocess.run([str(BIN), "token", *args, "--data-dir", str(data_dir)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
    if check:
        assert p.returncode == 0, f"dynserve token {args}: {p.returncode}\n{p.stderr}"
    return p


def create_token(data_dir, name, role, expires=None):
    args = ["create", "--role", role, "--name", name]
    if expires:
        args += ["--expires", expires]
    out = cli(data_dir, *args).stdout.strip()
    assert re.fullmatch(r"dsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", out), f"not a token: {out!r}"
    return out


def make_jwt(role, exp_in=600, aud=AUDIENCE, key=HS_SECRET, **extra):
    claims = {"sub": f"user-{role}", "exp": int(time.time()) + exp_in, "role": role, "aud": aud}
    claims.update(extra)
    return jwt.encode(claims, key, algorithm="HS256")


def alg_none_jwt(role="admin"):
    head = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": "mallory", "exp": int(time.time()) + 600, "role": role,
                              "aud": AUDIENCE}).encode())
    return f"{head}.{body}."


def request(srv, method, path, body=None, token=None, headers=None, session=None):
    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    kw = {"headers": h, "timeout": HTTP_TIMEOUT_S}
    if isinstance(body, bytes):
        kw["data"] = body
        h.setdefault("Content-Type", "application/octet-stream")
    elif body is not None:
        kw["json"] = body
    return (session or requests).request(method, srv.url(path), **kw)


@pytest.fixture
def secured(server_factory, tmp_path):
    """A server with one token per role, plus an expired and a revoked one, and HS256 JWTs."""
    secret = tmp_path / "jwt.secret"
    secret.write_text(HS_SECRET + "\n")
    srv = server_factory(start=False,
                         args=["--jwt-hs256-secret-file", str(secret), "--jwt-audience", AUDIENCE])
    tokens = {role: create_token(srv.data_dir, f"t-{role}", role) for role in ROLES}
    expired = create_token(srv.data_dir, "short-lived", "admin", expires="1s")
    revoked = create_token(srv.data_dir, "gone", "admin")
    cli(srv.data_dir, "revoke", "gone")
    time.sleep(1.5)  # short-lived expires
    srv.start()
    srv.tokens, srv.expired, srv.revoked = tokens, expired, revoked
    return srv


def check_route(srv, session, method, path, body, need, who, token, ok_roles):
    r = request(srv, method, path, body, token=token, session=session)
    where = f"{who}: {describe(r)}"
    if need == "open" or (who in ok_roles):
        assert r.status_code not in (401, 403), where
        return
    if who in ROLES:
        assert r.status_code == 403, where
    else:
        assert r.status_code == 401, where
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), where
    body_json = expect_error(r, r.status_code)
    if token:
        assert token not in r.text and token[:20] not in body_json["error"], where


def bad_credentials(srv):
    valid = srv.tokens["admin"]
    forged = valid[:-1] + ("A" if valid[-1] != "A" else "B")
    return {
        "no token": None,
        "garbage": "not-a-token",
        "forged secret": forged,
        "unknown id": "dsk_0000000000000000_" + valid[len("dsk_") + 17:],
        "expired": srv.expired,
        "revoked": srv.revoked,
        "jwt wrong signature": make_jwt("admin", key="another-secret-another-secret-xxxxxxxx"),
        "jwt alg none": alg_none_jwt(),
        "jwt wrong aud": make_jwt("admin", aud="someone-else"),
        "jwt expired": make_jwt("admin", exp_in=-3600),
    }


def test_every_route_times_every_role_and_credential(secured):
    s = requests.Session()
    for method, path, body, need in ROUTES:
        need = "open" if need == "infer" else need  # the data plane is open by default
        for role, token in secured.tokens.items():
            check_route(secured, s, method, path, body, need, role, token, ALLOWED[need])
        for role in ROLES:  # the same roles as JWTs
            check_route(secured, s, method, path, body, need, role, make_jwt(role),
                        ALLOWED[need])
        for what, token in bad_credentials(secured).items():
            check_route(secured, s, method, path, body, need, what, token, set())


def test_infer_auth_required_closes_the_data_plane(server_factory):
    srv = server_factory(start=False, args=["--infer-auth", "required"])
    tokens = {role: create_token(srv.data_dir, f"t-{role}", role) for role in ROLES}
    srv.start()
    s = requests.Session()
    for method, path, body, need in ROUTES:
        if need != "infer":
            continue
        check_route(srv, s, method, path, body, need, "no token", None, set())
        for role, token in tokens.items():
            check_route(srv, s, method, path, body, need, role, token, ALLOWED["infer"])
    # and it really serves: deploy with the deployer, infer with the inference token
    r = request(srv, "POST", "/deployments/deploy",
                {"model_name": "quadratic_predictor", "version": "1"}, token=tokens["deployer"])
    expect_status(r, 201)
    r = request(srv, "POST", "/v2/models/quadratic_predictor/versions/1/infer",
                {"inputs": quad_inputs([1.0])}, token=tokens["inference"])
    assert expect_status(r, 200)["outputs"][0]["data"] == [6.0]
    expect_error(request(srv, "POST", "/v2/models/quadratic_predictor/versions/1/infer",
                         {"inputs": quad_inputs([1.0])}), 401)


def test_roles_do_what_the_table_says_end_to_end(secured):
    t = secured.tokens
    deploy = {"model_name": "quadratic_predictor", "version": "1"}
    expect_error(request(secured, "POST", "/deployments/deploy", deploy, token=t["viewer"]), 403)
    expect_status(request(secured, "POST", "/deployments/deploy", deploy, token=t["deployer"]),
                  201)
    r = request(secured, "POST", "/v2/models/quadratic_predictor/versions/1/infer",
                {"inputs": quad_inputs([2.0])})
    assert expect_status(r, 200)["outputs"][0]["data"] == [15.0]  # open data plane
    plugin = model_plugin("quadratic_predictor", 2).read_bytes()
    r = request(secured, "PUT", "/models/uploaded/versions/1", plugin, token=t["deployer"])
    expect_error(r, 403)
    r = request(secured, "PUT", "/models/uploaded/versions/1", plugin, token=t["admin"])
    expect_status(r, 201)
    expect_status(request(secured, "POST", "/deployments/undeploy", deploy,
                          token=make_jwt("deployer")), 200)


def test_whoami(server_factory, secured):
    for role, token in secured.tokens.items():
        body = expect_status(request(secured, "GET", "/auth/whoami", token=token), 200)
        assert body == {"auth": True, "name": f"t-{role}", "role": role}, body
    body = expect_status(request(secured, "GET", "/auth/whoami", token=make_jwt("viewer")), 200)
    assert body == {"auth": True, "name": "jwt:user-viewer", "role": "viewer"}, body
    open_srv = server_factory()
    body = expect_status(open_srv.get("/auth/whoami"), 200)
    assert body["auth"] is False and body["role"] == "admin", body


def test_audit_records_actor_and_client_address(secured):
    t = secured.tokens
    deploy = {"model_name": "quadratic_predictor", "version": "1"}
    expect_status(request(secured, "POST", "/deployments/deploy", deploy, token=t["deployer"]),
                  201)
    expect_status(request(secured, "POST", "/deployments/undeploy", deploy,
                          token=make_jwt("admin")), 200)
    events = expect_status(request(secured, "GET", "/deployments/events?limit=5",
                                   token=t["viewer"]), 200)["events"]
    by_kind = {e["kind"]: e for e in events}
    assert by_kind["deploy"]["actor"] == "t-deployer", events
    assert by_kind["undeploy"]["actor"] == "jwt:user-admin", events
    for k in ("deploy", "undeploy"):
        assert by_kind[k]["client_addr"] == "127.0.0.1", events
    # the examples registered at startup were done by the server itself
    events = expect_status(request(secured, "GET", "/deployments/events?limit=1000",
                                   token=t["viewer"]), 200)["events"]
    startup = [e for e in events if e["kind"] == "register"]
    assert startup and all(e["actor"] is None for e in startup), startup
    # no secret anywhere in the registry file
    raw = (secured.data_dir / "registry.db").read_bytes()
    for token in t.values():
        assert token.encode() not in raw
        assert token[len("dsk_") + 17:].encode() not in raw  # the secret (may contain "_")


def test_tokens_over_rest(secured):
    admin = secured.tokens["admin"]
    r = request(secured, "POST", "/tokens", {"name": "ci", "role": "viewer", "expires": "1d"},
                token=admin)
    body = expect_status(r, 201)
    assert body["name"] == "ci" and body["role"] == "viewer" and body["expires_at"], body
    new = body["token"]
    assert re.fullmatch(r"dsk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", new), body
    assert new.split("_")[1] == body["id"], body
    expect_status(request(secured, "GET", "/models", token=new), 200)
    expect_error(request(secured, "POST", "/tokens", {"name": "ci", "role": "viewer"},
                         token=admin), 409)
    for bad in ({"name": "x", "role": "root"}, {"name": "bad name", "role": "viewer"},
                {"name": "x", "role": "viewer", "expires": "soon"},
                {"name": "x", "role": "viewer", "extra": 1}, {"role": "viewer"}):
        expect_error(request(secured, "POST", "/tokens", bad, token=admin), 400)
    listing = expect_status(request(secured, "GET", "/tokens", token=admin), 200)["tokens"]
    names = {t["name"]: t for t in listing}
    assert {"ci", "t-admin", "gone"} <= set(names), listing
    assert names["gone"]["revoked_at"], listing
    assert new not in json.dumps(listing) and "hash" not in json.dumps(listing)
    expect_status(request(secured, "DELETE", "/tokens/ci", token=admin), 200)
    expect_error(request(secured, "GET", "/models", token=new), 401)
    expect_error(request(secured, "DELETE", "/tokens/ci", token=admin), 404)


def test_token_cli_create_list_revoke(tmp_path):
    data = tmp_path / "data"
    t = create_token(data, "ci", "deployer", expires="30d")
    p = cli(data, "list")
    assert "ci" in p.stdout and "deployer" in p.stdout and t not in p.stdout, p.stdout
    bad = cli(data, "create", "--role", "root", "--name", "x", check=False)
    assert bad.returncode == 2 and "role" in bad.stderr, bad
    bad = cli(data, "create", "--role", "viewer", "--name", "ci", check=False)
    assert bad.returncode == 1 and "ci" in bad.stderr, bad
    cli(data, "revoke", t.split("_")[1])  # by id
    assert "revoked" in cli(data, "list").stdout
    assert cli(data, "revoke", "ci", check=False).returncode == 1


def test_admin_token_file(server_factory, tmp_path):
    f = tmp_path / "admin.token"
    f.write_text("k8s-secret-value-0123456789abcdef\n")
    srv = server_factory(args=["--admin-token-file", str(f)])
    expect_error(srv.get("/models"), 401)
    body = expect_status(request(srv, "GET", "/auth/whoami",
                                 token="k8s-secret-value-0123456789abcdef"), 200)
    assert body == {"auth": True, "name": "bootstrap", "role": "admin"}, body
    env_srv = server_factory(env={"DYNSERVE_ADMIN_TOKEN_FILE": str(f)})
    expect_status(request(env_srv, "GET", "/models", token="k8s-secret-value-0123456789abcdef"),
                  200)


# -- browsers: CORS, Origin, Host ----------------------------------------------------------------


def test_cors_preflight_from_foreign_origin_gets_no_allow_origin(server_factory):
    srv = server_factory(args=["--cors-origin", "https://ui.example"])
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type"}
    r = requests.options(srv.url("/deployments/deploy"), headers=pre, timeout=HTTP_TIMEOUT_S)
    assert "Access-Control-Allow-Origin" not in r.headers, describe(r)
    assert r.status_code == 403, describe(r)
    pre["Origin"] = "https://ui.example"
    r = requests.options(srv.url("/deployments/deploy"), headers=pre, timeout=HTTP_TIMEOUT_S)
    assert r.status_code == 204, describe(r)
    assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example"
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = srv.get("/models", headers={"Origin": "https://ui.example"})
    assert r.headers["Access-Control-Allow-Origin"] == "https://ui.example", describe(r)
    r = srv.get("/models", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers, describe(r)


def test_no_cors_at_all_by_default(server):
    pre = {"Origin": "http://evil.example", "Access-Control-Request-Method": "PUT"}
    for path in ("/models", "/v2/models/quadratic_predictor/infer", "/", "/metrics"):
        r = requests.options(server.url(path), headers=pre, timeout=HTTP_TIMEOUT_S)
        assert "Access-Control-Allow-Origin" not in r.headers, describe(r)
        assert r.status_code == 403, describe(r)


def test_cross_origin_text_plain_post_is_refused_and_changes_nothing(server):
    body = json.dumps({"model_name": "quadratic_predictor", "version": "1"})
    r = requests.post(server.url("/deployments/deploy"), data=body, timeout=HTTP_TIMEOUT_S,
                      headers={"Content-Type": "text/plain", "Origin": "http://evil.example"})
    expect_error(r, 403)
    assert "Access-Control-Allow-Origin" not in r.headers
    assert server.deployments() == []
    # the same bytes from curl (no Origin) work, and so does the dashboard's own origin
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                        "Content-Type: text/plain", "-d", body,
                        server.url("/deployments/deploy")], capture_output=True, text=True,
                       timeout=30)
    assert r.stdout == "201", r
    own = {"Origin": server.base}
    r = server.post("/deployments/undeploy", {"model_name": "quadratic_predictor",
                                              "version": "1"}, headers=own)
    expect_status(r, 200)


def test_rebinding_host_is_refused_while_unauthenticated(server):
    r = server.get("/models", headers={"Host": f"evil.example:{server.port}"})
    expect_error(r, 403)
    r = server.get("/models", headers={"Host": f"localhost:{server.port}"})
    expect_status(r, 200)
    r = server.get("/v2/health/live", headers={"Host": "attacker.example"})
    expect_error(r, 403)


# -- safe defaults -------------------------------------------------------------------------------


def run_to_exit(args, cwd, timeout=20):
    return subprocess.run([str(BIN), *args], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd)


def test_default_host_is_loopback_and_says_so(tmp_path):
    srv = Server(tmp_path / "d")
    srv.command = lambda port: [str(BIN), "--port", str(port), "--data-dir", str(srv.data_dir)]
    srv.start()
    try:
        assert "127.0.0.1" in srv.stderr() and "loopback" in srv.stderr(), srv.stderr()
    finally:
        srv.stop()
        srv.close()


def test_non_loopback_listen_without_auth_refuses_to_start(tmp_path):
    p = run_to_exit(["--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d")],
                    tmp_path)
    assert p.returncode == 1, p
    assert "--insecure" in p.stderr and "token" in p.stderr, p.stderr
    env = dict(os.environ, DYNSERVE_HOST="0.0.0.0")
    p = subprocess.run([str(BIN), "--port", "0", "--data-dir", str(tmp_path / "d")], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert p.returncode == 1, p


def test_insecure_starts_on_any_address_and_warns(server_factory):
    srv = server_factory(start=False, args=["--insecure"])
    srv.command = lambda port: [str(BIN), "--host", "0.0.0.0", "--port", str(port),
                                "--data-dir", str(srv.data_dir), "--insecure"]
    srv.start()
    assert "insecure" in srv.stderr().lower() and "warn" in srv.stderr().lower(), srv.stderr()
    expect_status(srv.get("/models"), 200)


def test_non_loopback_listen_with_a_token_starts(server_factory):
    srv = server_factory(start=False)
    token = create_token(srv.data_dir, "root", "admin")
    srv.command = lambda port: [str(BIN), "--host", "0.0.0.0", "--port", str(port),
                                "--data-dir", str(srv.data_dir)]
    srv.start()
    expect_error(srv.get("/models"), 401)
    expect_status(request(srv, "GET", "/models", token=token), 200)


def worker_uid(pid):
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))


def test_files_are_private(server):
    server.register("mine", "1", model_plugin("quadratic_predictor", 1))
    server.register("mine", "2", model_plugin("quadratic_predictor", 2))
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)  # noqa: E731
    assert mode(server.data_dir) == 0o700
    assert mode(server.data_dir / "registry.db") == 0o600
    assert mode(server.data_dir / "plugins") == 0o700
    plugins = list((server.data_dir / "plugins").glob("*.so"))
    assert plugins and all(mode(p) == 0o600 for p in plugins), [oct(mode(p)) for p in plugins]
    # the private copy an in-process deployment loads is as private as the store
    server.deploy("mine", "1")
    loaded = server.data_dir / "plugins" / "loaded"
    copies = list(loaded.iterdir())
    assert mode(loaded) == 0o700 and copies, copies
    assert all(mode(p) == 0o600 for p in copies), [oct(mode(p)) for p in copies]
    # an isolated worker still loads the 0600 file after dropping privileges (it gets the
    # server's descriptor and loads a sealed memory copy, never the path)
    r = server.post("/deployments/deploy", {"model_name": "mine", "version": "2",
                                            "isolation": "process"})
    expect_status(r, 201)
    body = expect_status(server.infer("mine", "2", quad_inputs([3.0])), 200)
    assert body["outputs"][0]["data"] == [8.0], body  # x^2 - 1
    pid = next(d for d in server.deployments() if d["version"] == "2")["worker"]["pid"]
    if os.geteuid() == 0:
        assert worker_uid(pid) != 0, "the worker kept root"
    assert all(mode(p) == 0o600 for p in (server.data_dir / "plugins").glob("*.so"))


def test_older_lax_store_modes_are_tightened_at_start(server_factory):
    srv = server_factory()
    srv.register("mine", "1", model_plugin("quadratic_predictor", 1))
    srv.deploy("mine", "1")
    files = list((srv.data_dir / "plugins").glob("*.so")) + \
        list((srv.data_dir / "plugins" / "loaded").iterdir())
    for f in files:  # as an older version left them
        os.chmod(f, 0o755)
    os.chmod(srv.data_dir / "plugins" / "loaded", 0o755)
    srv.restart()
    srv.wait_ready()
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
    assert stat.S_IMODE(os.stat(srv.data_dir / "plugins" / "loaded").st_mode) == 0o700
    expect_status(srv.infer("mine", "1", quad_inputs([1.0])), 200)


# -- TLS -----------------------------------------------------------------------------------------


class TlsServer(Server):
    def __init__(self, workdir, cert, key, **kw):
        super().__init__(workdir, args=["--tls-cert", str(cert), "--tls-key", str(key)], **kw)
        self.cert = cert

    @property
    def base(self):
        return f"https://localhost:{self.port}"

    def wait_live(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerStartError(f"exited {self.proc.returncode}: {self.stderr()}")
            try:
                if requests.get(self.url("/v2/health/live"), verify=str(self.cert),
                                timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise ServerStartError(f"TLS server not live: {self.stderr()}")


@pytest.fixture
def tls_server(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True, timeout=60)
    srv = TlsServer(tmp_path / "tls", cert, key)
    srv.start()
    yield srv
    if srv.alive():
        srv.stop()
    srv.close()


def curl(*args):
    return subprocess.run(["curl", "-s", "--max-time", "20", *args], capture_output=True,
                          text=True, timeout=30)


def test_tls_with_curl(tls_server):
    url = tls_server.url("/v2/health/live")
    r = curl("--cacert", str(tls_server.cert), "-w", "\n%{http_code} %{ssl_verify_result}", url)
    assert r.returncode == 0 and r.stdout.endswith("200 0"), r
    r = curl("--cacert", str(tls_server.cert), "--tlsv1.2", "--tls-max", "1.2", url)
    assert r.returncode == 0, r
    for old in ("1.0", "1.1"):  # refused: TLS >= 1.2 only
        r = curl("--cacert", str(tls_server.cert), "--tlsv1.0", "--tls-max", old, url)
        assert r.returncode != 0, r
    r = curl(f"http://localhost:{tls_server.port}/v2/health/live")  # plain HTTP on the TLS port
    assert r.returncode != 0 or not r.stdout.startswith("{"), r
    # the dashboard's own origin is https:// now
    r = requests.post(tls_server.url("/deployments/deploy"), verify=str(tls_server.cert),
                      json={"model_name": "quadratic_predictor", "version": "1"},
                      headers={"Origin": tls_server.base}, timeout=HTTP_TIMEOUT_S)
    expect_status(r, 201)


def test_tls_key_problems_refuse_to_start(tmp_path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate\n")
    p = run_to_exit(["--host", HOST, "--port", "0", "--data-dir", str(tmp_path / "d"),
                     "--tls-cert", str(cert), "--tls-key", str(cert)], tmp_path)
    assert p.returncode == 1 and "tls" in p.stderr.lower(), p
    p = run_to_exit(["--host", HOST, "--port", "0", "--data-dir", str(tmp_path / "d"),
                     "--tls-cert", str(cert)], tmp_path)
    assert p.returncode == 2 and "--tls-key" in p.stderr, p


# -- rate limits per caller -------------------------------------------------------------------------


def test_rate_limit_buckets_are_per_token_and_shared_by_anonymous_callers(server_factory):
    srv = server_factory(start=False, args=["--rate-limit", "0.2:4"])
    a, b = (create_token(srv.data_dir, n, "viewer") for n in ("rl-a", "rl-b"))
    admin = create_token(srv.data_dir, "rl-admin", "admin")
    srv.start()
    s = requests.Session()
    got_a = [request(srv, "GET", "/models", token=a, session=s) for _ in range(7)]
    codes = [r.status_code for r in got_a]
    assert codes[:4] == [200] * 4 and codes.count(429) >= 2, codes
    limited = next(r for r in got_a if r.status_code == 429)
    assert int(limited.headers["Retry-After"]) >= 1
    assert a not in limited.text
    # the same address with another token: a bucket of its own
    codes_b = [request(srv, "GET", "/models", token=b, session=s).status_code for _ in range(3)]
    assert codes_b == [200] * 3, codes_b
    # anonymous callers (inference metadata is open) share the address's bucket, whatever
    # connection they come on, and it is not the tokens'
    anon = [requests.Session(), requests.Session()]
    codes_anon = [request(srv, "GET", "/v2", session=anon[i % 2]).status_code for i in range(7)]
    assert codes_anon[:4] == [200] * 4 and codes_anon.count(429) >= 2, codes_anon
    assert request(srv, "GET", "/models", token=b, session=s).status_code == 200
    # a made-up token gets no bucket of its own: its 401s are charged to the address, and once
    # that is empty they are 429s (so guessing tokens is rate limited too)
    r = request(srv, "GET", "/models", token="dsk_0123456789abcdef_" + "A" * 43)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1, describe(r)
    anon_429 = codes_anon.count(429) + 1
    # counted apart in /metrics and /models/stats
    text = expect_status_text(request(srv, "GET", "/metrics", token=admin))
    token_n = int(re.search(r'^dynserve_rate_limited_total\{scope="token"\} (\d+)', text,
                            re.M).group(1))
    client_n = int(re.search(r'^dynserve_rate_limited_total\{scope="client"\} (\d+)', text,
                             re.M).group(1))
    assert token_n == codes.count(429) and client_n == anon_429, text[-600:]
    stats = expect_status(request(srv, "GET", "/models/stats", token=admin), 200)
    assert stats["rate_limited"] == {"client": client_n, "token": token_n}, stats["rate_limited"]


def expect_status_text(r):
    assert r.status_code == 200, describe(r)
    return r.text


# -- RS256 JWTs end to end -------------------------------------------------------------------------

ISSUER = "https://issuer.test"


def openssl(*args):
    p = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"openssl {args}: {p.stderr}"


def rsa_key(path):
    """An RSA key pair made with the openssl CLI; returns (private PEM bytes, public PEM path)."""
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
            str(path / "key.pem"))
    openssl("pkey", "-in", str(path / "key.pem"), "-pubout", "-out", str(path / "pub.pem"))
    return (path / "key.pem").read_bytes(), path / "pub.pem"


def hs256_by_hand(claims, secret):
    """An HS256 JWT signed by hand (PyJWT refuses to use a PEM key as an HMAC secret)."""
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


@pytest.fixture
def rs256(server_factory, tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    private, public = rsa_key(keys)
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other, _ = rsa_key(other_dir)
    srv = server_factory(args=["--jwt-rs256-public-key", str(public), "--jwt-audience", AUDIENCE,
                               "--jwt-issuer", ISSUER])

    def claims(role="viewer", exp_in=600, **extra):
        c = {"sub": f"rs-{role}", "role": role, "aud": AUDIENCE, "iss": ISSUER,
             "exp": int(time.time()) + exp_in}
        c.update(extra)
        return {k: v for k, v in c.items() if v is not None}

    def sign(key=private, alg="RS256", **kw):
        return jwt.encode(claims(**kw), key, algorithm=alg)

    srv.claims, srv.sign, srv.public_pem, srv.other_key = claims, sign, public.read_bytes(), other
    return srv


def test_rs256_jwt_end_to_end(rs256):
    srv = rs256
    ok = srv.sign(role="viewer")
    expect_status(request(srv, "GET", "/models", token=ok), 200)
    body = expect_status(request(srv, "GET", "/auth/whoami", token=ok), 200)
    assert body == {"auth": True, "name": "jwt:rs-viewer", "role": "viewer"}, body
    # the role claim decides: a viewer may not deploy, a deployer may
    deploy = {"model_name": "quadratic_predictor", "version": "1"}
    expect_error(request(srv, "POST", "/deployments/deploy", deploy, token=ok), 403)
    expect_status(request(srv, "POST", "/deployments/deploy", deploy,
                          token=srv.sign(role="deployer")), 201)
    # list-valued aud that contains ours is accepted
    expect_status(request(srv, "GET", "/models",
                          token=srv.sign(aud=["someone", AUDIENCE])), 200)
    refused = {
        "expired": srv.sign(exp_in=-3600),
        "not yet valid": srv.sign(nbf=int(time.time()) + 3600),
        "wrong aud": srv.sign(aud="someone-else"),
        "no aud": srv.sign(aud=None),
        "wrong iss": srv.sign(iss="https://evil.test"),
        "no iss": srv.sign(iss=None),
        "another key": srv.sign(key=srv.other_key),
        "alg confusion (HS256 keyed with the public key)": hs256_by_hand(srv.claims("admin"),
                                                                         srv.public_pem),
        "alg none": alg_none_jwt(),
        "tampered claims": ok.split(".")[0] + "." +
        b64url(json.dumps(srv.claims("admin")).encode()) + "." + ok.split(".")[2],
    }
    for what, token in refused.items():
        r = request(srv, "GET", "/models", token=token)
        assert r.status_code == 401, f"{what}: {describe(r)}"
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), what
        assert token not in r.text, what


# -- auth under concurrency (runs again under TSan: ctest -L tsan) ---------------------------------


@pytest.mark.stress
def test_concurrent_authenticated_requests_and_token_churn(secured):
    import concurrent.futures
    admin = secured.tokens["admin"]
    viewer = secured.tokens["viewer"]
    stop = time.monotonic() + 8
    errors = []

    def readers(seed):
        s = requests.Session()
        n = 0
        while time.monotonic() < stop:
            tok = (viewer, make_jwt("viewer"), secured.revoked, "garbage")[(seed + n) % 4]
            r = request(secured, "GET", "/models", token=tok, session=s)
            want = 200 if tok in (viewer,) or tok.count(".") == 2 else 401
            if r.status_code != want:
                errors.append(f"reader {seed}: {describe(r)}")
            n += 1
        return n

    def churner(seed):
        s = requests.Session()
        n = 0
        while time.monotonic() < stop:
            name = f"churn-{seed}-{n}"
            r = request(secured, "POST", "/tokens", {"name": name, "role": "viewer"},
                        token=admin, session=s)
            if r.status_code != 201:
                errors.append(f"create {name}: {describe(r)}")
                break
            new = r.json()["token"]
            if request(secured, "GET", "/auth/whoami", token=new, session=s).status_code != 200:
                errors.append(f"fresh token {name} refused")
            if request(secured, "DELETE", f"/tokens/{name}", token=admin,
                       session=s).status_code != 200:
                errors.append(f"revoke {name} failed")
            if request(secured, "GET", "/models", token=new, session=s).status_code != 401:
                errors.append(f"revoked token {name} still works")
            n += 1
        return n

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        futs = [pool.submit(readers, i) for i in range(4)] + \
               [pool.submit(churner, i) for i in range(2)]
        counts = [f.result() for f in futs]
    assert not errors, errors[:10]
    assert all(c > 0 for c in counts), counts
    assert secured.alive()
    # the last-use bookkeeping and the audit trail kept up: the server still answers everything
    expect_status(request(secured, "GET", "/tokens", token=admin), 200)
