/*
 * ctl: `dynserve ctl [--server URL] [--json] [--timeout S] [--cacert F] [--insecure] CMD ...`.
 * Each command is one or two REST calls; the reply is printed as a table (or a line) or, with
 * --json, as the server's JSON body on one line. Errors go to stderr as "error: <message>".
 * The token comes from DYNSERVE_TOKEN, the server from --server or DYNSERVE_SERVER.
 */
#include "ctl.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_internal.h"

#define CTL_DEFAULT_SERVER "http://127.0.0.1:8080"
#define CTL_SEG            (3 * 64 + 1) /* a percent-encoded name */

static const char ctl_usage[] =
    "usage: dynserve ctl [--server URL] [--json] [--timeout S] [--cacert FILE] [--insecure]\n"
    "                    COMMAND [ARGS]\n"
    "commands:\n"
    "  status                                server, readiness, models and deployments\n"
    "  models                                registered models and versions\n"
    "  register MODEL VERSION PLUGIN [--config JSON]   register a plugin path on the server\n"
    "  upload MODEL VERSION FILE             upload a plugin .so (or a .tar with config.json)\n"
    "  deploy MODEL VERSION [--endpoint NAME] [--options JSON]\n"
    "  undeploy MODEL VERSION | undeploy --endpoint NAME\n"
    "  traffic MODEL [VERSION=WEIGHT ...] [--shadow VERSION:PERCENT]   show or set the split\n"
    "  promote MODEL VERSION                 all traffic to VERSION\n"
    "  rollback MODEL                        back to the previous split\n"
    "  stats [MODEL]                         per-deployment statistics table\n"
    "  events [--model MODEL] [--limit N]    registry events, newest first\n"
    "  tokens list | tokens create NAME ROLE [--expires 30d] | tokens revoke NAME|ID\n"
    "environment: DYNSERVE_SERVER (default " CTL_DEFAULT_SERVER "), DYNSERVE_TOKEN (bearer)\n"
    "exit codes: 0 ok, 1 server error, 2 usage, 3 unreachable, 4 not found, 5 conflict,\n"
    "            6 unauthorized/forbidden, 7 unavailable (retry later)\n";

typedef struct ctl_cmd {
    const char *name;
    int (*run)(const ctl_opts *o, int argc, char **argv);
} ctl_cmd;

static int ctl_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "dynserve ctl: ");
    fprintf(stderr, fmt, arg ? arg : "");
    fprintf(stderr, "\n%s", ctl_usage);
    return CTL_EXIT_USAGE;
}

static int ctl_exit_for(long status)
{
    if (status >= 200 && status < 300)
        return CTL_EXIT_OK;
    switch (status) {
    case 0: return CTL_EXIT_UNREACHABLE;
    case 401:
    case 403: return CTL_EXIT_AUTH;
    case 404: return CTL_EXIT_NOT_FOUND;
    case 409: return CTL_EXIT_CONFLICT;
    case 429:
    case 502:
    case 503:
    case 504: return CTL_EXIT_UNAVAILABLE;
    default: return CTL_EXIT_ERROR;
    }
}

