"""The live OpenAPI document (issue 13, part 3): GET /openapi.json validates against the official
OpenAPI 3.1 schema (@seriousme/openapi-schema-validator from npm), follows deploy and undeploy
with one path per deployed version built from the model's metadata, documents every route the
server answers and nothing else; GET /docs serves the renderer (Swagger UI from npm, no CDN)."""
import json
import pathlib
import re
import subprocess

import pytest
import requests

from conftest import REPO, expect_error, expect_status, quad_inputs

Q = "quadratic_predictor"
BC = "binary_classifier"
VALIDATOR = REPO / "test" / "openapi" / "run.sh"
METHODS = ("get", "put", "post", "delete", "patch")


def document(server):
    doc = expect_status(server.get("/openapi.json"), 200)
    assert doc["openapi"].startswith("3.1"), doc.get("openapi")
    return doc


def validate(doc):
    p = subprocess.run([str(VALIDATOR), "-"], input=json.dumps(doc), capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("valid 3.1"), \
        f"OpenAPI validation failed:\n{p.stdout[:4000]}\n{p.stderr[-2000:]}"


def test_document_validates_and_follows_deploy_and_undeploy(server):
    doc = document(server)
    validate(doc)
    v1 = f"/v2/models/{Q}/versions/1/infer"
    assert v1 not in doc["paths"] and f"/v2/models/{Q}/infer" not in doc["paths"]
    server.deploy(Q, "1")
    server.deploy(BC, "2")
    server.deploy("identity", "1")
    doc = document(server)
    validate(doc)
    op = doc["paths"][v1]["post"]
    assert op["tags"] == ["deployed"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    (tensor,) = schema["properties"]["inputs"]["items"]["oneOf"]
    assert tensor["properties"]["name"]["const"] == "input"
    assert tensor["properties"]["datatype"]["const"] == "FP32"
    assert tensor["properties"]["shape"]["minItems"] == 2
    out = op["responses"]["200"]["content"]["application/json"]["schema"]
    (o,) = out["properties"]["outputs"]["items"]["oneOf"]
    assert o["properties"]["name"]["const"] == "prediction"
    bc = doc["paths"][f"/v2/models/{BC}/versions/2/infer"]["post"]["responses"]["200"]
    names = {t["properties"]["name"]["const"] for t in
             bc["content"]["application/json"]["schema"]["properties"]["outputs"]["items"]
             ["oneOf"]}
    assert names == {"probability", "label"}
    assert f"/v2/models/{Q}/infer" in doc["paths"] and f"/v2/models/{BC}/infer" in doc["paths"]
    assert "/v2/models/identity/versions/1/infer" in doc["paths"]
    server.undeploy(Q, "1")
    doc = document(server)
    assert v1 not in doc["paths"] and f"/v2/models/{Q}/infer" not in doc["paths"]
    assert f"/v2/models/{BC}/versions/2/infer" in doc["paths"]
    validate(doc)


def concrete(path, job_id):
    return (path.replace("{model_name}", Q).replace("{model_version}", "1")
            .replace("{endpoint_name}", "quad").replace("{job_id}", job_id))


def no_route(r):
    if r.status_code == 405:
        return True
    if r.status_code != 404:
        return False
    try:
        return "no route" in r.json().get("error", "")
    except ValueError:
        return True


def test_every_documented_route_is_served_and_nothing_else(server):
    server.deploy(Q, "1", endpoint_name="quad")
    job = server.post(f"/v2/models/{Q}/versions/1/infer?async=true",
                      {"inputs": quad_inputs([1.0])})
    job_id = expect_status(job, 202)["id"]
    doc = document(server)
    documented = {(p, m) for p, item in doc["paths"].items() for m in item if m in METHODS}
    for path, method in sorted(documented):
        url = concrete(path, job_id)
        # bodies that are valid JSON but wrong for every route: recognized, refused, no change
        if method == "delete":
            url = url.replace("/versions/1", "/versions/does-not-exist")
        r = requests.request(method.upper(), server.url(url), data="[1]", timeout=10)
        assert not no_route(r), f"documented {method.upper()} {path} is not served: " \
            f"{r.status_code} {r.text[:200]}"
        # every other method on a documented path is refused (405 with Allow, or no route)
        for other in METHODS:
            if other in doc["paths"][path] or path == "/":
                continue
            r = requests.request(other.upper(), server.url(url), data="[1]", timeout=10)
            assert r.status_code in (404, 405), \
                f"undocumented {other.upper()} {path} answered {r.status_code} {r.text[:200]}"
    # every route of the README's endpoint table is documented
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Endpoints"):]
    table = table[:table.index("\n## ", 5)]
    documented_ops = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for p, m in documented}
    checked = 0
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        cell = line.split("|")[1].replace("`", "").strip()  # e.g. "PUT/GET /deployments/<m>/..."
        methods, prev = ["get"], ""
        for route in re.split(r",\s*", cell):
            parts = route.split()
            if len(parts) == 2:
                methods = parts[0].lower().split("/")
            path = parts[-1]
            if not path.startswith("/"):
                continue
            if len(parts) == 1 and path.count("/") == 1 and prev.count("/") > 1:
                path = prev.rsplit("/", 1)[0] + path  # "/promote, /rollback": a sibling
            prev = path
            path = re.sub(r"\[[^\]]*\]", "", path.split("?")[0])  # the short form, no query
            path = re.sub(r"<[^>]+>", "{}", path)
            for method in methods:
                checked += 1
                assert (method, path) in documented_ops, \
                    f"README route {method.upper()} {path} is not in /openapi.json"
    assert checked > 20, f"read only {checked} routes from the README's endpoint table"


def test_undocumented_paths_are_not_served(server):
    server.deploy(Q, "1")
    for method, path in [("GET", "/v2/models/x/versions/1/bogus"), ("POST", "/v2/repository/x"),
                         ("GET", "/v2/jobs"), ("POST", "/deployments/x/y/z"),
                         ("GET", "/models/x/versions")]:
        r = requests.request(method, server.url(path), timeout=10)
        assert r.status_code in (404, 405), f"{method} {path}: {r.status_code} {r.text[:200]}"


def test_docs_page_serves_the_renderer_locally(server):
    r = server.get("/docs")
    assert r.status_code == 200 and "text/html" in r.headers["Content-Type"], r.text[:300]
    assert "swagger-ui-bundle.js" in r.text
    assert not re.search(r"(src|href)=\"(https?:)?//", r.text), "the page must not load from a CDN"
    js = server.get("/docs/swagger-ui-bundle.js")
    assert js.status_code == 200 and len(js.content) > 100_000
    css = server.get("/docs/swagger-ui.css")
    assert css.status_code == 200
    expect_error(server.post("/openapi.json", {}), 405)


def test_every_documented_route_is_in_the_role_walk(server):
    """The auth policy (src/auth/auth_policy.c) and the OpenAPI document are two tables of the
    same routes; test_auth.py walks every route in its ROUTES list with every role. A route that
    is documented but missing from that walk would have its role unchecked, so tie them here."""
    from test_auth import ROUTES

    server.deploy(Q, "1")
    doc = document(server)
    walked = [(m.lower(), p) for m, p, _, _ in ROUTES]
    missing = []
    for template, item in doc["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "/?$")
        for method in METHODS:
            if method in item and not any(m == method and pattern.match(p) for m, p in walked):
                missing.append(f"{method.upper()} {template}")
    assert not missing, "documented but not in test_auth.ROUTES: " + ", ".join(missing)


def test_deploy_request_documents_every_deploy_option(server):
    """DeployRequest lists exactly the options the deploy body accepts (the table in
    src/deploy/deploy_options.c), so a client generated from the document can set each of them;
    and each documented option's range is the one the server enforces."""
    source = (REPO / "src" / "deploy" / "deploy_options.c").read_text()
    table = source[source.index("opt_fields[] = {"):]
    table = table[:table.index("};")]
    accepted = set(re.findall(r'\{"([a-z_]+)", OPT_', table)) | \
        set(re.findall(r"OPT_INT_FIELD\(([a-z_]+),", table))
    assert len(accepted) >= 10, accepted
    props = document(server)["components"]["schemas"]["DeployRequest"]["properties"]
    assert set(props) - {"model_name", "version", "endpoint_name"} == accepted
    for name, lo, hi in re.findall(r"OPT_INT_FIELD\(([a-z_]+), (\d+), (\d+)\)", table):
        assert (props[name]["minimum"], props[name]["maximum"]) == (int(lo), int(hi)), name
