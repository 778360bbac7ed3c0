/*
 * openapi: the live OpenAPI 3.1 document of this server, GET /openapi.json, and the page that
 * renders it, GET /docs (Swagger UI from npm, installed by the build into <web-root>/docs and
 * served from there: no CDN).
 *
 * The document is built on each request from two sources, so it cannot drift from what is
 * served: the static route table below (every management and data-plane route, with its
 * method, role and body schema) and the deployment manager's live deployments — one path per
 * deployed version (`/v2/models/<m>/versions/<v>/infer`, plus `/v2/models/<m>/infer` per model)
 * whose request and response schemas name that version's tensors (name, datatype, shape) from
 * the plugin's metadata. A deploy adds those paths and an undeploy removes them the moment it
 * returns.
 *
 * Thread-safety: handlers may run on many threads; they only read the deployment manager.
 */

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manage_internal.h"
#include "reply.h"

/* The route table entry for one documented operation. */
typedef struct openapi_route {
    const char *method;  /* "GET", "POST", ... */
    const char *path;    /* OpenAPI template, e.g. "/v2/models/{model_name}/ready" */
    const char *role;    /* least role allowed: "open", "inference", "viewer", "deployer",
                            "admin" (CONTRACTS roles; "inference" routes are open unless
                            --infer-auth required) */
    const char *tag;     /* group in the rendered page */
    const char *summary; /* one line */
    const char *request; /* components.schemas name of the JSON body, or NULL */
    const char *ok;      /* success status, e.g. "200" */
    const char *reply;   /* components.schemas name of the success body, or NULL */
} openapi_route;

/* Model and version names are [A-Za-z0-9_.-] (registry_name_valid), so they need no escaping
 * in a path, and "{model_name}" can never be one. */