/* Print the failure of a reply to stderr; returns its exit code. */
static int ctl_fail(const ctl_reply *r)
{
    if (r->status == 0) {
        fprintf(stderr, "error: cannot reach %s\n", r->error);
        return CTL_EXIT_UNREACHABLE;
    }
    cJSON *j = cJSON_ParseWithLength(r->body, r->body_len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        fprintf(stderr, "error: %s (HTTP %ld)\n", e->valuestring, r->status);
    else
        fprintf(stderr, "error: HTTP %ld: %.300s\n", r->status, r->body ? r->body : "");
    cJSON_Delete(j);
    return ctl_exit_for(r->status);
}

/* Do a call; on success with --json print the body, else hand the parsed body to show().
 * Returns the exit code. */
static int ctl_call(const ctl_opts *o, const char *method, const char *path, const char *body,
                    void (*show)(const cJSON *reply, void *ud), void *ud)
{
    ctl_reply r;
    ctl_http(o, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0,
             &r);
    int code = ctl_exit_for(r.status);
    if (code != CTL_EXIT_OK) {
        code = ctl_fail(&r);
    } else if (o->json) {
        fwrite(r.body, 1, r.body_len, stdout);
        if (r.body_len == 0 || r.body[r.body_len - 1] != '\n')
            fputc('\n', stdout);
    } else if (show != NULL) {
        cJSON *j = cJSON_ParseWithLength(r.body, r.body_len);
        show(j, ud);
        cJSON_Delete(j);
    }
    ctl_reply_free(&r);
    return code;
}

static const char *ctl_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A number field as text ("-" when absent). */
static void ctl_num(const cJSON *o, const char *key, char *out, size_t len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(v))
        snprintf(out, len, "%.6g", v->valuedouble);
    else
        snprintf(out, len, "-");
}

/* Print a plain message line for commands whose reply needs no table. */
static void ctl_show_message(const cJSON *reply, void *ud)
{
    (void)reply;
    puts((const char *)ud);
}

/* ---- status, models, stats, events ------------------------------------------------------ */

static void ctl_show_deployments(const cJSON *reply, void *ud)
{
    (void)ud;
    static const char *const head[] = {"MODEL", "VERSION", "ENDPOINT", "STATUS", "DEPLOYED_AT"};
    ctl_table *t = ctl_table_new(5, head);
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(reply, "deployments"))
    {
        const char *row[] = {ctl_str(d, "model_name"), ctl_str(d, "version"),
                             ctl_str(d, "endpoint_name"), ctl_str(d, "status"),
                             ctl_str(d, "deployed_at")};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static int ctl_status(const ctl_opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return ctl_usage_error("status takes no arguments", NULL);
    ctl_reply meta, ready;
    ctl_http(o, "GET", "/v2", NULL, NULL, 0, &meta);
    if (ctl_exit_for(meta.status) != CTL_EXIT_OK) {
        int code = ctl_fail(&meta);
        ctl_reply_free(&meta);
        return code;
    }
    ctl_http(o, "GET", "/v2/health/ready", NULL, NULL, 0, &ready);
    bool is_ready = ready.status == 200;
    if (o->json) {
        cJSON *m = cJSON_ParseWithLength(meta.body, meta.body_len);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "server", o->server);
        cJSON_AddItemToObject(root, "metadata", m ? m : cJSON_CreateNull());
        cJSON_AddBoolToObject(root, "ready", is_ready);
        char *text = cJSON_PrintUnformatted(root);
        if (text != NULL)
            puts(text);
        free(text);
        cJSON_Delete(root);
    } else {
        cJSON *m = cJSON_ParseWithLength(meta.body, meta.body_len);
        printf("server:  %s\nname:    %s %s\nready:   %s\n", o->server, ctl_str(m, "name"),
               ctl_str(m, "version"), is_ready ? "yes" : "no (restoring deployments)");
        cJSON_Delete(m);
    }
    ctl_reply_free(&meta);
    ctl_reply_free(&ready);
    if (o->json)
        return CTL_EXIT_OK;
    fputc('\n', stdout);
    return ctl_call(o, "GET", "/deployments", NULL, ctl_show_deployments, NULL);
}

static void ctl_show_models(const cJSON *reply, void *ud)
{
    (void)ud;
    static const char *const head[] = {"MODEL", "VERSIONS"};
    ctl_table *t = ctl_table_new(2, head);
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(reply, "models"))
    {
        char versions[1024] = "";
        size_t used = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(m, "versions"))
        {
            if (cJSON_IsString(v) && used < sizeof versions)
                used += (size_t)snprintf(versions + used, sizeof versions - used, "%s%s",
                                         used ? "," : "", v->valuestring);
        }
        const char *row[] = {ctl_str(m, "name"), versions};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static int ctl_models(const ctl_opts *o, int argc, char **argv)
{
    (void)argv;
    if (argc != 0)
        return ctl_usage_error("models takes no arguments", NULL);
    return ctl_call(o, "GET", "/models", NULL, ctl_show_models, NULL);
}

