/*
 * deploy_options: one table row per option (see deploy_options.h). Integers are whole JSON
 * numbers within [min, max]; "isolation" is one of its names.
 */
#include "deploy_options.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

typedef enum opt_kind { OPT_INT, OPT_ISOLATION, OPT_RATE, OPT_SIZES } opt_kind;

typedef struct opt_field {
    const char *name;
    opt_kind kind;
    size_t offset;
    int64_t min, max;
} opt_field;

#define OPT_INT_FIELD(n, lo, hi)                                                                   \
    {                                                                                              \
#n, OPT_INT, offsetof(ds_deploy_options, n), lo, hi                                        \
    }

static const opt_field opt_fields[] = {
    {"isolation", OPT_ISOLATION, offsetof(ds_deploy_options, isolation), 0, 0},
    {"rate_limit", OPT_RATE, offsetof(ds_deploy_options, rate_limit), 0, 0},
    OPT_INT_FIELD(timeout_ms, 1, 3600000),
    OPT_INT_FIELD(max_in_flight, 1, 100000),
    OPT_INT_FIELD(max_queue, 0, 1000000),
    OPT_INT_FIELD(memory_limit_mb, 16, 1048576),
    OPT_INT_FIELD(max_open_files, 16, 1048576),
    OPT_INT_FIELD(cpu_limit_ms, 1, 3600000),
    OPT_INT_FIELD(workers, 1, 64),
    OPT_INT_FIELD(instance_count, 1, 64), /* == POOL_MAX_INSTANCES (plugin/pool.h) */
    OPT_INT_FIELD(max_batch_size, 1, DS_BATCH_SIZE_MAX),
    OPT_INT_FIELD(max_queue_delay_us, 0, 10000000),
    {"preferred_batch_sizes", OPT_SIZES, offsetof(ds_deploy_options, preferred_batch_sizes), 1,
     DS_BATCH_SIZE_MAX},
};
#define OPT_COUNT (sizeof opt_fields / sizeof opt_fields[0])

static const char *const isolation_names[] = {"default", "inproc", "process"};

const char *deploy_isolation_name(ds_isolation i)
{
    return (unsigned)i < 3 ? isolation_names[i] : "default";
}

const char *deploy_options_name(size_t i)
{
    return i < OPT_COUNT ? opt_fields[i].name : NULL;
}

bool deploy_options_known(const char *key)
{
    for (size_t i = 0; i < OPT_COUNT; i++)
        if (strcmp(opt_fields[i].name, key) == 0)
            return true;
    return false;
}

int deploy_rate_limit_parse(const cJSON *v, rl_limit *out, char *err, size_t errlen)
{
    *out = (rl_limit){0};
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    const cJSON *rps = cJSON_GetObjectItemCaseSensitive(v, "rps");
    const cJSON *burst = cJSON_GetObjectItemCaseSensitive(v, "burst");
    int fields = 0;
    for (const cJSON *f = cJSON_IsObject(v) ? v->child : NULL; f; f = f->next)
        fields++;
    bool ok = cJSON_IsObject(v) && cJSON_IsNumber(rps) && rps->valuedouble > 0 &&
              rps->valuedouble <= 1e9 && fields == 1 + (burst != NULL) &&
              (burst == NULL ||
               (cJSON_IsNumber(burst) && burst->valuedouble >= 1 && burst->valuedouble <= 1e9));
    if (!ok) {
        snprintf(err, errlen, "\"rate_limit\" must be null or {\"rps\": > 0, \"burst\": >= 1}");
        return -1;
    }
    out->rps = rps->valuedouble;
    out->burst = burst ? burst->valuedouble : 0;
    return 0;
}

/* "preferred_batch_sizes": 1..DS_PREFERRED_BATCH_MAX whole numbers, strictly ascending. */
static int opt_read_sizes(const opt_field *f, const cJSON *v, ds_deploy_options *o, char *err,
                          size_t errlen)
{
    int n = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    bool ok = n >= 1 && n <= DS_PREFERRED_BATCH_MAX;
    int64_t prev = 0;
    for (int i = 0; ok && i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(v, i);
        double d = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        ok = d >= (double)f->min && d <= (double)f->max && floor(d) == d && (int64_t)d > prev;
        if (ok)
            o->preferred_batch_sizes[i] = prev = (int64_t)d;
    }
    if (!ok) {
        snprintf(err, errlen,
                 "\"%s\" must be an array of 1..%d ascending whole numbers in [%lld, %lld]",
                 f->name, DS_PREFERRED_BATCH_MAX, (long long)f->min, (long long)f->max);
        return -1;
    }
    o->preferred_batch_count = n;
    return 0;
}

