/*
 * faults: quadratic_predictor v1 that fails in one chosen way, for the isolation tests (each
 * fault is deployed isolated and the server must stay up). Config (all optional):
 *   "create":  "segv" | "exit" | "hang"                  fault inside create()
 *   "execute": "segv" | "exit" | "hang" | "error" | "sleep" | "leak"
 *              fault inside execute(): crash, exit(7), never return, return DS_ERR_INTERNAL,
 *              sleep sleep_ms then answer, leak 256 KiB per call (touched) then answer
 *   "sleep_ms": 0..600000 (default 5000)
 *   "only_negative": 1     apply the execute fault only when the first input value is < 0, so a
 *                          test can crash the worker on demand and check that it recovers
 * When the environment has DS_FX_MARKER=<path>, loading the plugin (a constructor, before any
 * entry call) writes "<pid>\n" to that path: a test reads it to see which process ran the code.
 * Config strings are matched as the server stores them (compact JSON, no spaces).
 */
#include <signal.h>
#include <unistd.h>

#include "fixture_util.h"

/* Where leaked blocks escape to, so the compiler cannot drop the malloc. */
static void *volatile fx_leak_sink;

typedef struct faults {
    char execute[16];
    long sleep_ms;
    int only_negative;
} faults;

__attribute__((constructor)) static void faults_marker(void)
{
    const char *path = getenv("DS_FX_MARKER");
    if (path == NULL || path[0] == '\0')
        return;
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
    }
}

/* true when the config holds "key":"value". */
static int fx_config_is(const char *json, const char *key, const char *value)
{
    char pat[96];
    snprintf(pat, sizeof(pat), "\"%s\":\"%s\"", key, value);
    return json != NULL && strstr(json, pat) != NULL;
}

static void fx_crash(void)
{
    raise(SIGSEGV);
    volatile int *volatile p = NULL;
    *p = 1;
}

static void fx_hang(void)
{
    for (;;)
        pause();
}

static ds_status faults_create(const char *config_json, void **instance, ds_error *err)
{
    if (fx_config_is(config_json, "create", "segv"))
        fx_crash();
    if (fx_config_is(config_json, "create", "exit"))
        exit(3);
    if (fx_config_is(config_json, "create", "hang"))
        fx_hang();
    double ms = 5000, neg = 0;
    if (fx_config_range(config_json, "sleep_ms", 0, 600000, &ms, err) != DS_OK ||
        fx_config_range(config_json, "only_negative", 0, 1, &neg, err) != DS_OK)
        return err->code;
    faults *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    static const char *const kinds[] = {"segv", "exit", "hang", "error", "sleep", "leak"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (fx_config_is(config_json, "execute", kinds[i]))
            snprintf(f->execute, sizeof(f->execute), "%s", kinds[i]);
    f->sleep_ms = (long)ms;
    f->only_negative = neg != 0;
    *instance = f;
    return DS_OK;
}

static int fx_first_negative(const ds_infer_request *req)
{
    if (req->input_count == 0 || req->inputs[0].datatype != DS_TYPE_FP32 ||
        req->inputs[0].byte_size < sizeof(float))
        return 0;
    float x;
    memcpy(&x, req->inputs[0].data, sizeof(x));
    return x < 0;
}

static ds_status faults_execute(void *instance, const ds_infer_request *req,
                                ds_infer_response *resp, ds_error *err)
{
    const faults *f = instance;
    if (f->execute[0] != '\0' && (!f->only_negative || fx_first_negative(req))) {
        if (strcmp(f->execute, "segv") == 0)
            fx_crash();
        if (strcmp(f->execute, "exit") == 0)
            exit(7);
        if (strcmp(f->execute, "hang") == 0)
            fx_hang();
        if (strcmp(f->execute, "error") == 0)
            return ds_error_set(err, DS_ERR_INTERNAL, "faults: failing on purpose");
        if (strcmp(f->execute, "sleep") == 0)
            fx_sleep_ms(f->sleep_ms);
        if (strcmp(f->execute, "leak") == 0) {
            char *lost = malloc(256 * 1024);
            if (lost != NULL)
                memset(lost, 1, 256 * 1024); /* touched, so it counts in RSS */
            fx_leak_sink = lost;
        }
    }
    return fx_quadratic_execute(req, resp, err);
}

static void faults_destroy(void *instance)
{
    free(instance);
}

static const ds_plugin_api api = {
    .struct_size = sizeof(ds_plugin_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .flags = DS_PLUGIN_THREAD_SAFE,
    .name = "fixture faults",
    .model = &fx_model,
    .create = faults_create,
    .execute = faults_execute,
    .destroy = faults_destroy,
};

const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host)
{
    return ex_accept_host(host) ? &api : NULL;
}
