"""Fixtures for dynserve's HTTP integration tests: the real binary on a free loopback port.

Environment:
  DYNSERVE_BIN       the server binary            (default <repo>/build/dynserve)
  DYNSERVE_FIXTURES  directory of fixture plugins (default <bin dir>/test/plugins)
  DYNSERVE_MODELS    example model repository     (default <bin dir>/models)

Only the standard library, pytest and requests are used (Debian packages, no PyPI).
"""
import datetime
import hashlib
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("DYNSERVE_BIN", REPO / "build" / "dynserve"))
FIXTURES = pathlib.Path(os.environ.get("DYNSERVE_FIXTURES", BIN.parent / "test" / "plugins"))
MODELS = pathlib.Path(os.environ.get("DYNSERVE_MODELS", BIN.parent / "models"))

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0

EXAMPLE_MODELS = {
    "quadratic_predictor": {"1", "2"},
    "binary_classifier": {"1", "2"},
    "identity": {"1"},
}


def free_port():
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True


def tmp_root_of(path):
    """The pytest-N directory holding every test's tmp_path (or path itself)."""
    path = pathlib.Path(path).resolve()
    for p in [path, *path.parents]:
        if p.parent.name.startswith("pytest-of-"):
            return p
    return path


def sha256_file(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def model_plugin(model, version):
    """Path of a bundled example plugin in the build's model repository."""
    p = MODELS / model / str(version) / "model.so"
    assert p.is_file(), f"example plugin {p} missing (set DYNSERVE_MODELS to build/models)"
    return p


def fixture_plugin(name):
    """Path of a test fixture plugin (build/test/plugins/<name>.so)."""
    p = FIXTURES / f"{name}.so"
    assert p.is_file(), f"fixture plugin {p} missing (set DYNSERVE_FIXTURES to build/test/plugins)"
    return p


def parse_iso8601(text):
    """A datetime from an ISO-8601 timestamp ('Z' or an offset accepted); fails the test if not."""
    assert isinstance(text, str) and text, f"timestamp {text!r} is not a non-empty string"
    t = text.replace("Z", "+00:00").replace("z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(t)
    except ValueError:
        pytest.fail(f"timestamp {text!r} is not ISO-8601")


def json_body(resp):
    """The response body as JSON; fails with the raw body when it is not JSON."""
    try:
        return resp.json()
    except ValueError:
        pytest.fail(f"{resp.request.method} {resp.url} -> {resp.status_code}: body is not JSON: "
                    f"{resp.text[:500]!r}")


def describe(resp):
    return f"{resp.request.method} {resp.url} -> {resp.status_code} {resp.text[:500]!r}"


def expect_status(resp, *codes):
    """Assert the status is one of codes; returns the parsed JSON body (or None if empty)."""
    assert resp.status_code in codes, f"expected {codes}, got {describe(resp)}"
    if not resp.content:
        return None
    return json_body(resp)


def expect_error(resp, *codes):
    """Assert an error response: one of codes and a JSON object body {"error": "<message>"}."""
    assert resp.status_code in codes, f"expected error {codes}, got {describe(resp)}"
    body = json_body(resp)
    assert isinstance(body, dict), f"error body is not a JSON object: {describe(resp)}"
    assert isinstance(body.get("error"), str) and body["error"].strip(), \
        f'error body has no non-empty "error" string: {describe(resp)}'
    return body


class ServerStartError(AssertionError):
    pass


class Server:
    """One dynserve process on a free loopback port with its own data dir.

    start() waits until GET /v2/health/live answers. stop() sends SIGTERM (or another signal) and
    asserts the exit code; kill() sends SIGKILL. start() again reuses the same data dir.
    """

    def __init__(self, workdir, args=(), data_dir=None, env=None):
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = pathlib.Path(data_dir) if data_dir else self.workdir / "data"
        self.args = list(args)
        self.env = env
        self.proc = None
        self.port = None
        self.runs = 0
        self.stdout_path = None
        self.stderr_path = None
        self._files = []

    # -- process control ---------------------------------------------------------------------

    def command(self, port):
        return [str(BIN), "--host", HOST, "--port", str(port), "--data-dir", str(self.data_dir),
                *self.args]

    def spawn(self, port=None):
        """Start the process without waiting for it; returns the Popen."""
        if not BIN.is_file():
            pytest.fail(f"server binary {BIN} not found (build it or set DYNSERVE_BIN)")
        self.runs += 1
        self.port = port if port is not None else free_port()
        self.stdout_path = self.workdir / f"stdout.{self.runs}.log"
        self.stderr_path = self.workdir / f"stderr.{self.runs}.log"
        out = open(self.stdout_path, "wb")
        err = open(self.stderr_path, "wb")
        self._files += [out, err]
        env = dict(os.environ)
        # Tests register plugins from the fixture and model builds and from their own temporary
        # directories: make those plugin directories (a test's --plugin-dir flag still wins).
        env.setdefault("DYNSERVE_PLUGIN_DIR", ",".join(
            str(p) for p in (FIXTURES, MODELS, tmp_root_of(self.workdir))))
        if self.env:
            env.update(self.env)
        self.proc = subprocess.Popen(self.command(self.port), stdout=out, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=self.workdir, env=env)
        return self.proc

    def start(self, port=None, attempts=3):
        """Start and wait until live. Retries on a fresh port if another process took ours."""
        for attempt in range(attempts):
            self.spawn(port)
            try:
                self.wait_live()
                return self
            except ServerStartError:
                busy = self.proc.poll() == 1 and port is None and not port_is_free(self.port)
                if busy and attempt + 1 < attempts:
                    continue  # lost the race for the free port: try another one
                raise

    def wait_live(self, timeout=START_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            rc = self.proc.poll()
            if rc is not None:
                raise ServerStartError(
                    f"dynserve exited with {rc} during startup; stderr:\n{self.stderr()}")
            try:
                r = requests.get(self.url("/v2/health/live"), timeout=1.0)
                if r.status_code == 200:
                    return
                last = f"status {r.status_code}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.02)
        self.proc.kill()
        self.proc.wait(timeout=STOP_TIMEOUT_S)
        raise ServerStartError(f"dynserve not live after {timeout}s (last: {last}); stderr:\n"
                               f"{self.stderr()}")

    def wait_ready(self, timeout=START_TIMEOUT_S):
        """Poll GET /v2/health/ready until 200; returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = None
        while time.monotonic() < deadline:
            assert self.alive(), f"dynserve died while waiting for ready; stderr:\n{self.stderr()}"
            r = requests.get(self.url("/v2/health/ready"), timeout=HTTP_TIMEOUT_S)
            if r.status_code == 200:
                return time.monotonic() - t0
            last = describe(r)
            time.sleep(0.01)
        pytest.fail(f"/v2/health/ready not 200 after {timeout}s (last: {last}); stderr:\n"
                    f"{self.stderr()}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, expect_code=0, timeout=STOP_TIMEOUT_S):
        """Signal the server and wait for it; asserts the exit code. Returns it."""
        assert self.proc is not None, "server was never started"
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
            pytest.fail(f"dynserve did not exit within {timeout}s of {sig!r}; stderr:\n"
                        f"{self.stderr()}")
        if expect_code is not None:
            assert rc == expect_code, \
                f"dynserve exited with {rc} after {sig!r}, expected {expect_code}; stderr:\n" \
                f"{self.stderr()}"
        return rc

    def kill(self):
        """SIGKILL (a crash); the exit code is not checked."""
        return self.stop(sig=signal.SIGKILL, expect_code=None)

    def restart(self, sig=signal.SIGTERM):
        """Stop (SIGTERM: clean; SIGKILL: crash) and start again on the same data dir."""
        if sig == signal.SIGKILL:
            self.kill()
        else:
            self.stop(sig)
        return self.start()

    def stderr(self):
        if self.stderr_path is None or not self.stderr_path.exists():
            return ""
        for f in self._files:
            try:
                f.flush()
            except ValueError:
                pass
        return self.stderr_path.read_text(errors="replace")

    def close(self):
        for f in self._files:
            f.close()
        self._files = []

    # -- HTTP ---------------------------------------------------------------------------------

    @property
    def base(self):
        return f"http://{HOST}:{self.port}"

    def url(self, path):
        return self.base + path

    def get(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.get(self.url(path), **kw)

    def post(self, path, body=None, raw=None, **kw):
        """POST JSON (body) or raw bytes/str (raw)."""
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        if raw is not None:
            kw.setdefault("headers", {"Content-Type": "application/json"})
            return requests.post(self.url(path), data=raw, **kw)
        return requests.post(self.url(path), json=body, **kw)

    def put(self, path, data=None, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.put(self.url(path), data=data, **kw)

    def delete(self, path, **kw):
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.delete(self.url(path), **kw)

    # -- management helpers -------------------------------------------------------------------

    def models(self):
        """GET /models as {name: set(versions as str)}."""
        body = expect_status(self.get("/models"), 200)
        assert isinstance(body, dict) and isinstance(body.get("models"), list), \
            f'GET /models is not {{"models": [...]}}: {body!r}'
        out = {}
        for m in body["models"]:
            assert isinstance(m, dict) and isinstance(m.get("name"), str) and \
                isinstance(m.get("versions"), list), f"bad model entry {m!r} in {body!r}"
            vs = [str(v) for v in m["versions"]]
            assert len(vs) == len(set(vs)), f"duplicate versions for {m['name']}: {m!r}"
            assert m["name"] not in out, f"model {m['name']} listed twice: {body!r}"
            out[m["name"]] = set(vs)
        return out

    def register(self, name, version, plugin, config=None, expect=201):
        body = {"name": name, "version": str(version), "plugin": str(plugin)}
        if config is not None:
            body["config"] = config
        r = self.post("/models", body)
        if expect == 201:
            return expect_status(r, 201)
        return expect_error(r, expect)

    def upload(self, name, version, data, expect=201):
        r = self.put(f"/models/{name}/versions/{version}", data=data,
                     headers={"Content-Type": "application/octet-stream"})
        if expect == 201:
            return expect_status(r, 201)
        return expect_error(r, expect)

    def deploy(self, model, version, endpoint_name=None, expect=201):
        body = {"model_name": model, "version": str(version)}
        if endpoint_name is not None:
            body["endpoint_name"] = endpoint_name
        r = self.post("/deployments/deploy", body)
        if expect == 201:
            return expect_status(r, 201)
        return expect_error(r, expect)

    def undeploy(self, model=None, version=None, endpoint_name=None, expect=200):
        if endpoint_name is not None:
            body = {"endpoint_name": endpoint_name}
        else:
            body = {"model_name": model, "version": str(version)}
        r = self.post("/deployments/undeploy", body)
        if expect == 200:
            return expect_status(r, 200)
        return expect_error(r, expect)

    def deployments(self):
        body = expect_status(self.get("/deployments"), 200)
        assert isinstance(body, dict) and isinstance(body.get("deployments"), list), \
            f'GET /deployments is not {{"deployments": [...]}}: {body!r}'
        return body["deployments"]

    def infer(self, model, version, inputs, **kw):
        """POST an OIP request; version None uses the unversioned route. Returns the response."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "") \
            + "/infer"
        return self.post(path, {"inputs": inputs}, **kw)


def quad_inputs(xs):
    return [{"name": "input", "shape": [len(xs), 1], "datatype": "FP32", "data": list(xs)}]


@pytest.fixture
def server_factory(tmp_path):
    """Make servers: factory(args=(), name="srv", start=True) -> Server. All stopped at teardown
    with SIGTERM, asserting exit code 0 (unless the test stopped or killed them itself)."""
    made = []

    def make(args=(), name="srv", start=True, data_dir=None, env=None):
        srv = Server(tmp_path / f"{name}{len(made)}", args=args, data_dir=data_dir, env=env)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    failures = []
    for srv in made:
        try:
            if srv.alive():
                srv.stop()
        except BaseException as e:  # noqa: BLE001 -- report every server, then fail
            failures.append(str(e))
        finally:
            srv.close()
    if failures:
        pytest.fail("server teardown: " + "\n".join(failures))


@pytest.fixture
def server(server_factory):
    """A started server with the default model repository and a fresh data dir."""
    return server_factory()



@pytest.fixture(scope="module")
def _module_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("shared"))
    srv.start()
    baseline = srv.models()
    yield srv, baseline
    try:
        if srv.alive():
            srv.stop()
        else:
            pytest.fail(f"shared server died (exit {srv.proc.returncode}); stderr:\n{srv.stderr()}")
    finally:
        srv.close()


@pytest.fixture
def shared(_module_server):
    """One server per test module for tests that leave no state behind. After each test every
    deployment is undeployed and every version registered by the test is deleted, so that a
    server bug in one test does not cascade into the next."""
    srv, baseline = _module_server
    assert srv.alive(), f"shared server is not running; stderr:\n{srv.stderr()}"
    yield srv
    assert srv.alive(), f"shared server died during the test; stderr:\n{srv.stderr()}"
    for d in srv.deployments():
        srv.undeploy(d["model_name"], d["version"])
    for name, versions in srv.models().items():
        for v in versions - baseline.get(name, set()):
            r = srv.delete(f"/models/{name}/versions/{v}")
            assert r.status_code in (200, 204), f"cleanup: {describe(r)}"