static const openapi_route openapi_table[] = {
    /* Open Inference Protocol v2 */
    {"GET", "/v2", "open", "inference", "Server metadata and extensions", NULL, "200",
     "ServerMetadata"},
    {"GET", "/v2/health/live", "open", "inference", "Liveness", NULL, "200", "Health"},
    {"GET", "/v2/health/ready", "open", "inference", "Readiness (503 while restoring)", NULL, "200",
     "Health"},
    {"GET", "/v2/models/{model_name}", "inference", "inference",
     "Metadata of the newest deployed version", NULL, "200", "ModelMetadata"},
    {"GET", "/v2/models/{model_name}/ready", "inference", "inference", "Model readiness", NULL,
     "200", "ModelReady"},
    {"POST", "/v2/models/{model_name}/infer", "inference", "inference",
     "Infer, routed by the model's traffic split (?async=true queues a job)", "InferRequest", "200",
     "InferResponse"},
    {"GET", "/v2/models/{model_name}/versions/{model_version}", "inference", "inference",
     "Metadata of one deployed version", NULL, "200", "ModelMetadata"},
    {"GET", "/v2/models/{model_name}/versions/{model_version}/ready", "inference", "inference",
     "Version readiness", NULL, "200", "ModelReady"},
    {"POST", "/v2/models/{model_name}/versions/{model_version}/infer", "inference", "inference",
     "Infer on one version (?async=true queues a job)", "InferRequest", "200", "InferResponse"},
    {"GET", "/v2/jobs/{job_id}", "inference", "inference", "Status of an async inference job", NULL,
     "200", "Job"},
    {"GET", "/v2/jobs/{job_id}/result", "inference", "inference",
     "The finished job's response, exactly as the synchronous call answers", NULL, "200",
     "InferResponse"},
    /* Triton extensions */
    {"GET", "/v2/models/stats", "viewer", "triton", "Statistics of every deployed version", NULL,
     "200", "TritonStats"},
    {"GET", "/v2/models/{model_name}/stats", "viewer", "triton",
     "Statistics of every deployed version of a model", NULL, "200", "TritonStats"},
    {"GET", "/v2/models/{model_name}/versions/{model_version}/stats", "viewer", "triton",
     "Statistics of one deployed version", NULL, "200", "TritonStats"},
    {"POST", "/v2/repository/index", "viewer", "triton", "Every registered version and its state",
     "RepositoryIndexRequest", "200", "RepositoryIndex"},
    {"POST", "/v2/repository/models/{model_name}/load", "deployer", "triton",
     "Deploy the newest (or the named) versions", "RepositoryLoadRequest", "200", NULL},
    {"POST", "/v2/repository/models/{model_name}/unload", "deployer", "triton",
     "Undeploy every version (drained)", "RepositoryUnloadRequest", "200", NULL},
    /* models */
    {"GET", "/models", "viewer", "models", "Registered models and versions", NULL, "200", "Models"},
    {"POST", "/models", "admin", "models",
     "Register a version from a plugin path (\"plugin\") or a model directory (\"model_dir\": "
     "config.json naming a backend + the model files) on the server",
     "RegisterRequest", "201", "Version"},
    {"GET", "/models/{model_name}/versions/{model_version}", "viewer", "models",
     "One registered version: plugin digest, or backend and artifact digest; its config", NULL,
     "200", "Version"},
    {"PUT", "/models/{model_name}/versions/{model_version}", "admin", "models",
     "Upload a plugin (application/octet-stream) or a tar of config.json + artifacts "
     "(application/x-tar)",
     NULL, "201", "Version"},
    {"DELETE", "/models/{model_name}/versions/{model_version}", "admin", "models",
     "Unregister a version (409 while deployed)", NULL, "200", "Object"},
    {"GET", "/models/stats", "viewer", "stats",
     "Lifetime stats of every deployment (?scope=cluster: summed over the live replicas)", NULL,
     "200", "Stats"},
    /* deployments */
    {"GET", "/deployments", "viewer", "deployments", "Active and failed deployments", NULL, "200",
     "Deployments"},
    {"POST", "/deployments/deploy", "deployer", "deployments", "Deploy a registered version",
     "DeployRequest", "201", "Deployment"},
    {"POST", "/deployments/undeploy", "deployer", "deployments",
     "Undeploy (the route is gone and in-flight requests finished when it returns)",
     "UndeployRequest", "200", "Deployment"},
    {"GET", "/deployments/events", "viewer", "deployments",
     "Registry events, newest first (?limit=, ?model=)", NULL, "200", "Events"},
    {"GET", "/deployments/replicas", "viewer", "deployments",
     "The replicas sharing this registry (id, address, version, last heartbeat, live)", NULL,
     "200", "Object"},
    {"GET", "/deployments/{model_name}/traffic", "viewer", "deployments",
     "The model's traffic split, guard and shadow", NULL, "200", "Traffic"},
    {"PUT", "/deployments/{model_name}/traffic", "deployer", "deployments",
     "Set the split (and guard, shadow)", "TrafficRequest", "200", "Traffic"},
    {"POST", "/deployments/{model_name}/promote", "deployer", "deployments",
     "All traffic to one version", "PromoteRequest", "200", "Traffic"},
    {"POST", "/deployments/{model_name}/rollback", "deployer", "deployments",
     "Back to the previous split", NULL, "200", "Traffic"},
    {"GET", "/deployments/{model_name}/{model_version}/stats", "viewer", "stats",
     "One deployment's stats with latency histogram", NULL, "200", "Object"},
    {"GET", "/deployments/{model_name}/{model_version}/limits", "viewer", "deployments",
     "A live deployment's rate limit", NULL, "200", "Limits"},
    {"PUT", "/deployments/{model_name}/{model_version}/limits", "deployer", "deployments",
     "Set a live deployment's rate limit ({\"rate_limit\":{\"rps\",\"burst\"}} or null)", "Limits",
     "200", "Limits"},
    /* seed-style */
    {"POST", "/predict/{endpoint_name}", "inference", "predict",
     "Seed-style inference on a named endpoint", "PredictRequest", "200", "PredictResponse"},
    {"POST", "/predict", "inference", "predict", "Seed-style inference naming the model",
     "PredictRequest", "200", "PredictResponse"},
    /* operations */
    {"GET", "/metrics", "viewer", "operations", "Prometheus text exposition", NULL, "200", NULL},
    {"GET", "/openapi.json", "viewer", "operations", "This document", NULL, "200", "Object"},
    {"GET", "/docs", "viewer", "operations", "This document, rendered (Swagger UI)", NULL, "200",
     NULL},
    {"GET", "/", "open", "operations", "The dashboard", NULL, "200", NULL},
    /* tokens and identity (README "Security") */
    {"GET", "/tokens", "admin", "auth", "Every API token ever issued (never a secret)", NULL, "200",
     "Object"},
    {"POST", "/tokens", "admin", "auth",
     "Create a token {name, role, expires?}; its text is in the reply, shown once", "Object", "201",
     "Object"},
    {"DELETE", "/tokens/{token}", "admin", "auth", "Revoke a token by name or id", NULL, "200",
     "Object"},
    {"GET", "/auth/whoami", "inference", "auth",
     "The caller's token name and role (any valid token; {auth:false} with auth off)", NULL, "200",
     "Object"},
    {NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL},
};

