/*
 * Unit tests for the Prometheus renderer (src/manage/metrics.c): every family once with HELP and
 * TYPE, label escaping, cumulative and monotone histogram buckets whose +Inf and _count equal the
 * requests, per-code counters, deployment counts by status, traffic weights only where a split
 * exists, process metrics, the writer API giving the same text, and — when promtool is
 * installed — `promtool check metrics` accepting the page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

#define PROMTOOL "/usr/bin/promtool"

/* ---- helpers ------------------------------------------------------------------------------ */

static size_t count_occurrences(const char *text, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(text, needle); p; p = strstr(p + len, needle))
        n++;
    return n;
}

/* The value of the sample line that starts with `series` followed by a space; -1 when absent. */
static double sample_value(const char *text, const char *series)
{
    size_t len = strlen(series);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (strncmp(line, series, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
    return -1;
}

static void assert_family_once(const char *text, const char *name, const char *type)
{
    char help[160], typeline[160];
    snprintf(help, sizeof help, "# HELP %s ", name);
    snprintf(typeline, sizeof typeline, "# TYPE %s %s\n", name, type);
    if (count_occurrences(text, help) != 1 || count_occurrences(text, typeline) != 1)
        fail_msg("family %s (%s): HELP x%zu, TYPE x%zu", name, type, count_occurrences(text, help),
                 count_occurrences(text, typeline));
}

typedef struct fixture {
    ds_stats *a, *b;
    metrics_deployment d[3];
    char *text;
} fixture;

/* Two live versions of one model with a 90/10 split (the canary's name needs escaping) and a
 * failed deployment without stats. */
static int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->a = stats_new();
    f->b = stats_new();
    stats_set_base(f->a, 5000, 50, 50, 1e6); /* restored totals: not in Prometheus counters */
    static const uint64_t lat_ns[] = {300000,   800000,        2000000,       7000000,
                                      40000000, 3000000000ull, 20000000000ull};
    for (int i = 0; i < 70; i++) {
        stats_begin(f->a);
        stats_end(f->a, lat_ns[i % 7], i % 10 == 0 ? 503 : (i % 10 == 1 ? 404 : 200));
    }
    stats_begin(f->a); /* one request still in flight */
    for (int i = 0; i < 5; i++) {
        stats_begin(f->b);
        stats_end(f->b, 1000000, 200);
    }
    f->d[0] =
        (metrics_deployment){"quadratic_predictor", "1", "active", f->a, 90, NULL, false, NULL};
    f->d[1] =
        (metrics_deployment){"we\"ird\\model\nname", "2", "active", f->b, 10, NULL, false, NULL};
    f->d[2] = (metrics_deployment){"identity", "1", "failed", NULL, -1, NULL, false, NULL};
    ds_buf out = DS_BUF_INIT;
    metrics_render(&out, f->d, 3);
    assert_false(out.failed);
    f->text = buf_detach(&out);
    *state = f;
    return f->text ? 0 : -1;
}

static int fixture_teardown(void **state)
{
    fixture *f = *state;
    stats_free(f->a);
    stats_free(f->b);
    free(f->text);
    free(f);
    return 0;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_every_family_has_help_and_type_once(void **state)
{
    const char *t = ((fixture *)*state)->text;
    assert_family_once(t, "dynserve_inference_requests_total", "counter");
    assert_family_once(t, "dynserve_inference_duration_seconds", "histogram");
    assert_family_once(t, "dynserve_in_flight_requests", "gauge");
    assert_family_once(t, "dynserve_traffic_weight", "gauge");
    assert_family_once(t, "dynserve_deployments", "gauge");
    assert_family_once(t, "process_cpu_seconds_total", "counter");
    assert_family_once(t, "process_resident_memory_bytes", "gauge");
    assert_family_once(t, "process_virtual_memory_bytes", "gauge");
    assert_family_once(t, "process_open_fds", "gauge");
    assert_family_once(t, "process_max_fds", "gauge");
    assert_family_once(t, "process_start_time_seconds", "gauge");
    assert_family_once(t, "dynserve_sqlite_memory_bytes", "gauge");
#ifdef __GLIBC__
    assert_family_once(t, "dynserve_heap_inuse_bytes", "gauge");
    assert_family_once(t, "dynserve_heap_free_bytes", "gauge");
#endif
    assert_int_equal(t[strlen(t) - 1], '\n');
}

static void test_label_values_are_escaped(void **state)
{
    const char *t = ((fixture *)*state)->text;
    assert_non_null(strstr(t, "dynserve_in_flight_requests{model=\"we\\\"ird\\\\model\\nname\","
                              "version=\"2\"} 0\n"));
    assert_null(strstr(t, "model\nname")); /* no raw newline inside a label */
}

static void test_histogram_buckets_are_cumulative_and_match_requests(void **state)
{
    const char *t = ((fixture *)*state)->text;
    static const char *const le[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                     "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                     "1",      "2.5",   "5",      "10",    "+Inf"};
    /* 70 requests: 10 each at 0.3 ms, 0.8 ms, 2 ms, 7 ms, 40 ms, 3 s, 20 s. */
    static const double want[] = {10, 20, 30, 30, 40, 40, 50, 50, 50, 50, 50, 50, 60, 60, 70};
    double prev = 0;
    for (size_t i = 0; i < sizeof le / sizeof le[0]; i++) {
        char series[256];
        snprintf(series, sizeof series,
                 "dynserve_inference_duration_seconds_bucket{model=\"quadratic_predictor\","
                 "version=\"1\",le=\"%s\"}",
                 le[i]);
        double v = sample_value(t, series);
        assert_true(v >= prev);
        assert_true(v == want[i]);
        prev = v;
    }
    const char *lbl = "{model=\"quadratic_predictor\",version=\"1\"}";
    char name[256];
    snprintf(name, sizeof name, "dynserve_inference_duration_seconds_count%s", lbl);
    assert_true(sample_value(t, name) == 70);
    snprintf(name, sizeof name, "dynserve_inference_duration_seconds_sum%s", lbl);
    double sum = 10 * (0.0003 + 0.0008 + 0.002 + 0.007 + 0.04 + 3 + 20);
    assert_true(sample_value(t, name) > sum * 0.999999 && sample_value(t, name) < sum * 1.000001);
    snprintf(name, sizeof name, "dynserve_in_flight_requests%s", lbl);
    assert_true(sample_value(t, name) == 1);
}

static void test_request_counters_are_per_code_and_add_up(void **state)
{
    const char *t = ((fixture *)*state)->text;
    const char *p =
        "dynserve_inference_requests_total{model=\"quadratic_predictor\",version=\"1\",";
    char s[256];
    snprintf(s, sizeof s, "%scode=\"200\"}", p);
    assert_true(sample_value(t, s) == 56);
    snprintf(s, sizeof s, "%scode=\"404\"}", p);
    assert_true(sample_value(t, s) == 7);
    snprintf(s, sizeof s, "%scode=\"503\"}", p);
    assert_true(sample_value(t, s) == 7);
    snprintf(s, sizeof s, "%scode=\"500\"}", p);
    assert_true(sample_value(t, s) == -1);       /* zero counts are left out */
    snprintf(s, sizeof s, "%scode=\"4xx\"}", p); /* restored totals are not exported */
    assert_true(sample_value(t, s) == -1);
    assert_int_equal(count_occurrences(t, "dynserve_inference_requests_total{"), 4);
    assert_null(strstr(t, "model=\"identity\"")); /* failed: no per-deployment series */
}

static void test_deployments_and_weights(void **state)
{
    const char *t = ((fixture *)*state)->text;
    assert_true(sample_value(t, "dynserve_deployments{status=\"active\"}") == 2);
    assert_true(sample_value(t, "dynserve_deployments{status=\"failed\"}") == 1);
    assert_true(sample_value(t, "dynserve_traffic_weight{model=\"quadratic_predictor\","
                                "version=\"1\"}") == 90);
    assert_int_equal(count_occurrences(t, "dynserve_traffic_weight{"), 2);
}

static void test_process_metrics_are_plausible(void **state)
{
    const char *t = ((fixture *)*state)->text;
    assert_true(sample_value(t, "process_resident_memory_bytes") > 1024 * 1024 / 2);
    assert_true(sample_value(t, "process_virtual_memory_bytes") >=
                sample_value(t, "process_resident_memory_bytes"));
    assert_true(sample_value(t, "process_open_fds") >= 3);
    assert_true(sample_value(t, "process_max_fds") >= sample_value(t, "process_open_fds"));
    assert_true(sample_value(t, "dynserve_sqlite_memory_bytes") >= 0);
#ifdef __GLIBC__
    assert_true(sample_value(t, "dynserve_heap_inuse_bytes") >= 0); /* ~0 under ASan's allocator */
    assert_true(sample_value(t, "dynserve_heap_free_bytes") >= 0);
#endif
    assert_true(sample_value(t, "process_cpu_seconds_total") >= 0);
    double start = sample_value(t, "process_start_time_seconds");
    double now = (double)time(NULL);
    assert_true(start > now - 3600 && start <= now + 5);
}

static void test_empty_page_still_has_families(void **state)
{
    (void)state;
    ds_buf out = DS_BUF_INIT;
    metrics_render(&out, NULL, 0);
    char *t = buf_detach(&out);
    assert_non_null(t);
    assert_family_once(t, "dynserve_inference_requests_total", "counter");
    assert_family_once(t, "dynserve_inference_duration_seconds", "histogram");
    assert_true(sample_value(t, "dynserve_deployments{status=\"active\"}") == 0);
    assert_true(sample_value(t, "dynserve_deployments{status=\"failed\"}") == 0);
    free(t);
}

static void test_writer_gives_the_same_series_as_render(void **state)
{
    fixture *f = *state;
    metrics_writer w;
    metrics_writer_init(&w);
    for (size_t i = 0; i < 3; i++)
        metrics_writer_add(&w, &f->d[i]);
    metrics_deployment extra = {"x", "1", "draining", NULL, -1, NULL, false, NULL};
    metrics_writer_add(&w, &extra);
    ds_buf out = DS_BUF_INIT;
    metrics_writer_finish(&w, &out);
    char *t = buf_detach(&out);
    /* Same up to the process metrics (which move between calls). */
    const char *cut_a = strstr(f->text, "# HELP dynserve_deployments");
    const char *cut_b = strstr(t, "# HELP dynserve_deployments");
    assert_non_null(cut_a);
    assert_non_null(cut_b);
    assert_int_equal(cut_a - f->text, cut_b - t);
    assert_memory_equal(f->text, t, (size_t)(cut_a - f->text));
    assert_true(sample_value(t, "dynserve_deployments{status=\"draining\"}") == 1);
    free(t);
}

static void test_promtool_accepts_the_page(void **state)
{
    if (access(PROMTOOL, X_OK) != 0)
        skip();
    const char *t = ((fixture *)*state)->text;
    char path[] = "/tmp/dynserve_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(t, fp) >= 0, 1);
    fclose(fp);
    char cmd[256];
    snprintf(cmd, sizeof cmd, PROMTOOL " check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_true(WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_family_has_help_and_type_once, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_label_values_are_escaped, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_histogram_buckets_are_cumulative_and_match_requests,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_request_counters_are_per_code_and_add_up,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_deployments_and_weights, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_process_metrics_are_plausible, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test(test_empty_page_still_has_families),
        cmocka_unit_test_setup_teardown(test_writer_gives_the_same_series_as_render, fixture_setup,
                                        fixture_teardown),
        cmocka_unit_test_setup_teardown(test_promtool_accepts_the_page, fixture_setup,
                                        fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