static void ctl_show_stats(const cJSON *reply, void *ud)
{
    const char *only = ud;
    static const char *const head[] = {"MODEL", "VERSION", "REQUESTS", "ERRORS", "AVG_MS",
                                       "P50_MS", "P95_MS", "P99_MS", "IN_FLIGHT", "WEIGHT",
                                       "STATUS"};
    ctl_table *t = ctl_table_new(11, head);
    const cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(reply, "stats"))
    {
        if (only != NULL && strcmp(ctl_str(s, "model_name"), only) != 0)
            continue;
        char n[8][32];
        static const char *const keys[] = {"request_count", "error_count", "avg_latency_ms",
                                           "p50_ms",        "p95_ms",      "p99_ms",
                                           "in_flight",     "traffic_weight"};
        for (int i = 0; i < 8; i++)
            ctl_num(s, keys[i], n[i], sizeof n[i]);
        const char *row[] = {ctl_str(s, "model_name"), ctl_str(s, "version"), n[0], n[1], n[2],
                             n[3], n[4], n[5], n[6], n[7], ctl_str(s, "status")};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static int ctl_stats(const ctl_opts *o, int argc, char **argv)
{
    if (argc > 1)
        return ctl_usage_error("stats takes at most a model name", NULL);
    return ctl_call(o, "GET", "/models/stats", NULL, ctl_show_stats, argc ? argv[0] : NULL);
}

static void ctl_show_events(const cJSON *reply, void *ud)
{
    (void)ud;
    static const char *const head[] = {"ID", "AT", "KIND", "MODEL", "VERSION", "DETAIL"};
    ctl_table *t = ctl_table_new(6, head);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(reply, "events"))
    {
        char id[32];
        ctl_num(e, "id", id, sizeof id);
        char *detail = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(e, "detail"));
        const char *row[] = {id,
                             ctl_str(e, "at"),
                             ctl_str(e, "kind"),
                             ctl_str(e, "model_name"),
                             ctl_str(e, "version"),
                             detail ? detail : ""};
        ctl_table_add(t, row);
        free(detail);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static int ctl_events(const ctl_opts *o, int argc, char **argv)
{
    char path[512] = "/deployments/events";
    size_t used = strlen(path);
    for (int i = 0; i < argc; i++) {
        bool model = strcmp(argv[i], "--model") == 0, limit = strcmp(argv[i], "--limit") == 0;
        if ((!model && !limit) || i + 1 >= argc)
            return ctl_usage_error("events: unexpected argument '%s'", argv[i]);
        char esc[CTL_SEG];
        ctl_escape(argv[++i], esc, sizeof esc);
        used += (size_t)snprintf(path + used, sizeof path - used, "%s%s=%s",
                                 used == strlen("/deployments/events") ? "?" : "&",
                                 model ? "model" : "limit", esc);
    }
    return ctl_call(o, "GET", path, NULL, ctl_show_events, NULL);
}

/* ---- register, upload ---------------------------------------------------------------------- */

static int ctl_register(const ctl_opts *o, int argc, char **argv)
{
    const char *config = NULL;
    if (argc == 5 && strcmp(argv[3], "--config") == 0)
        config = argv[4];
    else if (argc != 3 || strncmp(argv[2], "--", 2) == 0)
        return ctl_usage_error("usage: register MODEL VERSION PLUGIN [--config JSON]", NULL);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "name", argv[0]);
    cJSON_AddStringToObject(body, "version", argv[1]);
    cJSON_AddStringToObject(body, "plugin", argv[2]);
    if (config != NULL) {
        cJSON *c = cJSON_Parse(config);
        if (!cJSON_IsObject(c)) {
            cJSON_Delete(c);
            cJSON_Delete(body);
            return ctl_usage_error("--config must be a JSON object", NULL);
        }
        cJSON_AddItemToObject(body, "config", c);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char msg[256];
    snprintf(msg, sizeof msg, "registered %s version %s", argv[0], argv[1]);
    int code = ctl_call(o, "POST", "/models", text, ctl_show_message, msg);
    free(text);
    return code;
}

/* Whole file into memory (caller frees). NULL with errno set. */
static char *ctl_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *data = NULL;
    size_t cap = 0, n = 0;
    while (true) {
        if (n == cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *d = realloc(data, cap);
            if (d == NULL) {
                free(data);
                fclose(f);
                errno = ENOMEM;
                return NULL;
            }
            data = d;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(data);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return data;
}

static int ctl_upload(const ctl_opts *o, int argc, char **argv)
{
    if (argc != 3)
        return ctl_usage_error("usage: upload MODEL VERSION FILE", NULL);
    size_t len = 0;
    char *data = ctl_read_file(argv[2], &len);
    if (data == NULL) {
        fprintf(stderr, "error: cannot read %s: %s\n", argv[2], strerror(errno));
        return CTL_EXIT_USAGE;
    }
    size_t fl = strlen(argv[2]);
    bool tar = fl > 4 && strcmp(argv[2] + fl - 4, ".tar") == 0;
    char m[CTL_SEG], v[CTL_SEG], path[2 * CTL_SEG + 32];
    ctl_escape(argv[0], m, sizeof m);
    ctl_escape(argv[1], v, sizeof v);
    snprintf(path, sizeof path, "/models/%s/versions/%s", m, v);
    ctl_reply r;
    ctl_http(o, "PUT", path, tar ? "application/x-tar" : "application/octet-stream", data, len,
             &r);
    free(data);
    int code = ctl_exit_for(r.status);
    if (code != CTL_EXIT_OK)
        code = ctl_fail(&r);
    else if (o->json)
        printf("%s\n", r.body);
    else
        printf("uploaded %s version %s (%zu bytes)\n", argv[0], argv[1], len);
    ctl_reply_free(&r);
    return code;
}

/* ---- deploy, undeploy --------------------------------------------------------------------- */

static int ctl_deploy(const ctl_opts *o, int argc, char **argv)
{
    if (argc < 2)
        return ctl_usage_error("usage: deploy MODEL VERSION [--endpoint NAME] [--options JSON]",
                               NULL);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model_name", argv[0]);
    cJSON_AddStringToObject(body, "version", argv[1]);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--endpoint") == 0 && i + 1 < argc) {
            cJSON_AddStringToObject(body, "endpoint_name", argv[++i]);
        } else if (strcmp(argv[i], "--options") == 0 && i + 1 < argc) {
            cJSON *opt = cJSON_Parse(argv[++i]);
            if (!cJSON_IsObject(opt)) {
                cJSON_Delete(opt);
                cJSON_Delete(body);
                return ctl_usage_error("--options must be a JSON object", NULL);
            }
            while (opt->child != NULL) {
                cJSON *f = cJSON_DetachItemViaPointer(opt, opt->child);
                cJSON_DeleteItemFromObjectCaseSensitive(body, f->string);
                cJSON_AddItemToObject(body, f->string, f);
            }
            cJSON_Delete(opt);
        } else {
            cJSON_Delete(body);
            return ctl_usage_error("deploy: unexpected argument '%s'", argv[i]);
        }
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    char msg[256];
    snprintf(msg, sizeof msg, "deployed %s version %s", argv[0], argv[1]);
    int code = ctl_call(o, "POST", "/deployments/deploy", text, ctl_show_message, msg);
    free(text);
    return code;
}

static int ctl_undeploy(const ctl_opts *o, int argc, char **argv)
{
    cJSON *body = cJSON_CreateObject();
    char msg[256];
    if (argc == 2 && strcmp(argv[0], "--endpoint") == 0) {
        cJSON_AddStringToObject(body, "endpoint_name", argv[1]);
        snprintf(msg, sizeof msg, "undeployed endpoint %s", argv[1]);
    } else if (argc == 2) {
        cJSON_AddStringToObject(body, "model_name", argv[0]);
        cJSON_AddStringToObject(body, "version", argv[1]);
        snprintf(msg, sizeof msg, "undeployed %s version %s", argv[0], argv[1]);
    } else {
        cJSON_Delete(body);
        return ctl_usage_error("usage: undeploy MODEL VERSION | undeploy --endpoint NAME", NULL);
    }
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    int code = ctl_call(o, "POST", "/deployments/undeploy", text, ctl_show_message, msg);
    free(text);
    return code;
}

/* ---- traffic, promote, rollback ----------------------------------------------------------- */

static void ctl_show_traffic(const cJSON *reply, void *ud)
{
    (void)ud;
    static const char *const head[] = {"VERSION", "WEIGHT"};
    ctl_table *t = ctl_table_new(2, head);
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(reply, "weights");
    if (weights == NULL)
        weights = cJSON_GetObjectItemCaseSensitive(reply, "traffic");
    const cJSON *w;
    cJSON_ArrayForEach(w, weights)
    {
        char n[32];
        snprintf(n, sizeof n, "%.6g", cJSON_IsNumber(w) ? w->valuedouble : 0.0);
        const char *row[] = {w->string ? w->string : "", n};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
    const cJSON *shadow = cJSON_GetObjectItemCaseSensitive(reply, "shadow");
    if (cJSON_IsObject(shadow)) {
        char n[32];
        ctl_num(shadow, "percent", n, sizeof n);
        printf("shadow: version %s, %s%%\n", ctl_str(shadow, "version"), n);
    }
}

/* VERSION=WEIGHT pairs and --shadow V:P into a traffic body; NULL after a usage error. */
static cJSON *ctl_traffic_body(int argc, char **argv)
{
    cJSON *weights = cJSON_CreateObject(), *shadow = NULL;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (strcmp(argv[i], "--shadow") == 0 && i + 1 < argc && shadow == NULL) {
            char *colon = strchr(argv[++i], ':');
            char *end = NULL;
            double pct = colon ? strtod(colon + 1, &end) : 0;
            if (colon == NULL || colon == argv[i] || end == colon + 1 || *end != '\0')
                goto bad;
            char version[256];
            snprintf(version, sizeof version, "%.*s", (int)(colon - argv[i]), argv[i]);
            shadow = cJSON_CreateObject();
            cJSON_AddStringToObject(shadow, "version", version);
            cJSON_AddNumberToObject(shadow, "percent", pct);
        } else if (eq != NULL && eq != argv[i]) {
            char *end;
            double w = strtod(eq + 1, &end);
            if (end == eq + 1 || *end != '\0')
                goto bad;
            *eq = '\0';
            cJSON_AddNumberToObject(weights, argv[i], w);
            *eq = '=';
        } else {
            goto bad;
        }
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddItemToObject(body, "weights", weights);
    if (shadow != NULL)
        cJSON_AddItemToObject(body, "shadow", shadow);
    return body;
bad:
    cJSON_Delete(weights);
    cJSON_Delete(shadow);
    return NULL;
}

static int ctl_traffic(const ctl_opts *o, int argc, char **argv)
{
    if (argc < 1)
        return ctl_usage_error("usage: traffic MODEL [VERSION=WEIGHT ...] [--shadow V:PCT]",
                               NULL);
    char m[CTL_SEG], path[CTL_SEG + 32];
    ctl_escape(argv[0], m, sizeof m);
    snprintf(path, sizeof path, "/deployments/%s/traffic", m);
    if (argc == 1)
        return ctl_call(o, "GET", path, NULL, ctl_show_traffic, NULL);
    cJSON *body = ctl_traffic_body(argc - 1, argv + 1);
    if (body == NULL)
        return ctl_usage_error("traffic: arguments are VERSION=WEIGHT and --shadow VERSION:PCT",
                               NULL);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    int code = ctl_call(o, "PUT", path, text, ctl_show_traffic, NULL);
    free(text);
    return code;
}

static int ctl_promote(const ctl_opts *o, int argc, char **argv)
{
    if (argc != 2)
        return ctl_usage_error("usage: promote MODEL VERSION", NULL);
    char m[CTL_SEG], path[CTL_SEG + 32], msg[256];
    ctl_escape(argv[0], m, sizeof m);
    snprintf(path, sizeof path, "/deployments/%s/promote", m);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "version", argv[1]);
    char *text = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    snprintf(msg, sizeof msg, "promoted %s version %s", argv[0], argv[1]);
    int code = ctl_call(o, "POST", path, text, ctl_show_message, msg);
    free(text);
    return code;
}

static int ctl_rollback(const ctl_opts *o, int argc, char **argv)
{
    if (argc != 1)
        return ctl_usage_error("usage: rollback MODEL", NULL);
    char m[CTL_SEG], path[CTL_SEG + 32];
    ctl_escape(argv[0], m, sizeof m);
    snprintf(path, sizeof path, "/deployments/%s/rollback", m);
    return ctl_call(o, "POST", path, "{}", ctl_show_traffic, NULL);
}

/* ---- tokens (/tokens, admin only) ----------------------------------------------------- */

static void ctl_show_tokens(const cJSON *reply, void *ud)
{
    (void)ud;
    static const char *const head[] = {"ID", "NAME", "ROLE", "CREATED_AT", "EXPIRES_AT",
                                       "LAST_USED_AT", "REVOKED_AT"};
    ctl_table *t = ctl_table_new(7, head);
    const cJSON *k;
    cJSON_ArrayForEach(k, cJSON_GetObjectItemCaseSensitive(reply, "tokens"))
    {
        const char *row[] = {ctl_str(k, "id"),         ctl_str(k, "name"),
                             ctl_str(k, "role"),       ctl_str(k, "created_at"),
                             ctl_str(k, "expires_at"), ctl_str(k, "last_used_at"),
                             ctl_str(k, "revoked_at")};
        ctl_table_add(t, row);
    }
    ctl_table_print(t, stdout);
    ctl_table_free(t);
}

static void ctl_show_new_token(const cJSON *reply, void *ud)
{
    (void)ud;
    printf("created token %s (role %s)\nsecret (shown once): %s\n", ctl_str(reply, "name"),
           ctl_str(reply, "role"), ctl_str(reply, "token"));
}

static int ctl_tokens(const ctl_opts *o, int argc, char **argv)
{
    if (argc == 1 && strcmp(argv[0], "list") == 0)
        return ctl_call(o, "GET", "/tokens", NULL, ctl_show_tokens, NULL);
    bool expires = argc == 5 && strcmp(argv[3], "--expires") == 0;
    if ((argc == 3 || expires) && strcmp(argv[0], "create") == 0) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "name", argv[1]);
        cJSON_AddStringToObject(body, "role", argv[2]);
        if (expires)
            cJSON_AddStringToObject(body, "expires", argv[4]);
        char *text = cJSON_PrintUnformatted(body);
        cJSON_Delete(body);
        int code = ctl_call(o, "POST", "/tokens", text, ctl_show_new_token, NULL);
        free(text);
        return code;
    }
    if (argc == 2 && strcmp(argv[0], "revoke") == 0) {
        char n[CTL_SEG], path[CTL_SEG + 32], msg[256];
        ctl_escape(argv[1], n, sizeof n);
        snprintf(path, sizeof path, "/tokens/%s", n);
        snprintf(msg, sizeof msg, "revoked token %s", argv[1]);
        return ctl_call(o, "DELETE", path, NULL, ctl_show_message, msg);
    }
    return ctl_usage_error("usage: tokens list | tokens create NAME ROLE [--expires D] | "
                           "tokens revoke NAME",
                           NULL);
}

