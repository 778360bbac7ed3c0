"""The real server on a PostgreSQL registry (--registry postgres://...): what it is told survives
restarts, two servers on one database see each other's registrations, and a password in the URI
never reaches the logs. Starts a throwaway cluster (pgcluster.py) for the module."""
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
