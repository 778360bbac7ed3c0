/*
 * fixture_util.h: what the test fixture plugins share. Most fixtures are quadratic_predictor v1
 * broken in exactly one way, so its description and math live here once; the runtime fixtures
 * (flaky, slow) also need a tiny config reader, because plugins link no JSON library.
 */
#ifndef DS_FIXTURE_UTIL_H
#define DS_FIXTURE_UTIL_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dynserve/plugin.h>

#include "example_util.h"

/* quadratic_predictor v1's description: `input` FP32 [-1,1] -> `prediction` FP32 [-1,1]. */
static const ds_io_desc fx_inputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};
static const ds_io_desc fx_outputs[] = {
    {.name = "prediction", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};
static const ds_model_desc fx_model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "dynserve_c",
    .input_count = 1,
    .inputs = fx_inputs,
    .output_count = 1,
    .outputs = fx_outputs,
};

static inline double fx_quadratic(double x)
{
    return 2.0 * x * x + 3.0 * x + 1.0;
}

/* quadratic_predictor v1's execute: y = 2x² + 3x + 1. */
static inline ds_status fx_quadratic_execute(const ds_infer_request *req, ds_infer_response *resp,
                                             ds_error *err)
{
    return ex_map_fp32(req, resp, "input", "prediction", fx_quadratic, err);
}

/* Read the number stored under "key" in a flat JSON object. 1 when found (*out set), 0 when the
 * key is absent, -1 when it is present but not followed by ':' and a finite number. Good enough
 * for fixture configs such as {"fail_rate":0.2,"sleep_ms":0}; not a JSON parser. */
static inline int fx_config_number(const char *json, const char *key, double *out)
{
    char quoted[64];
    int n = snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    if (json == NULL || n < 0 || (size_t)n >= sizeof(quoted))
        return 0;
    const char *p = strstr(json, quoted);
    if (p == NULL)
        return 0;
    p += n;
    while (isspace((unsigned char)*p))
        p++;
    if (*p++ != ':')
        return -1;
    char *end;
    double v = strtod(p, &end);
    if (end == p || !isfinite(v))
        return -1;
    *out = v;
    return 1;
}

/* Like fx_config_number, with a default and a range; writes a create() error when out of range. */
static inline ds_status fx_config_range(const char *json, const char *key, double lo, double hi,
                                        double *out, ds_error *err)
{
    int found = fx_config_number(json, key, out);
    if (found < 0 || (found > 0 && (*out < lo || *out > hi)))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                            "config \"%s\" must be a number in [%g, %g]", key, lo, hi);
    return DS_OK;
}

static inline void fx_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

#endif /* DS_FIXTURE_UTIL_H */