/* The OIP name of a datatype ("FP32"). The codec has the same table, but manage/ may not use
 * the codec (src/CMakeLists.txt); these names are the protocol's and never change. */
static const char *oa_datatype_name(ds_datatype t)
{
    static const char *const names[] = {
        [DS_TYPE_BOOL] = "BOOL",     [DS_TYPE_UINT8] = "UINT8",   [DS_TYPE_UINT16] = "UINT16",
        [DS_TYPE_UINT32] = "UINT32", [DS_TYPE_UINT64] = "UINT64", [DS_TYPE_INT8] = "INT8",
        [DS_TYPE_INT16] = "INT16",   [DS_TYPE_INT32] = "INT32",   [DS_TYPE_INT64] = "INT64",
        [DS_TYPE_FP16] = "FP16",     [DS_TYPE_FP32] = "FP32",     [DS_TYPE_FP64] = "FP64",
        [DS_TYPE_BYTES] = "BYTES"};
    if ((size_t)t < sizeof names / sizeof names[0] && names[t] != NULL)
        return names[t];
    return "BYTES";
}

/* ---- schemas ---------------------------------------------------------------------------- */

static cJSON *oa_parse(const char *json)
{
    return cJSON_Parse(json); /* static text below; NULL only when memory runs out */
}

static const char oa_components_json[] =
    "{\"securitySchemes\":{\"bearer\":{\"type\":\"http\",\"scheme\":\"bearer\","
    "\"description\":\"An API token or a JWT. With no token and no JWT key configured the "
    "server is open (and listens on loopback only).\"}},"
    "\"schemas\":{"
    "\"Object\":{\"type\":\"object\"},"
    "\"Error\":{\"type\":\"object\",\"required\":[\"error\"],"
    "\"properties\":{\"error\":{\"type\":\"string\"}}},"
    "\"Datatype\":{\"type\":\"string\",\"enum\":[\"BOOL\",\"UINT8\",\"UINT16\",\"UINT32\","
    "\"UINT64\",\"INT8\",\"INT16\",\"INT32\",\"INT64\",\"FP16\",\"FP32\",\"FP64\",\"BYTES\"]},"
    "\"Tensor\":{\"type\":\"object\",\"required\":[\"name\",\"shape\",\"datatype\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"shape\":{\"type\":\"array\","
    "\"items\":{\"type\":\"integer\",\"minimum\":0}},\"datatype\":{\"$ref\":"
    "\"#/components/schemas/Datatype\"},\"parameters\":{\"type\":\"object\"},\"data\":{}}},"
    "\"InferRequest\":{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\"},\"inputs\":{\"type\":"
    "\"array\",\"items\":{\"$ref\":\"#/components/schemas/Tensor\"}},\"outputs\":{\"type\":"
    "\"array\",\"items\":{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":"
    "{\"type\":\"string\"},\"parameters\":{\"type\":\"object\"}}}}}},"
    "\"InferResponse\":{\"type\":\"object\",\"required\":[\"model_name\",\"outputs\"],"
    "\"properties\":{\"model_name\":{\"type\":\"string\"},\"model_version\":{\"type\":"
    "\"string\"},\"id\":{\"type\":\"string\"},\"parameters\":{\"type\":\"object\"},\"outputs\":"
    "{\"type\":\"array\",\"items\":{\"$ref\":\"#/components/schemas/Tensor\"}}}},"
    "\"JobAccepted\":{\"type\":\"object\",\"required\":[\"id\",\"status\"],\"properties\":{"
    "\"id\":{\"type\":\"string\"},\"status\":{\"const\":\"queued\"},\"location\":{\"type\":"
    "\"string\"}}},"
    "\"Job\":{\"type\":\"object\",\"required\":[\"id\",\"status\"],\"properties\":{\"id\":"
    "{\"type\":\"string\"},\"status\":{\"enum\":[\"queued\",\"running\",\"succeeded\","
    "\"failed\"]},\"model_name\":{\"type\":\"string\"},\"model_version\":{\"type\":[\"string\","
    "\"null\"]},\"http_status\":{\"type\":\"integer\"},\"response\":{\"$ref\":"
    "\"#/components/schemas/InferResponse\"},\"error\":{\"type\":\"string\"}}},"
    "\"ServerMetadata\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"},\"extensions\":{\"type\":\"array\",\"items\":{\"type\":"
    "\"string\"}}}},"
    "\"Health\":{\"type\":\"object\"},"
    "\"ModelReady\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"ready\":{\"type\":\"boolean\"}}},"
    "\"ModelMetadata\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"versions\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},\"platform\":{\"type\":"
    "\"string\"},\"inputs\":{\"type\":\"array\"},\"outputs\":{\"type\":\"array\"}}},"
    "\"Duration\":{\"type\":\"object\",\"required\":[\"count\",\"ns\"],\"properties\":{"
    "\"count\":{\"type\":\"integer\"},\"ns\":{\"type\":\"integer\"}}},"
    "\"TritonStats\":{\"type\":\"object\",\"required\":[\"model_stats\"],\"properties\":{"
    "\"model_stats\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},\"last_inference\":"
    "{\"type\":\"integer\"},\"inference_count\":{\"type\":\"integer\"},\"execution_count\":"
    "{\"type\":\"integer\"},\"inference_stats\":{\"type\":\"object\",\"additionalProperties\":"
    "{\"$ref\":\"#/components/schemas/Duration\"}},\"batch_stats\":{\"type\":\"array\"}}}}}},"
    "\"RepositoryIndexRequest\":{\"type\":\"object\",\"properties\":{\"ready\":{\"type\":"
    "\"boolean\"}}},"
    "\"RepositoryIndex\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"required\":"
    "[\"name\",\"state\",\"reason\"],\"properties\":{\"name\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"},\"state\":{\"enum\":[\"READY\",\"UNAVAILABLE\","
    "\"LOADING\",\"UNLOADING\"]},\"reason\":{\"type\":\"string\"}}}},"
    "\"RepositoryLoadRequest\":{\"type\":\"object\",\"properties\":{\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"version\":{\"type\":[\"string\",\"integer\"]},\"versions\":"
    "{\"type\":[\"string\",\"array\"]}}}}},"
    "\"RepositoryUnloadRequest\":{\"type\":\"object\",\"properties\":{\"parameters\":{\"type\":"
    "\"object\",\"properties\":{\"unload_dependents\":{\"type\":\"boolean\"}}}}},"
    "\"Models\":{\"type\":\"object\",\"properties\":{\"models\":{\"type\":\"array\"}}},"
    "\"RegisterRequest\":{\"type\":\"object\",\"required\":[\"name\",\"version\"],"
    "\"properties\":{\"name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
    "\"plugin\":{\"type\":\"string\"},\"model_dir\":{\"type\":\"string\"},"
    "\"config\":{\"type\":\"object\"}}},"
    "\"Version\":{\"type\":\"object\"},"
    "\"Deployments\":{\"type\":\"object\",\"properties\":{\"deployments\":{\"type\":\"array\","
    "\"items\":{\"$ref\":\"#/components/schemas/Deployment\"}},\"traffic\":{\"type\":"
    "\"array\"}}},"
    "\"Deployment\":{\"type\":\"object\",\"properties\":{\"model_name\":{\"type\":\"string\"},"
    "\"version\":{\"type\":\"string\"},\"endpoint_name\":{\"type\":\"string\"},\"status\":"
    "{\"type\":\"string\"},\"deployed_at\":{\"type\":\"string\"},"
    /* what loading / the undeploy cost (deploy.h lifecycle metrics) */
    "\"load\":{\"type\":\"object\",\"properties\":{\"load_ms\":{\"type\":\"number\"},"
    "\"ready_ms\":{\"type\":[\"number\",\"null\"]},\"rss_before_bytes\":{\"type\":"
    "[\"integer\",\"null\"]},\"rss_after_bytes\":{\"type\":[\"integer\",\"null\"]},"
    "\"rss_delta_bytes\":{\"type\":[\"integer\",\"null\"]}}},"
    "\"unload\":{\"type\":\"object\",\"properties\":{\"drain_ms\":{\"type\":\"number\"},"
    "\"unload_ms\":{\"type\":\"number\"},\"rss_before_bytes\":{\"type\":[\"integer\","
    "\"null\"]},\"rss_after_bytes\":{\"type\":[\"integer\",\"null\"]},"
    "\"rss_freed_bytes\":{\"type\":[\"integer\",\"null\"]}}}}},"
    "\"DeployRequest\":{\"type\":\"object\",\"required\":[\"model_name\",\"version\"],"
    "\"properties\":{\"model_name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"},"
    "\"endpoint_name\":{\"type\":\"string\"},"
    /* the deploy options (deploy/deploy_options.c: names and ranges) */
    "\"isolation\":{\"type\":\"string\",\"enum\":[\"inproc\",\"process\"],"
    "\"description\":\"run the plugin in the server or in a worker process\"},"
    "\"rate_limit\":{\"type\":[\"object\",\"null\"],\"properties\":{\"rps\":{\"type\":"
    "\"number\"},\"burst\":{\"type\":\"integer\"}},\"description\":\"token bucket for "
    "this deployment\"},"
    "\"timeout_ms\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600000,"
    "\"description\":\"execute deadline (504 beyond it)\"},"
    "\"max_in_flight\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000,"
    "\"description\":\"concurrent executions (beyond them requests queue)\"},"
    "\"max_queue\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":1000000,"
    "\"description\":\"requests waiting for a slot (503 beyond it)\"},"
    "\"memory_limit_mb\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":1048576,"
    "\"description\":\"isolated worker's address-space limit\"},"
    "\"max_open_files\":{\"type\":\"integer\",\"minimum\":16,\"maximum\":1048576,"
    "\"description\":\"isolated worker's open-file limit\"},"
    "\"cpu_limit_ms\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":3600000,"
    "\"description\":\"isolated worker's CPU time per call\"},"
    "\"workers\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64,"
    "\"description\":\"calls in flight inside the isolated worker\"},"
    "\"instance_count\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":64,"
    "\"description\":\"model instances (concurrent executions of the plugin)\"},"
    /* dynamic batching (deploy/batcher.h); in process, for a plugin with execute_batch */
    "\"max_batch_size\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1024,"
    "\"description\":\"dynamic batching: most rows per execution\"},"
    "\"max_queue_delay_us\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":10000000,"
    "\"description\":\"how long a batch waits for more requests\"},"
    "\"preferred_batch_sizes\":{\"type\":\"array\",\"minItems\":1,\"maxItems\":8,"
    "\"items\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":1024},"
    "\"description\":\"ascending sizes at which a batch runs at once\"}}},"
    "\"UndeployRequest\":{\"type\":\"object\",\"properties\":{\"model_name\":{\"type\":"
    "\"string\"},\"version\":{\"type\":\"string\"},\"endpoint_name\":{\"type\":\"string\"}}},"
    "\"Events\":{\"type\":\"object\",\"properties\":{\"events\":{\"type\":\"array\"}}},"
    "\"TrafficRequest\":{\"type\":\"object\",\"description\":\"{\\\"1\\\":90,\\\"2\\\":10} or "
    "{\\\"weights\\\":{...},\\\"guard\\\":{...},\\\"shadow\\\":{\\\"version\\\":\\\"3\\\","
    "\\\"percent\\\":20}}\"},"
    "\"Traffic\":{\"type\":\"object\"},"
    "\"Limits\":{\"type\":\"object\",\"properties\":{\"rate_limit\":{\"type\":[\"object\","
    "\"null\"],\"properties\":{\"rps\":{\"type\":\"number\"},\"burst\":{\"type\":"
    "\"number\"}}}}},"
    "\"PromoteRequest\":{\"type\":\"object\",\"required\":[\"version\"],\"properties\":{"
    "\"version\":{\"type\":\"string\"}}},"
    "\"Stats\":{\"type\":\"object\",\"properties\":{\"stats\":{\"type\":\"array\"}}},"
    "\"PredictRequest\":{\"type\":\"object\",\"required\":[\"input\"],\"properties\":{"
    "\"input\":{},\"model_name\":{\"type\":\"string\"},\"version\":{\"type\":\"string\"}}},"
    "\"PredictResponse\":{\"type\":\"object\",\"properties\":{\"prediction\":{}}}"
    "}}";

