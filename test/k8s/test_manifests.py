"""deploy/k8s/ manifests: valid against the Kubernetes API schemas, and consistent with dynserve.

The schema check is test/k8s/validate.mjs (kubernetes-models: the Kubernetes OpenAPI schemas
compiled with ajv); it also runs on a broken copy to show it can fail. The rest checks what a
schema cannot know: every DYNSERVE_* variable is a real dynserve flag, the probes are the health
routes, the Secret and ConfigMap the Deployment uses exist.
"""
import os
import pathlib
import re
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
RUN = pathlib.Path(__file__).resolve().parent / "run.sh"
MANIFESTS = sorted(K8S.glob("*.yaml"))


def validate(*files):
    return subprocess.run([str(RUN), *map(str, files)], capture_output=True, text=True,
                          timeout=300)


def docs():
    out = {}
    for f in MANIFESTS:
        for d in yaml.safe_load_all(f.read_text()):
            if d:
                out[d["kind"]] = d
    return out


def test_every_manifest_is_valid_against_the_kubernetes_schemas():
    assert MANIFESTS, "no manifests in deploy/k8s"
    r = validate(*MANIFESTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": valid (") == len(list(docs().values()))


def test_the_validator_refuses_a_wrong_type_and_an_unknown_kind(tmp_path):
    bad = yaml.safe_load((K8S / "deployment.yaml").read_text())
    bad["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad) + "---\napiVersion: v1\nkind: NoSuchKind\nmetadata: {}\n")
    r = validate(p)
    assert r.returncode == 1
    assert "containerPort must be integer" in r.stdout
    assert "unknown apiVersion/kind v1/NoSuchKind" in r.stdout


def dynserve_flags():
    binary = os.environ.get("DYNSERVE_BIN", str(ROOT / "build" / "dynserve"))
    if not os.path.exists(binary):
        pytest.skip("dynserve binary not built")
    text = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    return {"DYNSERVE_" + f.upper().replace("-", "_") for f in re.findall(r"--([a-z0-9-]+)", text)}


def test_every_dynserve_variable_is_a_real_flag():
    d = docs()
    names = set(d["ConfigMap"]["data"])
    container = d["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    names |= {e["name"] for e in container["env"] if e["name"].startswith("DYNSERVE_")}
    names |= set(d["Secret"]["stringData"]) - {"admin-token"}
    unknown = names - dynserve_flags()
    assert not unknown, f"not dynserve flags: {sorted(unknown)}"


def test_probes_use_the_health_routes_and_references_resolve():
    d = docs()
    pod = d["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert d["Deployment"]["spec"]["replicas"] >= 2
    assert c["envFrom"][0]["configMapRef"]["name"] == d["ConfigMap"]["metadata"]["name"]
    secret = d["Secret"]
    for e in c["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
    vol = {v["name"]: v for v in pod["volumes"]}["admin-token"]["secret"]
    assert vol["secretName"] == secret["metadata"]["name"]
    labels = pod.get("labels") or d["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert d["Service"]["spec"]["selector"].items() <= labels.items()
    assert d["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