static int opt_read(const opt_field *f, const cJSON *v, ds_deploy_options *o, char *err,
                    size_t errlen)
{
    char *at = (char *)o + f->offset;
    if (f->kind == OPT_SIZES)
        return opt_read_sizes(f, v, o, err, errlen);
    if (f->kind == OPT_RATE)
        return deploy_rate_limit_parse(v, (rl_limit *)(void *)at, err, errlen);
    if (f->kind == OPT_ISOLATION) {
        ds_isolation iso = DS_ISOLATION_DEFAULT;
        if (cJSON_IsString(v) && strcmp(v->valuestring, "inproc") == 0)
            iso = DS_ISOLATION_INPROC;
        else if (cJSON_IsString(v) && strcmp(v->valuestring, "process") == 0)
            iso = DS_ISOLATION_PROCESS;
        else {
            snprintf(err, errlen, "\"isolation\" must be \"inproc\" or \"process\"");
            return -1;
        }
        memcpy(at, &iso, sizeof iso);
        return 0;
    }
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)f->min && d <= (double)f->max) || floor(d) != d) {
        snprintf(err, errlen, "\"%s\" must be a whole number in [%lld, %lld]", f->name,
                 (long long)f->min, (long long)f->max);
        return -1;
    }
    int64_t n = (int64_t)d;
    memcpy(at, &n, sizeof n);
    return 0;
}

int deploy_options_parse(const cJSON *obj, ds_deploy_options *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (obj == NULL)
        return 0;
    if (!cJSON_IsObject(obj)) {
        snprintf(err, errlen, "deployment options must be a JSON object");
        return -1;
    }
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, opt_fields[i].name);
        if (v != NULL && !cJSON_IsNull(v) && opt_read(&opt_fields[i], v, out, err, errlen) != 0)
            return -1;
    }
    return deploy_options_check_batching(out, err, errlen);
}

int deploy_options_check_batching(const ds_deploy_options *o, char *err, size_t errlen)
{
    if (o->max_batch_size == 0 && (o->max_queue_delay_us != 0 || o->preferred_batch_count != 0)) {
        snprintf(err, errlen,
                 "\"max_queue_delay_us\" and \"preferred_batch_sizes\" need \"max_batch_size\"");
        return -1;
    }
    for (int64_t i = 0; i < o->preferred_batch_count; i++)
        if (o->preferred_batch_sizes[i] > o->max_batch_size) {
            snprintf(err, errlen, "preferred batch size %lld is above max_batch_size %lld",
                     (long long)o->preferred_batch_sizes[i], (long long)o->max_batch_size);
            return -1;
        }
    if (o->max_batch_size > 0 && o->isolation == DS_ISOLATION_PROCESS) {
        snprintf(err, errlen,
                 "dynamic batching (max_batch_size) runs in process only, not with "
                 "\"isolation\": \"process\"");
        return -1;
    }
    return 0;
}

int deploy_options_parse_text(const char *json, ds_deploy_options *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (json == NULL || json[0] == '\0')
        return 0;
    cJSON *obj = cJSON_Parse(json);
    if (obj == NULL) {
        snprintf(err, errlen, "stored deployment options are not JSON");
        return -1;
    }
    int rc = deploy_options_parse(obj, out, err, errlen);
    cJSON_Delete(obj);
    return rc;
}

void deploy_options_to_json(const ds_deploy_options *o, ds_buf *out)
{
    buf_append_char(out, '{');
    const char *sep = "";
    for (size_t i = 0; i < OPT_COUNT; i++) {
        const opt_field *f = &opt_fields[i];
        const char *at = (const char *)o + f->offset;
        if (f->kind == OPT_SIZES) {
            if (o->preferred_batch_count == 0)
                continue;
            buf_printf(out, "%s\"%s\":[", sep, f->name);
            for (int64_t k = 0; k < o->preferred_batch_count; k++)
                buf_printf(out, "%s%lld", k ? "," : "", (long long)o->preferred_batch_sizes[k]);
            buf_append_char(out, ']');
        } else if (f->kind == OPT_RATE) {
            const rl_limit *l = (const rl_limit *)(const void *)at;
            if (!rl_active(*l))
                continue;
            buf_printf(out, "%s\"%s\":{\"rps\":%.17g,\"burst\":%.17g}", sep, f->name, l->rps,
                       rl_burst(*l));
        } else if (f->kind == OPT_ISOLATION) {
            ds_isolation iso;
            memcpy(&iso, at, sizeof iso);
            if (iso != DS_ISOLATION_DEFAULT)
                buf_printf(out, "%s\"%s\":\"%s\"", sep, f->name, deploy_isolation_name(iso));
            else
                continue;
        } else {
            int64_t n;
            memcpy(&n, at, sizeof n);
            if (n == 0)
                continue;
            buf_printf(out, "%s\"%s\":%lld", sep, f->name, (long long)n);
        }
        sep = ",";
    }
    buf_append_char(out, '}');
}