static cJSON *oa_ref(const char *name)
{
    char ref[128];
    snprintf(ref, sizeof ref, "#/components/schemas/%s", name);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "$ref", ref);
    return o;
}

static cJSON *oa_json_content(cJSON *schema)
{
    cJSON *content = cJSON_CreateObject();
    cJSON *mt = cJSON_AddObjectToObject(content, "application/json");
    cJSON_AddItemToObject(mt, "schema", schema);
    return content;
}

/* responses: the success code with its schema, 202 for async infer, default: Error */
static cJSON *oa_responses(const openapi_route *r, cJSON *reply_schema)
{
    cJSON *resps = cJSON_CreateObject();
    cJSON *ok = cJSON_AddObjectToObject(resps, r->ok);
    cJSON_AddStringToObject(ok, "description", "success");
    if (reply_schema != NULL)
        cJSON_AddItemToObject(ok, "content", oa_json_content(reply_schema));
    else if (strcmp(r->path, "/metrics") == 0)
        cJSON_AddItemToObject(ok, "content",
                              oa_parse("{\"text/plain\":{\"schema\":"
                                       "{\"type\":\"string\"}}}"));
    else if (strcmp(r->path, "/docs") == 0 || strcmp(r->path, "/") == 0)
        cJSON_AddItemToObject(ok, "content",
                              oa_parse("{\"text/html\":{\"schema\":"
                                       "{\"type\":\"string\"}}}"));
    if (strstr(r->path, "/infer") != NULL) {
        cJSON *acc = cJSON_AddObjectToObject(resps, "202");
        cJSON_AddStringToObject(acc, "description",
                                "with ?async=true: the job was queued; Location names it");
        cJSON_AddItemToObject(acc, "content", oa_json_content(oa_ref("JobAccepted")));
    }
    cJSON *def = cJSON_AddObjectToObject(resps, "default");
    cJSON_AddStringToObject(def, "description", "an error: {\"error\": \"...\"}");
    cJSON_AddItemToObject(def, "content", oa_json_content(oa_ref("Error")));
    return resps;
}

