"""A throwaway PostgreSQL cluster for tests (Debian's `postgresql` server binaries).

initdb in a temporary directory, a free loopback port, the unix socket in that directory, pg_ctl
to start and stop it; trust authentication (socket and 127.0.0.1 only), fsync off (the data is
thrown away). As root (CI) initdb refuses to run, so the cluster's programs run as `nobody`
(runuser) and the directory is handed to it. The same recipe as test/unit/support/pg_cluster.c.

Binaries: $DYNSERVE_PG_BINDIR, else the newest /usr/lib/postgresql/N/bin.

    with PgCluster() as pg:
        uri = pg.new_database()          # postgresql:///t1?host=...&port=...&user=dynserve
        pg.sql("t1", "SELECT 1")
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile


def _bindir():
    env = os.environ.get("DYNSERVE_PG_BINDIR")
    if env:
        return env
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if not found:
        raise RuntimeError("no PostgreSQL server: install Debian's postgresql "
                           "(scripts/install-deps.sh) or set DYNSERVE_PG_BINDIR")
    return os.path.dirname(found[-1])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    USER = "dynserve"

    def __init__(self):
        self.bin = _bindir()
        self.dir = tempfile.mkdtemp(prefix="ds-pg.")
        self.port = None
        self.databases = 0
        self.started = False
        if os.geteuid() == 0:
            pw = pwd.getpwnam("nobody")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)

    def _run(self, prog, *args, as_owner=True, check=True):
        cmd = [os.path.join(self.bin, prog), *args]
        if as_owner and os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        if check and r.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.dir, "server.log")) as f:
                    log = f.read()[-2000:]
            except OSError:
                pass
            raise RuntimeError(f"{prog} failed ({r.returncode}): {r.stdout}{r.stderr}{log}")
        return r

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def start(self):
        if self.started:
            return self
        if not os.path.isdir(self.data):
            self._run("initdb", "-D", self.data, "-U", self.USER, "--auth=trust", "-E", "UTF8",
                      "--no-sync")
        self.port = self.port or _free_port()
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.dir, "server.log"),
                  "-o", opts, "-w", "-t", "60", "start")
        self.started = True
        return self

    def stop(self, mode="fast"):
        """Stop the server (the data stays: start() again brings it back)."""
        if self.started:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "stop", check=False)
            self.started = False

    def close(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def uri(self, db, password=None):
        auth = f"{self.USER}:{password}@" if password else ""
        host = "127.0.0.1" if password else ""
        query = f"port={self.port}" + ("" if password else f"&host={self.dir}&user={self.USER}")
        return f"postgresql://{auth}{host}/{db}?{query}"

    def sql(self, db, text):
        """Runs SQL through psql; returns its unaligned, tuples-only output."""
        r = self._run("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                      "-p", str(self.port), "-U", self.USER, "-d", db, "-c", text,
                      as_owner=False)
        return r.stdout.strip()

    def new_database(self):
        """A fresh, empty database; returns its URI (socket in the cluster dir)."""
        self.databases += 1
        name = f"t{self.databases}"
        self.sql("postgres", f"CREATE DATABASE {name}")
        return self.uri(name)
