"""A local scale-out cluster for tests and benchmarks: PostgreSQL, N dynserve replicas, nginx.

PostgreSQL is a throwaway cluster (test/integration/pgcluster.py: initdb in a temp dir, a free
port, run as `nobody` when we are root). Each replica is the real binary with its own data dir and
`--registry postgres://...`, on a free loopback port, id r1..rN. nginx (Debian's nginx-light) is
the load balancer on another free port, with passive health checks: a replica that refuses or
drops a connection is marked failed for fail_timeout and the request is retried on the next one
(proxy_next_upstream error timeout non_idempotent: POST infer is retried too — inference is a pure
function of its input here, so a retry is safe).

    with Cluster(tmp_path, replicas=3) as c:
        c.replica(0).post("/deployments/deploy", json=...)
        c.lb_url("/v2/models/m/infer")

Only the standard library and requests (Debian packages).
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import requests

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "test" / "integration"))
from pgcluster import PgCluster  # noqa: E402  (pg's throwaway PostgreSQL recipe)

BIN = pathlib.Path(os.environ.get("DYNSERVE_BIN", REPO / "build" / "dynserve"))
MODELS = pathlib.Path(os.environ.get("DYNSERVE_MODELS", BIN.parent / "models"))
HOST = "127.0.0.1"


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, step=0.01):
    """Polls pred() until it is truthy; returns (value, seconds taken) or (None, timeout)."""
    t0 = time.monotonic()
    while True:
        v = pred()
        if v:
            return v, time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            return None, timeout
        time.sleep(step)


class Replica:
    def __init__(self, cluster, index):
        self.cluster = cluster
        self.index = index
        self.id = f"r{index + 1}"
        self.port = free_port()
        self.dir = cluster.root / self.id
        self.dir.mkdir(mode=0o700, exist_ok=True)
        self.proc = None
        self.session = requests.Session()

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self, timeout=15):
        log = open(self.dir / "server.log", "ab")
        args = [str(BIN), "--port", str(self.port), "--data-dir", str(self.dir / "data"),
                "--model-repository", str(MODELS), "--registry", self.cluster.registry,
                "--replica-id", self.id, "--threads", str(self.cluster.threads),
                "--log-level", "warn", *self.cluster.extra_args]
        self.proc = subprocess.Popen(args, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        ok, _ = wait_until(self.ready, timeout, 0.05)
        if not ok:
            raise RuntimeError(f"replica {self.id} did not become ready: "
                               f"{(self.dir / 'server.log').read_text()[-2000:]}")
        return self

    def ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"replica {self.id} exited {self.proc.returncode}: "
                               f"{(self.dir / 'server.log').read_text()[-2000:]}")
        try:
            return requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def kill(self):
        """kill -9: no clean shutdown, the registry keeps its heartbeat row until it ages out."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def get(self, path, **kw):
        return self.session.get(self.url + path, timeout=10, **kw)

    def post(self, path, **kw):
        return self.session.post(self.url + path, timeout=10, **kw)

    def put(self, path, **kw):
        return self.session.put(self.url + path, timeout=10, **kw)

    def serves(self, model, version):
        """The versioned infer route answers 200 here."""
        try:
            r = self.session.post(f"{self.url}/v2/models/{model}/versions/{version}/infer",
                                  json=infer_body(1.0), timeout=2)
            return r.status_code == 200
        except requests.RequestException:
            return False


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream dynserve {{
{servers}
        keepalive 32;
    }}
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://dynserve;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
            proxy_next_upstream error timeout non_idempotent;
            proxy_next_upstream_tries 3;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, root, backends):
        self.dir = root / "nginx"
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        servers = "\n".join(f"        server {HOST}:{p} max_fails=1 fail_timeout=5s;"
                            for p in backends)
        user = "user nobody nogroup;" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(NGINX_CONF.format(
            dir=self.dir, servers=servers, host=HOST, port=self.port, user=user))
        self.proc = None

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(["nginx", "-p", str(self.dir), "-c",
                                      str(self.dir / "nginx.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        if not wait_until(up, 10, 0.05)[0]:
            raise RuntimeError("nginx did not start")
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def infer_body(x):
    return {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 1], "data": [x]}]}


class Cluster:
    def __init__(self, root, replicas=3, threads=16, extra_args=(), lb=True):
        self.root = pathlib.Path(root)
        self.n = replicas
        self.threads = threads
        self.extra_args = list(extra_args)
        self.want_lb = lb
        self.pg = None
        self.replicas = []
        self.nginx = None

    def __enter__(self):
        try:
            self.pg = PgCluster().start()
            self.registry = self.pg.new_database()
            self.replicas = [Replica(self, i) for i in range(self.n)]
            for r in self.replicas:
                r.start()
            if self.want_lb:
                self.nginx = Nginx(self.root, [r.port for r in self.replicas]).start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.nginx:
            self.nginx.stop()
        for r in self.replicas:
            r.stop()
        if self.pg:
            self.pg.close()

    def replica(self, i):
        return self.replicas[i]

    def lb(self, path):
        return self.nginx.url + path