/* Path parameters named in the template ("{model_name}"), plus ?async for infer routes. */
static cJSON *oa_parameters(const char *path)
{
    cJSON *params = cJSON_CreateArray();
    for (const char *p = strchr(path, '{'); p != NULL; p = strchr(p + 1, '{')) {
        const char *end = strchr(p, '}');
        if (end == NULL)
            break;
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", name);
        cJSON_AddStringToObject(o, "in", "path");
        cJSON_AddBoolToObject(o, "required", true);
        cJSON_AddItemToObject(o, "schema", oa_parse("{\"type\":\"string\"}"));
        cJSON_AddItemToArray(params, o);
    }
    if (strstr(path, "/infer") != NULL)
        cJSON_AddItemToArray(params,
                             oa_parse("{\"name\":\"async\",\"in\":\"query\",\"required\":false,"
                                      "\"description\":\"true: queue a job, answer 202\","
                                      "\"schema\":{\"type\":\"boolean\"}}"));
    return params;
}

static void oa_operation_id(const char *method, const char *path, char *out, size_t len)
{
    size_t j = (size_t)snprintf(out, len, "%s", method);
    for (const char *p = path; *p && j + 2 < len; p++) {
        char c = *p;
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out[j++] = word ? c : '_';
    }
    out[j] = '\0';
}

