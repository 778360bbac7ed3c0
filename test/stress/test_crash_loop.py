"""Crash loop (issue 11): CRASH_ROUNDS (default 30) times, a mutation loop (register, deploy,
undeploy, delete) runs until the server is killed with SIGKILL at a random moment; the server is
restarted on the same data dir and must hold every acknowledged change, with every active
deployment answering correctly. The one change in flight when the kill came may or may not have
happened, but nothing else may differ."""
import os
import random
import threading
import time

import requests

from ds_conftest import expect_status, model_plugin, quad_inputs

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "30"))
M = "crashloop"
ANSWER = {1: lambda x: 2 * x * x + 3 * x + 1, 2: lambda x: x * x - 1}


def flavour(v):
    return 1 if v % 2 else 2


class Model:
    """What the server acknowledged: registered and deployed versions (ints)."""

    def __init__(self):
        self.registered, self.deployed = set(), set()
        self.pending = None  # (op, version) sent but not answered

    def apply(self, op, v):
        if op == "register":
            self.registered.add(v)
        elif op == "deploy":
            self.deployed.add(v)
        elif op == "undeploy":
            self.deployed.discard(v)
        elif op == "delete":
            self.registered.discard(v)


def mutate(srv, model, stop, next_version, plugins):
    s = requests.Session()
    rnd = random.Random(next_version)
    v = next_version
    while not stop.is_set():
        choices = ["register"]
        if model.registered - model.deployed:
            choices += ["deploy", "deploy", "delete"]
        if model.deployed:
            choices += ["undeploy"]
        op = rnd.choice(choices)
        if op == "register":
            target = v
            v += 1
        elif op in ("deploy", "delete"):
            target = rnd.choice(sorted(model.registered - model.deployed))
        else:
            target = rnd.choice(sorted(model.deployed))
        model.pending = (op, target)
        try:
            if op == "register":
                r = s.put(srv.url(f"/models/{M}/versions/{target}"),
                          data=plugins[flavour(target)],
                          headers={"Content-Type": "application/octet-stream"}, timeout=30)
            elif op == "deploy":
                r = s.post(srv.url("/deployments/deploy"),
                           json={"model_name": M, "version": str(target)}, timeout=30)
            elif op == "undeploy":
                r = s.post(srv.url("/deployments/undeploy"),
                           json={"model_name": M, "version": str(target)}, timeout=30)
            else:
                r = s.delete(srv.url(f"/models/{M}/versions/{target}"), timeout=30)
        except requests.RequestException:
            return v  # the kill came: pending stays set
        assert r.status_code < 300, f"{op} {target}: {r.status_code} {r.text[:200]}"
        model.apply(op, target)
        model.pending = None
    return v


def check(srv, model):
    registered = {int(v) for v in srv.models().get(M, set())}
    deployed = {int(d["version"]) for d in srv.deployments()
                if d["model_name"] == M and d["status"] == "active"}
    ok_states = [(model.registered, model.deployed)]
    if model.pending:
        alt = Model()
        alt.registered, alt.deployed = set(model.registered), set(model.deployed)
        alt.apply(*model.pending)
        ok_states.append((alt.registered, alt.deployed))
    assert (registered, deployed) in ok_states, \
        f"after restart: registered {registered} deployed {deployed}, expected one of " \
        f"{ok_states} (pending {model.pending})"
    model.registered, model.deployed = registered, deployed
    model.pending = None
    for v in deployed:
        r = srv.infer(M, v, quad_inputs([3.0]))
        body = expect_status(r, 200)
        assert body["outputs"][0]["data"] == [ANSWER[flavour(v)](3.0)], (v, body)


def test_kill_minus_9_mid_change_loses_nothing_acknowledged(server_factory):
    srv = server_factory()
    plugins = {1: model_plugin("quadratic_predictor", 1).read_bytes(),
               2: model_plugin("quadratic_predictor", 2).read_bytes()}
    model, rnd, v = Model(), random.Random(7), 1
    for _ in range(ROUNDS):
        stop = threading.Event()
        result = {}
        def run(start=v):
            try:
                result["v"] = mutate(srv, model, stop, start, plugins)
            except AssertionError as e:  # a refused change: report it from the test thread
                result["error"] = e

        t = threading.Thread(target=run)
        t.start()
        time.sleep(rnd.uniform(0.05, 0.6))
        srv.kill()
        stop.set()
        t.join(timeout=60)
        if "error" in result:
            raise result["error"]
        v = result.get("v", v + 1000)
        srv.start()
        srv.wait_ready()
        check(srv, model)
    srv.stop()