/* ---- entry --------------------------------------------------------------------------------- */

static const ctl_cmd ctl_cmds[] = {
    {"status", ctl_status},     {"models", ctl_models},     {"register", ctl_register},
    {"upload", ctl_upload},     {"deploy", ctl_deploy},     {"undeploy", ctl_undeploy},
    {"traffic", ctl_traffic},   {"promote", ctl_promote},   {"rollback", ctl_rollback},
    {"stats", ctl_stats},       {"events", ctl_events},     {"tokens", ctl_tokens},
};

/* Take the global options out of argv (anywhere on the line); the rest stays in order.
 * Returns the remaining count, or -1 after a usage error. */
static int ctl_parse_globals(ctl_opts *o, int argc, char **argv, char **rest)
{
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool takes = strcmp(a, "--server") == 0 || strcmp(a, "--timeout") == 0 ||
                     strcmp(a, "--cacert") == 0;
        if (takes && i + 1 >= argc) {
            ctl_usage_error("%s needs a value", a);
            return -1;
        }
        if (strcmp(a, "--server") == 0) {
            o->server = argv[++i];
        } else if (strcmp(a, "--cacert") == 0) {
            o->cacert = argv[++i];
        } else if (strcmp(a, "--timeout") == 0) {
            char *end;
            long t = strtol(argv[++i], &end, 10);
            if (*end != '\0' || t <= 0 || t > 86400) {
                ctl_usage_error("--timeout must be 1..86400 seconds", NULL);
                return -1;
            }
            o->timeout_s = t;
        } else if (strcmp(a, "--json") == 0) {
            o->json = true;
        } else if (strcmp(a, "--insecure") == 0) {
            o->insecure = true;
        } else {
            rest[n++] = argv[i];
        }
    }
    return n;
}