static cJSON *oa_operation(const openapi_route *r, const char *path, cJSON *request, cJSON *reply)
{
    cJSON *op = cJSON_CreateObject();
    char id[512];
    oa_operation_id(r->method, path, id, sizeof id);
    cJSON_AddStringToObject(op, "operationId", id);
    cJSON_AddStringToObject(op, "summary", r->summary);
    cJSON *tags = cJSON_AddArrayToObject(op, "tags");
    cJSON_AddItemToArray(tags, cJSON_CreateString(r->tag));
    cJSON_AddStringToObject(op, "x-dynserve-role", r->role);
    cJSON *params = oa_parameters(path);
    if (cJSON_GetArraySize(params) > 0)
        cJSON_AddItemToObject(op, "parameters", params);
    else
        cJSON_Delete(params);
    if (request != NULL) {
        cJSON *body = cJSON_AddObjectToObject(op, "requestBody");
        cJSON_AddBoolToObject(body, "required",
                              strcmp(r->request, "RepositoryIndexRequest") &&
                                  strcmp(r->request, "RepositoryLoadRequest") &&
                                  strcmp(r->request, "RepositoryUnloadRequest"));
        cJSON_AddItemToObject(body, "content", oa_json_content(request));
    }
    cJSON_AddItemToObject(op, "responses", oa_responses(r, reply));
    if (strcmp(r->role, "open") != 0)
        cJSON_AddItemToObject(op, "security", oa_parse("[{\"bearer\":[]},{}]"));
    return op;
}

static void oa_add(cJSON *paths, const char *path, const char *method, cJSON *op)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(paths, path);
    if (item == NULL)
        item = cJSON_AddObjectToObject(paths, path);
    char lower[16];
    size_t i = 0;
    for (; method[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)(method[i] | 0x20);
    lower[i] = '\0';
    cJSON_AddItemToObject(item, lower, op);
}

