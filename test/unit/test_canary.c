/* Unit tests for src/deploy/split.c and guard.c (the pure traffic-split arithmetic and guard
 * parsing) and the path splitter in src/http/path.c: weight redistribution when a version leaves
 * a split, guard parsing, URL path segments. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "guard.h"
#include "path.h"
#include "split.h"

/* A model's weight table as the manager keeps it (versions newest first). */
typedef struct fake_model {
    int w[4];
    size_t count;
    bool has_split;
} fake_model;

static void fake_init(fake_model *f, const int *weights, size_t n)
{
    memset(f, 0, sizeof *f);
    memcpy(f->w, weights, n * sizeof *weights);
    f->count = n;
    f->has_split = true;
}

/* What the manager does when a version with `weight` has left the first f->count entries. */
static void fake_removed(fake_model *f, int weight)
{
    if (f->has_split)
        f->has_split = split_spread_removed(f->w, f->count, weight);
}

static void test_removed_weight_is_spread_in_proportion(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){60, 30, 10}, 3);
    /* version with weight 10 left: the others keep 2:1 and sum to 100 */
    f.count = 2;
    fake_removed(&f, 10);
    assert_int_equal(f.w[0] + f.w[1], 100);
    assert_int_equal(f.w[0], 67);
    assert_int_equal(f.w[1], 33);
    assert_true(f.has_split);
}

static void test_removed_weight_goes_evenly_when_the_rest_had_none(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){0, 0, 100}, 3);
    f.count = 2;
    fake_removed(&f, 100);
    assert_false(f.has_split); /* nothing to split: newest takes all */
    fake_init(&f, (int[]){0, 0, 90}, 3);
    f.w[0] = 10;
    f.count = 2;
    fake_removed(&f, 90);
    assert_int_equal(f.w[0], 100);
    assert_int_equal(f.w[1], 0);
}

static void test_last_version_leaving_ends_the_split(void **state)
{
    (void)state;
    fake_model f;
    fake_init(&f, (int[]){100}, 1);
    f.count = 0;
    fake_removed(&f, 100);
    assert_false(f.has_split);
}

static void test_guard_parsing_accepts_the_documented_fields_only(void **state)
{
    (void)state;
    deploy_guard g;
    char err[256] = "";
    assert_int_equal(guard_parse("{\"max_error_rate\":0.05,\"max_p99_ratio\":2.0,"
                                 "\"min_requests\":200,\"window_s\":30}",
                                 &g, err, sizeof err),
                     0);
    assert_true(g.enabled);
    assert_true(g.max_error_rate == 0.05 && g.max_p99_ratio == 2.0);
    assert_int_equal(g.min_requests, 200);
    assert_int_equal(g.window_s, 30);
    assert_false(g.tripped);
    assert_int_equal(guard_parse("{\"window_s\":61}", &g, err, sizeof err), -1);
    assert_int_equal(guard_parse("{\"max_error_rate\":2}", &g, err, sizeof err), -1);
    assert_int_equal(guard_parse("{\"speed\":1}", &g, err, sizeof err), -1);
    assert_non_null(strstr(err, "speed"));
    assert_int_equal(guard_parse("[]", &g, err, sizeof err), -1);
    assert_int_equal(guard_parse("{\"state\":\"tripped\",\"reason\":\"r\"}", &g, err, sizeof err),
                     0);
    assert_true(g.tripped);
    assert_string_equal(g.reason, "r");
}

static void test_path_segments(void **state)
{
    (void)state;
    char buf[64];
    const char *seg[4];
    assert_int_equal(path_segments("/a/bc//d/", buf, sizeof buf, seg, 4), 3);
    assert_string_equal(seg[0], "a");
    assert_string_equal(seg[1], "bc");
    assert_string_equal(seg[2], "d");
    assert_int_equal(path_segments("/", buf, sizeof buf, seg, 4), 0);
    assert_int_equal(path_segments("/1/2/3/4/5", buf, sizeof buf, seg, 4), -1);
    assert_int_equal(path_segments("/toolongforthebuffer", buf, 8, seg, 4), -1);
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