int ctl_main(int argc, char **argv)
{
    const char *env_server = getenv("DYNSERVE_SERVER");
    ctl_opts o = {.server = env_server && env_server[0] ? env_server : CTL_DEFAULT_SERVER,
                  .token = getenv("DYNSERVE_TOKEN"),
                  .timeout_s = 60};
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (rest == NULL)
        return CTL_EXIT_ERROR;
    int n = ctl_parse_globals(&o, argc, argv, rest);
    int code = CTL_EXIT_USAGE;
    if (n == 0 || (n > 0 && (strcmp(rest[0], "--help") == 0 || strcmp(rest[0], "help") == 0))) {
        fputs(ctl_usage, n == 0 ? stderr : stdout);
        code = n == 0 ? CTL_EXIT_USAGE : CTL_EXIT_OK;
    } else if (n > 0) {
        /* "http://host:port/" -> "http://host:port" so paths join cleanly */
        char server[2048];
        snprintf(server, sizeof server, "%s", o.server);
        size_t sl = strlen(server);
        while (sl > 0 && server[sl - 1] == '/')
            server[--sl] = '\0';
        o.server = server;
        const ctl_cmd *cmd = NULL;
        for (size_t i = 0; i < sizeof ctl_cmds / sizeof ctl_cmds[0] && !cmd; i++)
            if (strcmp(ctl_cmds[i].name, rest[0]) == 0)
                cmd = &ctl_cmds[i];
        if (cmd == NULL) {
            code = ctl_usage_error("unknown command '%s'", rest[0]);
        } else {
            curl_global_init(CURL_GLOBAL_DEFAULT);
            code = cmd->run(&o, n - 1, rest + 1);
            curl_global_cleanup();
        }
    }
    free(rest);
    return code;
}