/* ---- per-deployment paths ---------------------------------------------------------------- */

/* The schema of one declared tensor: its name, datatype and shape (-1 = any size). */
static cJSON *oa_tensor_schema(const ds_io_desc *io)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "type", "object");
    cJSON *req = cJSON_AddArrayToObject(s, "required");
    cJSON_AddItemToArray(req, cJSON_CreateString("name"));
    cJSON_AddItemToArray(req, cJSON_CreateString("shape"));
    cJSON_AddItemToArray(req, cJSON_CreateString("datatype"));
    cJSON *props = cJSON_AddObjectToObject(s, "properties");
    cJSON *name = cJSON_AddObjectToObject(props, "name");
    cJSON_AddStringToObject(name, "const", io->name);
    cJSON *dt = cJSON_AddObjectToObject(props, "datatype");
    if (io->datatype == DS_TYPE_ANY)
        cJSON_AddStringToObject(dt, "$ref", "#/components/schemas/Datatype");
    else
        cJSON_AddStringToObject(dt, "const", oa_datatype_name(io->datatype));
    cJSON *shape = cJSON_AddObjectToObject(props, "shape");
    cJSON_AddStringToObject(shape, "type", "array");
    cJSON_AddItemToObject(shape, "items", oa_parse("{\"type\":\"integer\",\"minimum\":0}"));
    char desc[256] = "declared shape [";
    size_t used = strlen(desc);
    if (io->rank >= 0) {
        cJSON_AddNumberToObject(shape, "minItems", io->rank);
        cJSON_AddNumberToObject(shape, "maxItems", io->rank);
        for (int i = 0; i < io->rank && used < sizeof desc; i++)
            used += (size_t)snprintf(desc + used, sizeof desc - used, "%s%lld", i ? "," : "",
                                     (long long)io->shape[i]);
    } else {
        used += (size_t)snprintf(desc + used, sizeof desc - used, "any rank");
    }
    if (used < sizeof desc)
        snprintf(desc + used, sizeof desc - used, "] (-1: any size)");
    cJSON_AddStringToObject(shape, "description", desc);
    cJSON_AddItemToObject(props, "parameters", oa_parse("{\"type\":\"object\"}"));
    cJSON_AddItemToObject(props, "data", oa_parse("{}"));
    return s;
}

/* An array schema whose items are one of the declared tensors (generic when undeclared). */
static cJSON *oa_tensor_list(const ds_io_desc *io, uint32_t n, bool dynamic)
{
    cJSON *arr = cJSON_CreateObject();
    cJSON_AddStringToObject(arr, "type", "array");
    if (dynamic || n == 0) {
        cJSON_AddItemToObject(arr, "items", oa_ref("Tensor"));
        return arr;
    }
    cJSON *items = cJSON_AddObjectToObject(arr, "items");
    cJSON *one = cJSON_AddArrayToObject(items, "oneOf");
    for (uint32_t i = 0; i < n; i++)
        cJSON_AddItemToArray(one, oa_tensor_schema(&io[i]));
    return arr;
}

static cJSON *oa_infer_schema(const ds_model_desc *md, bool request)
{
    bool dynamic = (md->flags & DS_MODEL_DYNAMIC_IO) != 0;
    cJSON *s = oa_parse(request ? "{\"type\":\"object\",\"required\":[\"inputs\"],\"properties\":"
                                  "{\"id\":{\"type\":\"string\"},\"parameters\":{\"type\":"
                                  "\"object\"},\"outputs\":{\"type\":\"array\"}}}"
                                : "{\"type\":\"object\",\"required\":[\"model_name\",\"outputs\"],"
                                  "\"properties\":{\"model_name\":{\"type\":\"string\"},"
                                  "\"model_version\":{\"type\":\"string\"},\"id\":{\"type\":"
                                  "\"string\"},\"parameters\":{\"type\":\"object\"}}}");
    cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    if (request)
        cJSON_AddItemToObject(props, "inputs",
                              oa_tensor_list(md->inputs, md->input_count, dynamic));
    else
        cJSON_AddItemToObject(props, "outputs",
                              oa_tensor_list(md->outputs, md->output_count, dynamic));
    return s;
}

typedef struct oa_walk {
    cJSON *paths;
    const openapi_route *versioned, *unversioned;
} oa_walk;

