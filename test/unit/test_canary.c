/* Unit tests for src/canary.c and the path splitter in src/server.c: weight redistribution when a
 * version leaves a split, guard parsing, URL path segments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "canary.h"
#include "deploy_internal.h"
#include "server.h"

/* A model table with the given weights (the rest of each deployment is unused here). */
typedef struct fake_model {
    deploy_model dm;
    deployment d[4];
    deployment *slots[4];
} fake_model;

static void fake_init(fake_model *f, const int *weights, size_t n)
{
    memset(f, 0, sizeof *f);
    for (size_t i = 0; i < n; i++) {
        f->d[i].weight = weights[i];
        f->slots[i] = &f->d[i];
    }
    f->dm.versions = f->slots;
    f->dm.count = n;
    f->dm.cap = 4;
    f->dm.has_split = true;
}

static void test_removed_weight_is_spread_in_proportion(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){60, 30, 10}, 3);
    /* version with weight 10 left: the others keep 2:1 and sum to 100 */
    f.dm.count = 2;
    canary_on_removed_locked(&f.dm, 10);
    assert_int_equal(f.d[0].weight + f.d[1].weight, 100);
    assert_int_equal(f.d[0].weight, 67);
    assert_int_equal(f.d[1].weight, 33);
    assert_true(f.dm.has_split);
}

static void test_removed_weight_goes_evenly_when_the_rest_had_none(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){0, 0, 100}, 3);
    f.dm.count = 2;
    canary_on_removed_locked(&f.dm, 100);
    assert_false(f.dm.has_split); /* nothing to split: newest takes all */
    fake_init(&f, (int[]){0, 0, 90}, 3);
    f.d[0].weight = 10;
    f.dm.count = 2;
    canary_on_removed_locked(&f.dm, 90);
    assert_int_equal(f.d[0].weight, 100);
    assert_int_equal(f.d[1].weight, 0);
}

static void test_last_version_leaving_ends_the_split(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){100}, 1);
    f.dm.count = 0;
    canary_on_removed_locked(&f.dm, 100);
    assert_false(f.dm.has_split);
}

static void test_guard_parsing_accepts_the_documented_fields_only(void **state)
{
    (void)state;
    canary_guard g;
    char err[256] = "";
    assert_int_equal(canary_guard_parse("{\"max_error_rate\":0.05,\"max_p99_ratio\":2.0,"
                                        "\"min_requests\":200,\"window_s\":30}",
                                        &g, err, sizeof err),
                     0);
    assert_true(g.enabled);
    assert_true(g.max_error_rate == 0.05 && g.max_p99_ratio == 2.0);
    assert_int_equal(g.min_requests, 200);
    assert_int_equal(g.window_s, 30);
    assert_false(g.tripped);
    assert_int_equal(canary_guard_parse("{\"window_s\":61}", &g, err, sizeof err), -1);
    assert_int_equal(canary_guard_parse("{\"max_error_rate\":2}", &g, err, sizeof err), -1);
    assert_int_equal(canary_guard_parse("{\"speed\":1}", &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "speed"));
    assert_int_equal(canary_guard_parse("[]", &g, err, sizeof err), -1);
    assert_int_equal(
        canary_guard_parse("{\"state\":\"tripped\",\"reason\":\"r\"}", &g, err, sizeof err), 0);
    assert_true(g.tripped);
    assert_string_equal(g.reason, "r");
}

static void test_path_segments(void **state)
{
    (void)state;
    char buf[64];
    const char *seg[4];
    assert_int_equal(server_path_segments("/a/bc//d/", buf, sizeof buf, seg, 4), 3);
    assert_string_equal(seg[0], "a");
    assert_string_equal(seg[1], "bc");
    assert_string_equal(seg[2], "d");
    assert_int_equal(server_path_segments("/", buf, sizeof buf, seg, 4), 0);
    assert_int_equal(server_path_segments("/1/2/3/4/5", buf, sizeof buf, seg, 4), -1);
    assert_int_equal(server_path_segments("/toolongforthebuffer", buf, 8, seg, 4), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_weight_is_spread_in_proportion),
        cmocka_unit_test(test_removed_weight_goes_evenly_when_the_rest_had_none),
        cmocka_unit_test(test_last_version_leaving_ends_the_split),
        cmocka_unit_test(test_guard_parsing_accepts_the_documented_fields_only),
        cmocka_unit_test(test_path_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
