"""The real server on a PostgreSQL registry (--registry postgres://...): what it is told survives
restarts, two servers on one database see each other's registrations, and a password in the URI
never reaches the logs. Starts a throwaway cluster (pgcluster.py) for the module."""
import hashlib

import pytest

from conftest import expect_status, model_plugin, quad_inputs
from pgcluster import PgCluster

QUAD = "quadratic_predictor"


@pytest.fixture(scope="module")
def pg():
    with PgCluster() as cluster:
        yield cluster


def test_deploy_undeploy_and_restart_keep_their_state_in_postgres(pg, server_factory):
    uri = pg.new_database()
    db = uri.split(":///")[1].split("?")[0]
    s = server_factory(args=["--registry", uri])
    assert "postgres" in s.stderr()
    s.deploy(QUAD, "1", endpoint_name="front")
    s.deploy(QUAD, "2")
    out = expect_status(s.infer(QUAD, "1", quad_inputs([1.0])), 200)
    assert out["outputs"][0]["data"] == [6.0]
    s.undeploy(QUAD, "2")
    # The rows are in PostgreSQL, not in a SQLite file of the data dir.
    assert not (s.data_dir / "registry.db").exists()
    assert pg.sql(db, "SELECT version || ':' || status FROM deployments ORDER BY id") == \
        "1:active\n2:undeployed"

    s.restart()
    live = {(d["model_name"], d["version"]) for d in s.deployments() if d["status"] == "active"}
    assert live == {(QUAD, "1")}
    out = expect_status(s.infer(QUAD, "1", quad_inputs([0.0])), 200)
    assert out["outputs"][0]["data"] == [1.0]
    s.undeploy(QUAD, "1")
    s.restart()
    assert [d for d in s.deployments() if d["status"] == "active"] == []
    kinds = pg.sql(db, "SELECT string_agg(kind, ',' ORDER BY id) FROM events "
                       "WHERE kind IN ('deploy', 'undeploy')")
    assert kinds == "deploy,deploy,undeploy,undeploy"


def test_two_servers_on_one_database_share_registrations(pg, server_factory, tmp_path):
    uri = pg.new_database()
    a = server_factory(args=["--registry", uri], name="a")
    b = server_factory(args=["--registry", uri], name="b")
    plugin = model_plugin(QUAD, "2")
    a.register("shared_model", "7", plugin)
    assert b.models().get("shared_model") == {"7"}
    b.register("shared_model", "7", plugin, expect=409)


def test_registry_env_var_selects_postgres_and_a_password_never_reaches_stderr(pg, server_factory):
    pg.sql("postgres", "ALTER USER dynserve PASSWORD 'hunter2-secret'")
    db = pg.new_database().split(":///")[1].split("?")[0]
    good = pg.uri(db, password="hunter2-secret")
    s = server_factory(env={"DYNSERVE_REGISTRY": good})
    assert "hunter2" not in s.stderr()
    assert "postgresql://dynserve:***@127.0.0.1/" in s.stderr()
    s.deploy(QUAD, "1")
    s.stop()
    # A server that cannot reach its registry does not start, and says why without the secret.
    bad = f"postgresql://dynserve:hunter2-secret@127.0.0.1:1/{db}?connect_timeout=2"
    f = server_factory(args=["--registry", bad], name="bad", start=False)
    f.spawn()
    assert f.proc.wait(timeout=20) != 0
    err = f.stderr()
    assert "registry" in err and "***" in err
    assert "hunter2" not in err


# ---- artifacts on every replica (blobs in the registry) ------------------------------------

def _db(uri):
    return uri.split(":///")[1].split("?")[0]


def _iris_request():
    return {"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                        "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}


def test_a_version_uploaded_on_one_replica_is_fetched_checked_and_served_by_another(
        pg, server_factory):
    uri = pg.new_database()
    a = server_factory(args=["--registry", uri], name="a")
    b = server_factory(args=["--registry", uri], name="b")
    plugin = model_plugin(QUAD, "1").read_bytes()
    sha = hashlib.sha256(plugin).hexdigest()
    # Uploaded bytes exist only in a's store; the registry gets them as a blob.
    a.upload("uploaded", "1", plugin)
    assert (a.data_dir / "plugins" / f"{sha}.so").is_file()
    assert not (b.data_dir / "plugins" / f"{sha}.so").exists()
    assert pg.sql(_db(uri), f"SELECT kind || ':' || size FROM blobs WHERE sha256 = '{sha}'") == \
        f"plugin:{len(plugin)}"

    b.deploy("uploaded", "1")
    out = expect_status(b.infer("uploaded", "1", quad_inputs([1.0])), 200)
    assert out["outputs"][0]["data"] == [6.0]
    fetched = b.data_dir / "plugins" / f"{sha}.so"
    assert hashlib.sha256(fetched.read_bytes()).hexdigest() == sha

    # A model directory (iris: backend xgboost) registered by a's model repository at start,
    # deployed on b: b stores the files under the same digest.
    b.deploy("iris", "1")
    expect_status(b.post("/v2/models/iris/versions/1/infer", _iris_request()), 200)
    digest = pg.sql(_db(uri), "SELECT artifact_sha256 FROM model_versions "
                              "WHERE model_name = 'iris' AND version = '1'")
    assert (b.data_dir / "artifacts" / digest / "model.json").is_file()
    assert (b.data_dir / "artifacts" / digest / "config.json").is_file()
    # ... and a restart of b restores both from its own data dir.
    b.restart()
    b.wait_ready()  # live comes before the deployments are restored
    out = expect_status(b.infer("uploaded", "1", quad_inputs([0.0])), 200)
    assert out["outputs"][0]["data"] == [1.0]


def test_a_corrupt_blob_is_refused_and_never_loaded(pg, server_factory):
    uri = pg.new_database()
    a = server_factory(args=["--registry", uri], name="a")
    plugin = model_plugin(QUAD, "1").read_bytes()
    sha = hashlib.sha256(plugin).hexdigest()
    a.upload("tampered", "1", plugin)
    # Someone with write access to the database swaps the bytes (same size, so the row's
    # CHECK still holds).
    pg.sql(_db(uri), f"UPDATE blobs SET data = set_byte(data, 100, 255 - get_byte(data, 100)) "
                     f"WHERE sha256 = '{sha}'")
    c = server_factory(args=["--registry", uri], name="c")
    body = c.deploy("tampered", "1", expect=500)
    assert "corrupt" in body["error"], body
    assert not (c.data_dir / "plugins" / f"{sha}.so").exists()
    assert all(d["model_name"] != "tampered" or d["status"] != "active" for d in c.deployments())


def test_on_sqlite_no_blob_is_stored(server):
    server.upload("uploaded", "1", model_plugin(QUAD, "1").read_bytes())
    import sqlite3
    db = sqlite3.connect(str(server.data_dir / "registry.db"))
    assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