static void oa_visit(void *ud, const deploy_target *t, int weight)
{
    (void)weight;
    oa_walk *w = ud;
    char path[2 * REG_NAME_MAX + 48], summary[2 * REG_NAME_MAX + 64];
    snprintf(path, sizeof path, "/v2/models/%s/versions/%s/infer", t->model_name, t->version);
    snprintf(summary, sizeof summary, "Infer on %s version %s", t->model_name, t->version);
    openapi_route r = *w->versioned;
    r.summary = summary;
    r.tag = "deployed";
    oa_add(
        w->paths, path, "POST",
        oa_operation(&r, path, oa_infer_schema(t->model, true), oa_infer_schema(t->model, false)));
    /* the model's unversioned route, once (deployments are visited newest first per model) */
    snprintf(path, sizeof path, "/v2/models/%s/infer", t->model_name);
    if (cJSON_GetObjectItemCaseSensitive(w->paths, path) != NULL)
        return;
    snprintf(summary, sizeof summary, "Infer on %s, routed by its traffic split", t->model_name);
    r = *w->unversioned;
    r.summary = summary;
    r.tag = "deployed";
    oa_add(
        w->paths, path, "POST",
        oa_operation(&r, path, oa_infer_schema(t->model, true), oa_infer_schema(t->model, false)));
}

/* ---- document ---------------------------------------------------------------------------- */

static cJSON *oa_document(manage_ctx *s)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "openapi", "3.1.0");
    cJSON *info = cJSON_AddObjectToObject(doc, "info");
    cJSON_AddStringToObject(info, "title", "dynserve");
    cJSON_AddStringToObject(info, "version", DYNSERVE_VERSION);
    cJSON_AddStringToObject(info, "description",
                            "Model deployment server: Open Inference Protocol v2 data plane, "
                            "Triton's model repository and statistics extensions, management "
                            "REST API. Paths tagged 'deployed' are the live deployments, added "
                            "at deploy and removed at undeploy. x-dynserve-role is the least "
                            "role a token needs.");
    cJSON *tags = oa_parse("[{\"name\":\"deployed\",\"description\":\"one path per deployed "
                           "version, with its tensors\"},{\"name\":\"inference\"},{\"name\":"
                           "\"triton\"},{\"name\":\"models\"},{\"name\":\"deployments\"},"
                           "{\"name\":\"stats\"},{\"name\":\"predict\"},{\"name\":"
                           "\"operations\"}]");
    cJSON_AddItemToObject(doc, "tags", tags);
    cJSON *paths = cJSON_AddObjectToObject(doc, "paths");
    oa_walk w = {.paths = paths};
    for (const openapi_route *r = openapi_table; r->method != NULL; r++) {
        if (strcmp(r->path, "/v2/models/{model_name}/versions/{model_version}/infer") == 0)
            w.versioned = r;
        else if (strcmp(r->path, "/v2/models/{model_name}/infer") == 0)
            w.unversioned = r;
        oa_add(paths, r->path, r->method,
               oa_operation(r, r->path, r->request ? oa_ref(r->request) : NULL,
                            r->reply ? oa_ref(r->reply) : NULL));
    }
    deploy_foreach(s->deploy, oa_visit, &w);
    cJSON_AddItemToObject(doc, "components", oa_parse(oa_components_json));
    return doc;
}

void manage_openapi(manage_ctx *s, const http_request *req, http_response *resp)
{
    if (!reply_method_is(req, "GET")) {
        reply_bad_method(req, resp, "GET, HEAD");
        return;
    }
    cJSON *doc = oa_document(s);
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (text == NULL) {
        reply_error(resp, HTTP_INTERNAL_ERROR, "out of memory");
        return;
    }
    buf_append_str(resp->body, text);
    free(text);
    resp->status = HTTP_OK;
}

void manage_docs(manage_ctx *s, const http_request *req, http_response *resp)
{
    if (!reply_method_is(req, "GET")) {
        reply_bad_method(req, resp, "GET, HEAD");
        return;
    }
    char bundle[PATH_MAX];
    int n = snprintf(bundle, sizeof bundle, "%s/docs/swagger-ui-bundle.js", s->cfg->web_root);
    if (n < 0 || (size_t)n >= sizeof bundle || access(bundle, R_OK) != 0) {
        reply_error(resp, HTTP_NOT_FOUND,
                    "the /docs renderer is not installed (build with npm available); the "
                    "document itself is at /openapi.json");
        return;
    }
    http_request page = *req;
    page.path = "/docs/index.html";
    http_serve_static(s->http, &page, resp);
}
