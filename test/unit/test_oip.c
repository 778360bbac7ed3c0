/*
 * test_oip: the Open Inference Protocol codec alone — request decoding (JSON and the binary
 * extension), checks against a model description, output_alloc, response and metadata encoding,
 * and the number conversions underneath (oip_internal.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"
#include "oip_internal.h"

/* ---- fixture ------------------------------------------------------------------------------- */

typedef struct fx {
    oip_arena *a;
    oip_request req;
    oip_response resp;
    oip_error err;
    ds_buf out;
    size_t json_len;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    f->a = oip_arena_new();
    oip_response_init(&f->resp, f->a);
    *state = f;
    return f->a ? 0 : -1;
}

static int teardown(void **state)
{
    fx *f = *state;
    buf_free(&f->out);
    oip_arena_free(f->a);
    free(f);
    return 0;
}

static int decode_lim(fx *f, const char *json, const oip_limits *lim)
{
    return oip_decode_request(f->a, json, strlen(json), (size_t)-1, lim, &f->req, &f->err);
}

static int decode(fx *f, const char *json)
{
    return decode_lim(f, json, NULL);
}

/* JSON header followed by binary bytes, with Inference-Header-Content-Length. */
static int decode_bin(fx *f, const char *json, const void *bin, size_t bin_len)
{
    size_t hl = strlen(json);
    char *body = oip_arena_alloc(f->a, hl + bin_len);
    memcpy(body, json, hl);
    if (bin_len)
        memcpy(body + hl, bin, bin_len);
    return oip_decode_request(f->a, body, hl + bin_len, hl, NULL, &f->req, &f->err);
}

#define assert_msg(f, sub)                                                                         \
    do {                                                                                           \
        if (strstr((f)->err.message, (sub)) == NULL)                                               \
            fail_msg("message '%s' lacks '%s'", (f)->err.message, (sub));                          \
    } while (0)

#define assert_rejected(f, json, want, sub)                                                        \
    do {                                                                                           \
        assert_int_equal(decode((f), (json)), (want));                                             \
        assert_int_equal((f)->err.code, (want));                                                   \
        assert_msg((f), (sub));                                                                    \
    } while (0)

/* One input "x" of the given datatype, shape text and data text. */
static const char *one_input(char *buf, size_t cap, const char *dt, const char *shape,
                             const char *data)
{
    snprintf(buf, cap,
             "{\"inputs\":[{\"name\":\"x\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s}]}", shape,
             dt, data);
    return buf;
}

static int decode_one(fx *f, const char *dt, const char *shape, const char *data)
{
    char buf[4096];
    return decode(f, one_input(buf, sizeof buf, dt, shape, data));
}

/* Echo every input as an output of the same name (the identity model), then encode. */
static int echo(fx *f)
{
    ds_error e;
    oip_response_init(&f->resp, f->a);
    for (uint32_t i = 0; i < f->req.plugin.input_count; i++) {
        const ds_tensor *t = &f->req.inputs[i];
        void *p =
            oip_output_alloc(&f->resp, t->name, t->datatype, t->rank, t->shape, t->byte_size, &e);
        if (p == NULL)
            fail_msg("output_alloc: %s", e.message);
        if (t->byte_size)
            memcpy(p, t->data, t->byte_size);
    }
    buf_reset(&f->out);
    return oip_encode_response(&f->out, "m", "1", &f->req, &f->resp, &f->json_len, &f->err);
}

/* The "data":[...] text of the first output in the encoded response. */
static const char *encoded_data(fx *f, char *buf, size_t cap)
{
    const char *s = strstr(f->out.data, "\"data\":[");
    assert_non_null(s);
    s += 8;
    const char *e = strstr(s, "]}");
    assert_non_null(e);
    snprintf(buf, cap, "%.*s", (int)(e - s), s);
    return buf;
}

static void assert_echo_data(fx *f, const char *want)
{
    char got[4096];
    assert_int_equal(echo(f), 0);
    assert_string_equal(encoded_data(f, got, sizeof got), want);
}

/* ---- datatypes ----------------------------------------------------------------------------- */

static void test_datatype_names_parse_back(void **state)
{
    (void)state;
    for (int t = DS_TYPE_BOOL; t <= DS_TYPE_BYTES; t++) {
        const char *n = oip_datatype_name((ds_datatype)t);
        assert_int_equal(oip_datatype_parse(n, strlen(n)), t);
    }
    assert_string_equal(oip_datatype_name(DS_TYPE_INVALID), "INVALID");
    assert_string_equal(oip_datatype_name((ds_datatype)99), "INVALID");
    assert_int_equal(oip_datatype_parse("ANY", 3), DS_TYPE_INVALID);
    assert_int_equal(oip_datatype_parse("fp32", 4), DS_TYPE_INVALID);
    assert_int_equal(oip_datatype_parse("FP3", 3), DS_TYPE_INVALID);
    assert_int_equal(oip_datatype_parse("FP32 ", 5), DS_TYPE_INVALID);
}

static void test_datatype_sizes(void **state)
{
    (void)state;
    assert_int_equal(oip_datatype_size(DS_TYPE_BOOL), 1);
    assert_int_equal(oip_datatype_size(DS_TYPE_INT16), 2);
    assert_int_equal(oip_datatype_size(DS_TYPE_FP16), 2);
    assert_int_equal(oip_datatype_size(DS_TYPE_UINT32), 4);
    assert_int_equal(oip_datatype_size(DS_TYPE_FP64), 8);
    assert_int_equal(oip_datatype_size(DS_TYPE_BYTES), 0);
    assert_int_equal(oip_datatype_size(DS_TYPE_INVALID), 0);
}

static void test_unknown_datatype_is_400(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FLOAT32", "[1]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': unknown datatype 'FLOAT32'");
}

/* ---- every datatype, JSON in and out ------------------------------------------------------- */

static void test_bool_accepts_true_false_and_round_trips(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "BOOL", "[3]", "[true,false,true]"), 0);
    const unsigned char *p = f->req.inputs[0].data;
    assert_int_equal(p[0], 1);
    assert_int_equal(p[1], 0);
    assert_int_equal(f->req.inputs[0].byte_size, 3);
    assert_echo_data(f, "true,false,true");
}

static void test_bool_rejects_numbers_and_strings(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "BOOL", "[1]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: expected true or false for BOOL");
    assert_int_equal(decode_one(f, "BOOL", "[1]", "[\"true\"]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "BOOL", "[1]", "[null]"), OIP_BAD_REQUEST);
}

static void test_uint8_accepts_0_to_255_and_rejects_300_and_minus_1(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "UINT8", "[3]", "[0,255,-0]"), 0);
    assert_echo_data(f, "0,255,0");
    assert_int_equal(decode_one(f, "UINT8", "[1]", "[300]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: 300 is out of range for UINT8");
    assert_int_equal(decode_one(f, "UINT8", "[1]", "[256]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "UINT8", "[1]", "[-1]"), OIP_BAD_REQUEST);
}

static void test_uint16_uint32_uint64_limits(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "UINT16", "[1]", "[65535]"), 0);
    assert_echo_data(f, "65535");
    assert_int_equal(decode_one(f, "UINT16", "[1]", "[65536]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "UINT32", "[1]", "[4294967295]"), 0);
    assert_echo_data(f, "4294967295");
    assert_int_equal(decode_one(f, "UINT32", "[1]", "[4294967296]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "UINT32", "[1]", "[-1]"), OIP_BAD_REQUEST);
    assert_msg(f, "-1 is out of range for UINT32");
    assert_int_equal(decode_one(f, "UINT64", "[2]", "[18446744073709551615,10000000000000000000]"),
                     0);
    uint64_t v[2];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_true(v[0] == UINT64_MAX);
    assert_true(v[1] == 10000000000000000000u);
    assert_echo_data(f, "18446744073709551615,10000000000000000000");
    assert_int_equal(decode_one(f, "UINT64", "[1]", "[18446744073709551616]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "UINT64", "[1]", "[100000000000000000000]"), OIP_BAD_REQUEST);
}

static void test_signed_integer_limits(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "INT8", "[2]", "[-128,127]"), 0);
    assert_echo_data(f, "-128,127");
    assert_int_equal(decode_one(f, "INT8", "[1]", "[128]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT8", "[1]", "[-129]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT16", "[2]", "[-32768,32767]"), 0);
    assert_echo_data(f, "-32768,32767");
    assert_int_equal(decode_one(f, "INT16", "[1]", "[32768]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT32", "[2]", "[-2147483648,2147483647]"), 0);
    assert_echo_data(f, "-2147483648,2147483647");
    assert_int_equal(decode_one(f, "INT32", "[1]", "[2147483648]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT64", "[2]", "[-9223372036854775808,9223372036854775807]"),
                     0);
    assert_echo_data(f, "-9223372036854775808,9223372036854775807");
    assert_int_equal(decode_one(f, "INT64", "[1]", "[9223372036854775808]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT64", "[1]", "[-9223372036854775809]"), OIP_BAD_REQUEST);
}

static void test_int64_is_exact_not_through_double(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "INT64", "[2]", "[9007199254740993,-9007199254740993]"), 0);
    int64_t v[2];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_true(v[0] == 9007199254740993LL);
    assert_true(v[1] == -9007199254740993LL);
    assert_echo_data(f, "9007199254740993,-9007199254740993");
}

static void test_integers_reject_fraction_exponent_bool_string(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "INT32", "[1]", "[1.5]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: 1.5 is not an integer, as required for INT32");
    assert_int_equal(decode_one(f, "INT32", "[1]", "[1.0]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT32", "[1]", "[1e3]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "INT32", "[1]", "[true]"), OIP_BAD_REQUEST);
    assert_msg(f, "expected an integer for INT32");
    assert_int_equal(decode_one(f, "UINT16", "[1]", "[\"1\"]"), OIP_BAD_REQUEST);
}

static void test_fp32_decodes_nearest_float_and_prints_shortest(void **state)
{
    fx *f = *state;
    assert_int_equal(
        decode_one(f, "FP32", "[8]",
                   "[0.1,1e-45,3.4028235e38,-0.0,6,0.10000000149011612,1.17549435e-38,123456.789]"),
        0);
    float v[8];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_true(v[0] == 0.1f);
    assert_true(v[1] == 1e-45f);
    assert_true(v[2] == 3.4028235e38f);
    assert_true(v[3] == 0.0f && signbit(v[3]));
    assert_true(v[4] == 6.0f);
    assert_true(v[5] == 0.1f);
    assert_true(v[6] == 1.17549435e-38f);
    assert_true(v[7] == 123456.789f);
    assert_echo_data(f, "0.1,1e-45,3.4028235e38,-0.0,6.0,0.1,1.1754944e-38,123456.79");
}

static void test_fp32_rejects_out_of_range_and_strings(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[1]", "[3.5e38]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: 3.5e38 is out of range for FP32");
    assert_int_equal(decode_one(f, "FP32", "[1]", "[\"x\"]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: expected a number for FP32");
    assert_int_equal(decode_one(f, "FP32", "[1]", "[true]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "FP32", "[1]", "[1e-400]"), 0); /* underflow is zero */
}

static void test_fp64_decodes_exactly_and_prints_shortest(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP64", "[7]",
                                "[0.1,1.7976931348623157e308,5e-324,2.2250738585072014e-308,"
                                "0.30000000000000004,123456789012345678901234567890,1e22]"),
                     0);
    double v[7];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_true(v[0] == 0.1);
    assert_true(v[1] == 1.7976931348623157e308);
    assert_true(v[2] == 5e-324);
    assert_true(v[3] == 2.2250738585072014e-308);
    assert_true(v[4] == 0.30000000000000004);
    assert_true(v[5] == 123456789012345678901234567890.0);
    assert_true(v[6] == 1e22);
    assert_echo_data(f, "0.1,1.7976931348623157e308,5e-324,2.2250738585072014e-308,"
                        "0.30000000000000004,1.2345678901234568e29,1e22");
    assert_int_equal(decode_one(f, "FP64", "[1]", "[2e308]"), OIP_BAD_REQUEST);
    assert_msg(f, "2e308 is out of range for FP64");
}

static void test_nan_and_infinity_tokens_for_float_types(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[3]", "[NaN,Infinity,-Infinity]"), 0);
    float v[3];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_true(isnan(v[0]));
    assert_true(isinf(v[1]) && v[1] > 0);
    assert_true(isinf(v[2]) && v[2] < 0);
    assert_echo_data(f, "NaN,Infinity,-Infinity");
    assert_int_equal(decode_one(f, "FP64", "[2]", "[NaN,-Infinity]"), 0);
    assert_echo_data(f, "NaN,-Infinity");
    assert_int_equal(decode_one(f, "FP16", "[2]", "[NaN,Infinity]"), 0);
    assert_echo_data(f, "NaN,Infinity");
    assert_int_equal(decode_one(f, "INT32", "[1]", "[NaN]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "FP32", "[1]", "[nan]"), OIP_BAD_REQUEST);
}

static void test_fp16_every_value_round_trips_through_json(void **state)
{
    (void)state;
    char buf[OIP_FMT_MAX + 1];
    for (uint32_t h = 0; h < 0x10000; h++) {
        uint16_t x = (uint16_t)h;
        size_t n = oip_fmt_f16(buf, x);
        buf[n] = '\0';
        if ((x & 0x7c00) == 0x7c00) { /* NaN and inf print as tokens, checked elsewhere */
            assert_string_equal(buf, (x & 0x3ff) ? "NaN" : (x & 0x8000) ? "-Infinity" : "Infinity");
            continue;
        }
        oip_num num;
        uint16_t back = 0;
        assert_int_equal(oip_num_scan(buf, buf + n, &num), n);
        assert_int_equal(oip_num_to_f16(&num, buf, n, &back), 0);
        if (back != x)
            fail_msg("binary16 %04x printed as %s parsed back as %04x", x, buf, back);
        assert_true(oip_f64_to_f16((double)oip_f16_to_f32(x)) == x);
    }
}

static uint16_t f16_of(const char *s)
{
    oip_num n;
    uint16_t h = 0;
    size_t len = oip_num_scan(s, s + strlen(s), &n);
    assert_int_equal(len, strlen(s));
    assert_int_equal(oip_num_to_f16(&n, s, len, &h), 0);
    return h;
}

static void test_fp16_rounds_to_nearest_even(void **state)
{
    fx *f = *state;
    assert_int_equal(f16_of("2049"), 0x6800);         /* tie between 2048 and 2050: even */
    assert_int_equal(f16_of("2051"), 0x6802);         /* tie between 2050 and 2052: even */
    assert_int_equal(f16_of("2049.0000001"), 0x6801); /* just above the tie */
    assert_int_equal(f16_of("65519"), 0x7bff);        /* below the overflow midpoint */
    assert_int_equal(f16_of("0.1"), 0x2e66);
    assert_int_equal(f16_of("5.960464477539063e-8"), 0x0001);  /* smallest subnormal */
    assert_int_equal(f16_of("2.9802322387695312e-8"), 0x0000); /* 2^-25: tie to even zero */
    assert_int_equal(f16_of("2.9802322387695313e-8"), 0x0001); /* just above: rounds up */
    assert_int_equal(f16_of("-6.097555160522461e-5"), 0x83ff); /* largest negative subnormal */
    assert_int_equal(f16_of("6.103515625e-5"), 0x0400);        /* smallest normal */
    assert_int_equal(decode_one(f, "FP16", "[1]", "[65520]"), OIP_BAD_REQUEST);
    assert_msg(f, "65520 is out of range for FP16");
    assert_int_equal(decode_one(f, "FP16", "[4]", "[1,-2.5,0.0001,1e-9]"), 0);
    uint16_t v[4];
    memcpy(v, f->req.inputs[0].data, sizeof v);
    assert_int_equal(v[0], 0x3c00);
    assert_int_equal(v[1], 0xc100);
    assert_int_equal(v[3], 0x0000);
    assert_echo_data(f, "1.0,-2.5,0.0001,0.0");
}

static void test_fp16_conversion_of_specials_and_subnormals(void **state)
{
    (void)state;
    assert_int_equal(oip_f64_to_f16(INFINITY), 0x7c00);
    assert_int_equal(oip_f64_to_f16(-INFINITY), 0xfc00);
    assert_true((oip_f64_to_f16(NAN) & 0x7c00) == 0x7c00 && (oip_f64_to_f16(NAN) & 0x3ff));
    assert_int_equal(oip_f64_to_f16(-0.0), 0x8000);
    assert_int_equal(oip_f64_to_f16(65504.0), 0x7bff);
    assert_int_equal(oip_f64_to_f16(65520.0), 0x7c00); /* rounds up to inf */
    assert_int_equal(oip_f64_to_f16(ldexp(1, -24)), 0x0001);
    assert_int_equal(oip_f64_to_f16(ldexp(1, -25)), 0x0000);
    assert_int_equal(oip_f64_to_f16(ldexp(3, -26)), 0x0001);
    assert_int_equal(oip_f64_to_f16(ldexp(1023, -24)), 0x03ff);
    assert_int_equal(oip_f64_to_f16(1e-300), 0x0000);
    assert_true(oip_f16_to_f32(0x0001) == ldexpf(1, -24));
    assert_true(oip_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isinf(oip_f16_to_f32(0xfc00)));
    assert_true(isnan(oip_f16_to_f32(0x7e00)));
}

static void test_bytes_decode_escapes_to_utf8_and_round_trip(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "BYTES", "[4]",
                                "[\"h\\u00e9\\n\",\"\\ud83d\\ude00\",\"\",\"a\\u0000b\\\"\\/\"]"),
                     0);
    const unsigned char *p = f->req.inputs[0].data;
    static const unsigned char want[] = {4, 0, 0,    0,    'h',  0xc3, 0xa9, '\n', 4,  0,
                                         0, 0, 0xf0, 0x9f, 0x98, 0x80, 0,    0,    0,  0,
                                         5, 0, 0,    0,    'a',  0,    'b',  '"',  '/'};
    assert_int_equal(f->req.inputs[0].byte_size, sizeof want);
    assert_memory_equal(p, want, sizeof want);
    assert_echo_data(f, "\"h\xc3\xa9\\n\",\"\xf0\x9f\x98\x80\",\"\",\"a\\u0000b\\\"/\"");
}

static void test_bytes_rejects_numbers(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "BYTES", "[1]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': data[0]: expected a string for BYTES");
}

static void test_every_datatype_encodes_as_json(void **state)
{
    fx *f = *state;
    static const int64_t shape[] = {2};
    ds_error e;
    uint8_t *b = oip_output_alloc(&f->resp, "b", DS_TYPE_BOOL, 1, shape, 2, &e);
    b[0] = 1;
    int16_t *i16 = oip_output_alloc(&f->resp, "i16", DS_TYPE_INT16, 1, shape, 4, &e);
    i16[0] = -5, i16[1] = 300;
    uint32_t *u32 = oip_output_alloc(&f->resp, "u32", DS_TYPE_UINT32, 1, shape, 8, &e);
    u32[0] = 7, u32[1] = 4000000000u;
    uint16_t *h = oip_output_alloc(&f->resp, "h", DS_TYPE_FP16, 1, shape, 4, &e);
    h[0] = 0x3e00, h[1] = 0x8000;
    double *d = oip_output_alloc(&f->resp, "d", DS_TYPE_FP64, 1, shape, 16, &e);
    d[0] = 1e-7, d[1] = 12345678.5;
    unsigned char *s = oip_output_alloc(&f->resp, "s", DS_TYPE_BYTES, 1, shape, 10, &e);
    memcpy(s, "\x02\0\0\0hi\0\0\0\0", 10);
    assert_int_equal(oip_encode_response(&f->out, "m", NULL, NULL, &f->resp, &f->json_len, &f->err),
                     0);
    assert_string_equal(
        f->out.data,
        "{\"model_name\":\"m\",\"outputs\":["
        "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[2],\"data\":[true,false]},"
        "{\"name\":\"i16\",\"datatype\":\"INT16\",\"shape\":[2],\"data\":[-5,300]},"
        "{\"name\":\"u32\",\"datatype\":\"UINT32\",\"shape\":[2],\"data\":[7,4000000000]},"
        "{\"name\":\"h\",\"datatype\":\"FP16\",\"shape\":[2],\"data\":[1.5,-0.0]},"
        "{\"name\":\"d\",\"datatype\":\"FP64\",\"shape\":[2],\"data\":[1e-7,12345678.5]},"
        "{\"name\":\"s\",\"datatype\":\"BYTES\",\"shape\":[2],\"data\":[\"hi\",\"\"]}]}");
    assert_int_equal(f->json_len, f->out.len);
}

/* ---- number printing and parsing ----------------------------------------------------------- */

static const char *f32s(char *buf, float v)
{
    buf[oip_fmt_f32(buf, v)] = '\0';
    return buf;
}

static const char *f64s(char *buf, double v)
{
    buf[oip_fmt_f64(buf, v)] = '\0';
    return buf;
}

static void test_float_format_integral_exponent_and_specials(void **state)
{
    (void)state;
    char b[OIP_FMT_MAX + 1];
    assert_string_equal(f32s(b, 6.0f), "6.0");
    assert_string_equal(f32s(b, 0.1f), "0.1");
    assert_string_equal(f32s(b, 1e16f), "1e16");
    assert_string_equal(f32s(b, 1.5e-7f), "1.5e-7");
    assert_string_equal(f32s(b, 0.0001f), "0.0001");
    assert_string_equal(f32s(b, 1e-5f), "1e-5");
    assert_string_equal(f32s(b, 16777216.0f), "16777216.0");
    assert_string_equal(f32s(b, 3.4028235e38f), "3.4028235e38");
    assert_string_equal(f32s(b, -0.0f), "-0.0");
    assert_string_equal(f32s(b, NAN), "NaN");
    assert_string_equal(f32s(b, -INFINITY), "-Infinity");
    assert_string_equal(f64s(b, 0.1), "0.1");
    assert_string_equal(f64s(b, 1.0 / 3), "0.3333333333333333");
    assert_string_equal(f64s(b, 123456789012345680.0), "1.2345678901234568e17");
    assert_string_equal(f64s(b, 1e15), "1000000000000000.0");
    assert_string_equal(f64s(b, -1.5e300), "-1.5e300");
    assert_string_equal(f64s(b, 5e-324), "5e-324");
    assert_string_equal(f64s(b, INFINITY), "Infinity");
    assert_string_equal(f64s(b, 0.0), "0.0");
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Fewest significant digits of printf %e that read back as v (the reference for shortest). */
static int shortest_digits(double v, bool single)
{
    char b[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*e", p - 1, v);
        if (single ? strtof(b, NULL) == (float)v : strtod(b, NULL) == v)
            return p;
    }
    return 17;
}

static int significant_digits(const char *s)
{
    int n = 0, zeros = 0;
    bool started = false;
    for (; *s && *s != 'e'; s++) {
        if (*s < '0' || *s > '9')
            continue;
        started |= *s != '0';
        if (!started)
            continue;
        if (*s == '0') {
            zeros++;
        } else {
            n += zeros + 1;
            zeros = 0;
        }
    }
    return n ? n : 1;
}

static void test_float_printing_is_shortest_and_round_trips(void **state)
{
    (void)state;
    char b[OIP_FMT_MAX + 1];
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = rng();
        double d;
        float fl;
        uint32_t fb = (uint32_t)bits;
        memcpy(&d, &bits, sizeof d);
        memcpy(&fl, &fb, sizeof fl);
        if (isfinite(d)) {
            f64s(b, d);
            if (strtod(b, NULL) != d || significant_digits(b) > shortest_digits(d, false))
                fail_msg("binary64 %a printed as %s", d, b);
        }
        if (isfinite(fl)) {
            f32s(b, fl);
            if (strtof(b, NULL) != fl || significant_digits(b) > shortest_digits(fl, true))
                fail_msg("binary32 %a printed as %s", (double)fl, b);
        }
    }
}

static void test_number_parsing_matches_strtod(void **state)
{
    (void)state;
    char s[64];
    for (int i = 0; i < 200000; i++) {
        int nd = 1 + (int)(rng() % 24), k = 0;
        if (rng() & 1)
            s[k++] = '-';
        s[k++] = (char)('1' + rng() % 9);
        for (int j = 1; j < nd; j++)
            s[k++] = (char)('0' + rng() % 10);
        if (rng() & 1) {
            s[k++] = '.';
            s[k++] = (char)('0' + rng() % 10);
        }
        k += snprintf(s + k, sizeof s - (size_t)k, "e%d", (int)(rng() % 660) - 340);
        oip_num n;
        size_t len = oip_num_scan(s, s + k, &n);
        assert_int_equal(len, (size_t)k);
        double d = 0, want = strtod(s, NULL);
        float fl = 0, wantf = strtof(s, NULL);
        int rc = oip_num_to_f64(&n, s, len, &d);
        if (isinf(want) ? rc != -1 : rc != 0 || d != want)
            fail_msg("%s: binary64 %a, strtod %a", s, d, want);
        rc = oip_num_to_f32(&n, s, len, &fl);
        if (isinf(wantf) ? rc != -1 : rc != 0 || fl != wantf)
            fail_msg("%s: binary32 %a, strtof %a", s, (double)fl, (double)wantf);
    }
}

static void test_number_scanner_follows_json_grammar(void **state)
{
    (void)state;
    static const char *bad[] = {"-", "01", "+1", ".5", "1.", "1e", "1e+", "-a", "", "x"};
    static const char *good[] = {"0", "-0", "1.5", "1e5", "1E+5", "1e-5", "0.0e0", "12345"};
    oip_num n;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t len = oip_num_scan(bad[i], bad[i] + strlen(bad[i]), &n);
        if (len == strlen(bad[i]) && len != 0)
            fail_msg("'%s' scanned as a number", bad[i]);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(oip_num_scan(good[i], good[i] + strlen(good[i]), &n), strlen(good[i]));
}

/* ---- shapes -------------------------------------------------------------------------------- */

static void test_zero_sized_dim_is_an_empty_tensor(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[0,3]", "[]"), 0);
    assert_int_equal(f->req.inputs[0].element_count, 0);
    assert_int_equal(f->req.inputs[0].byte_size, 0);
    assert_non_null(f->req.inputs[0].data);
    assert_echo_data(f, "");
    assert_int_equal(decode_one(f, "INT8", "[2,0]", "[[],[]]"), 0);
    assert_int_equal(decode_one(f, "BYTES", "[0]", "[]"), 0);
    assert_int_equal(decode_one(f, "FP32", "[0]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "expected 0 elements for shape [0], got 1");
}

static void test_rank_zero_scalar_has_one_element(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "INT32", "[]", "[7]"), 0);
    assert_int_equal(f->req.inputs[0].rank, 0);
    assert_int_equal(f->req.inputs[0].element_count, 1);
    assert_int_equal(echo(f), 0);
    assert_non_null(strstr(f->out.data, "\"shape\":[],\"data\":[7]"));
    assert_int_equal(decode_one(f, "INT32", "[]", "[]"), OIP_BAD_REQUEST);
    assert_msg(f, "expected 1 elements for shape [], got 0");
}

static void test_huge_dims_overflow_and_limit(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[4294967296,4294967296]", "[]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': shape [4294967296,4294967296] has too many elements");
    assert_int_equal(decode_one(f, "FP32", "[9223372036854775808]", "[]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "FP32", "[1000000000000]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "exceed");
    assert_int_equal(decode_one(f, "FP32", "[0,9223372036854775807,9223372036854775807]", "[]"), 0);
}

static void test_data_count_must_match_shape(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[2,3]", "[1,2,3,4,5]"), OIP_BAD_REQUEST);
    assert_string_equal(f->err.message, "input 'x': expected 6 elements for shape [2,3], got 5");
    assert_int_equal(decode_one(f, "FP32", "[2,3]", "[1,2,3,4,5,6,7]"), OIP_BAD_REQUEST);
    assert_msg(f, "got 7");
    /* a big shape with little data is refused without allocating for the shape */
    assert_int_equal(decode_one(f, "FP64", "[60000000]", "[1,2]"), OIP_BAD_REQUEST);
    assert_msg(f, "expected 60000000 elements for shape [60000000], got 2");
}

static void test_shape_must_be_non_negative_integers_up_to_rank_8(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "FP32", "[-1]", "[]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'x': shape dimensions must be non-negative integers");
    assert_int_equal(decode_one(f, "FP32", "[1.5]", "[1]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "FP32", "[\"2\"]", "[1,2]"), OIP_BAD_REQUEST);
    assert_int_equal(decode_one(f, "FP32", "[1,1,1,1,1,1,1,1]", "[1]"), 0);
    assert_int_equal(decode_one(f, "FP32", "[1,1,1,1,1,1,1,1,1]", "[1]"), OIP_BAD_REQUEST);
    assert_msg(f, "more than 8 dimensions");
    assert_int_equal(decode_one(f, "FP32", "2", "[1,2]"), OIP_BAD_REQUEST);
}

static void test_nested_data_equals_flat_data(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "INT32", "[2,2]", "[[1,2],[3,4]]"), 0);
    int32_t nested[4];
    memcpy(nested, f->req.inputs[0].data, sizeof nested);
    assert_int_equal(decode_one(f, "INT32", "[2,2]", "[1,2,3,4]"), 0);
    assert_memory_equal(nested, f->req.inputs[0].data, sizeof nested);
    assert_echo_data(f, "1,2,3,4");
    assert_int_equal(decode_one(f, "INT32", "[2,2]", "[[[1]],[2,[3,[4]]]]"), 0);
    assert_memory_equal(nested, f->req.inputs[0].data, sizeof nested);
    assert_int_equal(decode_one(f, "INT32", "[1]", "[{\"a\":1}]"), OIP_BAD_REQUEST);
    assert_msg(f, "scalars");
    assert_int_equal(decode_one(f, "INT32", "[1]", "1"), OIP_BAD_REQUEST);
    assert_msg(f, "'data' must be a JSON array");
}

static void test_members_in_any_order(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, "{\"inputs\":[{\"data\":[[1.5,2.5]],\"datatype\":\"FP64\","
                               "\"shape\":[1,2],\"name\":\"late\"}],\"id\":\"z\"}"),
                     0);
    assert_string_equal(f->req.inputs[0].name, "late");
    assert_echo_data(f, "1.5,2.5");
    assert_int_equal(decode(f, "{\"inputs\":[{\"data\":[1,2,3],\"datatype\":\"FP64\","
                               "\"shape\":[2],\"name\":\"late\"}]}"),
                     OIP_BAD_REQUEST);
    assert_msg(f, "input 'late': expected 2 elements for shape [2], got 3");
}

/* ---- request fields ------------------------------------------------------------------------ */

static void test_id_is_echoed_and_absent_without_one(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, "{\"id\":\"req-\\\"42\\\"\",\"inputs\":[{\"name\":\"x\","
                               "\"shape\":[1],\"datatype\":\"INT8\",\"data\":[1]}]}"),
                     0);
    assert_string_equal(f->req.plugin.id, "req-\"42\"");
    assert_int_equal(echo(f), 0);
    assert_non_null(strstr(f->out.data, "\"model_version\":\"1\",\"id\":\"req-\\\"42\\\"\","));
    assert_int_equal(decode_one(f, "INT8", "[1]", "[1]"), 0);
    assert_null(f->req.plugin.id);
    assert_int_equal(echo(f), 0);
    assert_null(strstr(f->out.data, "\"id\""));
    assert_null(strstr(f->out.data, "\"parameters\""));
    assert_rejected(f, "{\"id\":42,\"inputs\":[]}", OIP_BAD_REQUEST, "'id' must be a string");
}

static void test_parameters_pass_through_as_raw_json(void **state)
{
    fx *f = *state;
    assert_int_equal(
        decode(f, "{\"parameters\": {\"a\": [1, {\"b\": null}], \"routing_key\": \"k1\"},"
                  "\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\","
                  "\"parameters\":{ \"content_type\" : \"np\" },\"data\":[1]}],"
                  "\"outputs\":[{\"name\":\"x\",\"parameters\":{\"classification\":2}}]}"),
        0);
    assert_string_equal(f->req.plugin.parameters,
                        "{\"a\": [1, {\"b\": null}], \"routing_key\": \"k1\"}");
    assert_string_equal(f->req.routing_key, "k1");
    assert_string_equal(f->req.inputs[0].parameters, "{ \"content_type\" : \"np\" }");
    assert_string_equal(f->req.outputs[0].parameters, "{\"classification\":2}");
    assert_int_equal(echo(f), 0);
    assert_null(strstr(f->out.data, "\"parameters\"")); /* never echoed */
    assert_rejected(f, "{\"parameters\":[1],\"inputs\":[]}", OIP_BAD_REQUEST,
                    "'parameters' must be");
    assert_rejected(f, "{\"parameters\":{\"routing_key\":1},\"inputs\":[]}", OIP_BAD_REQUEST,
                    "routing_key");
}

static const char three_inputs[] =
    "{\"inputs\":["
    "{\"name\":\"a\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[1]},"
    "{\"name\":\"b\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[2]},"
    "{\"name\":\"c\",\"shape\":[1],\"datatype\":\"INT32\",\"data\":[3]}]";

static void test_requested_outputs_limit_and_order_the_response(void **state)
{
    fx *f = *state;
    char json[1024];
    snprintf(json, sizeof json, "%s,\"outputs\":[{\"name\":\"c\"},{\"name\":\"a\"}]}",
             three_inputs);
    assert_int_equal(decode(f, json), 0);
    assert_int_equal(f->req.output_count, 2);
    assert_int_equal(f->req.plugin.requested_output_count, 2);
    assert_string_equal(f->req.plugin.requested_outputs[0], "c");
    assert_int_equal(echo(f), 0);
    assert_string_equal(f->out.data,
                        "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":["
                        "{\"name\":\"c\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[3]},"
                        "{\"name\":\"a\",\"datatype\":\"INT32\",\"shape\":[1],\"data\":[1]}]}");
}

static void test_requested_output_twice_or_without_name_is_400(void **state)
{
    fx *f = *state;
    char json[1024];
    snprintf(json, sizeof json, "%s,\"outputs\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
             three_inputs);
    assert_rejected(f, json, OIP_BAD_REQUEST, "output 'a' is requested twice");
    snprintf(json, sizeof json, "%s,\"outputs\":[{\"parameters\":{}}]}", three_inputs);
    assert_rejected(f, json, OIP_BAD_REQUEST, "outputs[0]: missing or empty 'name'");
    snprintf(json, sizeof json, "%s,\"outputs\":[{\"name\":\"a\",\"x\":1}]}", three_inputs);
    assert_rejected(f, json, OIP_BAD_REQUEST, "outputs[0]: unknown field 'x'");
}

static void test_requested_output_not_produced_is_500_at_encode(void **state)
{
    fx *f = *state;
    char json[1024];
    snprintf(json, sizeof json, "%s,\"outputs\":[{\"name\":\"zz\"}]}", three_inputs);
    assert_int_equal(decode(f, json), 0);
    assert_int_equal(echo(f), OIP_INTERNAL);
    assert_msg(f, "'zz'");
}

static void test_binary_data_output_sends_every_output_in_binary(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f,
                            "{\"parameters\":{\"binary_data_output\":true},\"inputs\":["
                            "{\"name\":\"a\",\"shape\":[2],\"datatype\":\"INT16\",\"data\":[1,2]},"
                            "{\"name\":\"b\",\"shape\":[1],\"datatype\":\"BOOL\","
                            "\"data\":[true]}]}"),
                     0);
    assert_true(f->req.binary_data_output);
    assert_int_equal(echo(f), 0);
    const char *json = "{\"model_name\":\"m\",\"model_version\":\"1\",\"outputs\":["
                       "{\"name\":\"a\",\"datatype\":\"INT16\",\"shape\":[2],"
                       "\"parameters\":{\"binary_data_size\":4}},"
                       "{\"name\":\"b\",\"datatype\":\"BOOL\",\"shape\":[1],"
                       "\"parameters\":{\"binary_data_size\":1}}]}";
    assert_int_equal(f->json_len, strlen(json));
    assert_memory_equal(f->out.data, json, f->json_len);
    assert_int_equal(f->out.len, f->json_len + 5);
    assert_memory_equal(f->out.data + f->json_len, "\x01\x00\x02\x00\x01", 5);
}

/* With spans, binary outputs from the first large one on are recorded, not copied: the small
 * one before it stays in the body, the small one after it becomes a span too (order). The
 * buffer's cap counts the spanned bytes. */
static void test_large_binary_outputs_are_recorded_as_spans_not_copied(void **state)
{
    fx *f = *state;
    size_t big = OIP_SPAN_MIN;
    unsigned char *bin = malloc(4 + big + 3);
    assert_non_null(bin);
    for (size_t i = 0; i < 4 + big + 3; i++)
        bin[i] = (unsigned char)(i * 7u);
    char json[512];
    snprintf(json, sizeof json,
             "{\"parameters\":{\"binary_data_output\":true},\"inputs\":["
             "{\"name\":\"a\",\"shape\":[4],\"datatype\":\"UINT8\","
             "\"parameters\":{\"binary_data_size\":4}},"
             "{\"name\":\"b\",\"shape\":[%zu],\"datatype\":\"UINT8\","
             "\"parameters\":{\"binary_data_size\":%zu}},"
             "{\"name\":\"c\",\"shape\":[3],\"datatype\":\"UINT8\","
             "\"parameters\":{\"binary_data_size\":3}}]}",
             big, big);
    assert_int_equal(decode_bin(f, json, bin, 4 + big + 3), 0);
    assert_int_equal(echo(f), 0); /* no spans: everything copied */
    size_t json_len = f->json_len;
    assert_int_equal(f->out.len, json_len + 4 + big + 3);

    ds_span sp[3];
    oip_spans spans = {.spans = sp, .capacity = 3};
    buf_reset(&f->out);
    assert_int_equal(oip_encode_response_spans(&f->out, "m", "1", &f->req, &f->resp, &f->json_len,
                                               &spans, &f->err),
                     0);
    assert_int_equal(f->json_len, json_len);
    assert_int_equal(f->out.len, json_len + 4);
    assert_memory_equal(f->out.data + json_len, bin, 4);
    assert_int_equal(spans.count, 2);
    assert_ptr_equal(sp[0].data, f->resp.outputs[1].data); /* the output's own memory */
    assert_int_equal(sp[0].len, big);
    assert_memory_equal(sp[0].data, bin + 4, big);
    assert_ptr_equal(sp[1].data, f->resp.outputs[2].data);
    assert_int_equal(sp[1].len, 3);

    /* the cap counts the spans: one byte short of the whole answer is too large */
    buf_reset(&f->out);
    buf_set_limit(&f->out, json_len + 4 + big + 3 - 1);
    assert_int_equal(oip_encode_response_spans(&f->out, "m", "1", &f->req, &f->resp, &f->json_len,
                                               &spans, &f->err),
                     OIP_TOO_LARGE);
    buf_free(&f->out);
    buf_set_limit(&f->out, json_len + 4 + big + 3);
    assert_int_equal(oip_encode_response_spans(&f->out, "m", "1", &f->req, &f->resp, &f->json_len,
                                               &spans, &f->err),
                     0);
    buf_free(&f->out);
    free(bin);
}

static void test_binary_data_per_output_overrides_request_default(void **state)
{
    fx *f = *state;
    char json[1024];
    snprintf(json, sizeof json,
             "%s,\"outputs\":[{\"name\":\"a\",\"parameters\":{\"binary_data\":false}},"
             "{\"name\":\"b\"},{\"name\":\"c\",\"parameters\":{\"binary_data\":true}}],"
             "\"parameters\":{\"binary_data_output\":true}}",
             three_inputs);
    assert_int_equal(decode(f, json), 0);
    assert_false(f->req.outputs[0].binary_data);
    assert_true(f->req.outputs[1].binary_data);
    assert_true(f->req.outputs[2].binary_data);
    assert_int_equal(echo(f), 0);
    assert_non_null(strstr(f->out.data, "\"name\":\"a\",\"datatype\":\"INT32\",\"shape\":[1],"
                                        "\"data\":[1]}"));
    assert_int_equal(f->out.len, f->json_len + 8);
    assert_memory_equal(f->out.data + f->json_len, "\x02\0\0\0\x03\0\0\0", 8);
    snprintf(json, sizeof json,
             "%s,\"outputs\":[{\"name\":\"a\",\"parameters\":"
             "{\"binary_data\":1}}]}",
             three_inputs);
    assert_rejected(f, json, OIP_BAD_REQUEST, "parameter 'binary_data' must be true or false");
}

static void test_binary_inputs_follow_the_json_header(void **state)
{
    fx *f = *state;
    unsigned char bin[8 + 10 + 1];
    float fl[2] = {1.5f, -2.0f};
    memcpy(bin, fl, 8);
    memcpy(bin + 8, "\x02\0\0\0hi\0\0\0\0", 10);
    bin[18] = 1;
    const char *json = "{\"inputs\":["
                       "{\"name\":\"f\",\"shape\":[2],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":8}},"
                       "{\"name\":\"j\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[5]},"
                       "{\"name\":\"s\",\"shape\":[2],\"datatype\":\"BYTES\","
                       "\"parameters\":{\"binary_data_size\":10}},"
                       "{\"name\":\"b\",\"shape\":[1],\"datatype\":\"BOOL\","
                       "\"parameters\":{\"binary_data_size\":1}}]}";
    assert_int_equal(decode_bin(f, json, bin, sizeof bin), 0);
    assert_memory_equal(f->req.inputs[0].data, fl, 8);
    assert_int_equal(f->req.inputs[0].byte_size, 8);
    assert_int_equal(((const int8_t *)f->req.inputs[1].data)[0], 5);
    assert_memory_equal(f->req.inputs[2].data, bin + 8, 10);
    assert_int_equal(((const uint8_t *)f->req.inputs[3].data)[0], 1);
    assert_int_equal((uintptr_t)f->req.inputs[0].data % 16, 0); /* aligned for the plugin */
    assert_string_equal(f->req.inputs[0].parameters, "{\"binary_data_size\":8}");
    assert_int_equal(echo(f), 0);
    assert_non_null(strstr(f->out.data, "\"data\":[1.5,-2.0]"));
    assert_non_null(strstr(f->out.data, "\"data\":[\"hi\",\"\"]"));
}

/* A binary input whose bytes sit 16-byte aligned in the body is used in place (the HTTP layer
 * places bodies so); anywhere else it is copied into the arena, aligned. Same values both ways. */
static void test_an_aligned_binary_input_is_used_in_place_else_copied(void **state)
{
    fx *f = *state;
    const char *json = "{\"inputs\":[{\"name\":\"f\",\"shape\":[4],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":16}}]}";
    size_t hl = strlen(json);
    float fl[4] = {1.5f, -2.0f, 3.25f, 0.0f};
    for (size_t pad = 0; pad < 16; pad++) {
        char *mem = oip_arena_alloc(f->a, 16 + hl + sizeof fl);
        char *body = mem + pad;
        memcpy(body, json, hl);
        memcpy(body + hl, fl, sizeof fl);
        assert_int_equal(oip_decode_request(f->a, body, hl + sizeof fl, hl, NULL, &f->req, &f->err),
                         0);
        const char *data = f->req.inputs[0].data;
        assert_memory_equal(data, fl, sizeof fl);
        assert_int_equal((uintptr_t)data % 16, 0);
        if (((uintptr_t)(body + hl) & 15) == 0)
            assert_ptr_equal(data, body + hl);
        else
            assert_ptr_not_equal(data, body + hl);
    }
}

static void test_every_datatype_round_trips_in_binary(void **state)
{
    fx *f = *state;
    unsigned char bytes[24];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (unsigned char)(i * 37 + 1);
    for (int t = DS_TYPE_BOOL; t <= DS_TYPE_BYTES; t++) {
        size_t size = oip_datatype_size((ds_datatype)t) * 3;
        if (t == DS_TYPE_BOOL)
            memcpy(bytes, "\x01\x00\x01", 3);
        if (t == DS_TYPE_BYTES) { /* three elements: "ab", "", "xyz" */
            size = 4 + 2 + 4 + 4 + 3;
            memcpy(bytes, "\x02\0\0\0ab\0\0\0\0\x03\0\0\0xyz", size);
        }
        char json[256];
        snprintf(json, sizeof json,
                 "{\"inputs\":[{\"name\":\"x\",\"shape\":[3],\"datatype\":\"%s\","
                 "\"parameters\":{\"binary_data_size\":%zu}}],"
                 "\"outputs\":[{\"name\":\"x\",\"parameters\":{\"binary_data\":true}}]}",
                 oip_datatype_name((ds_datatype)t), size);
        oip_arena_reset(f->a);
        if (decode_bin(f, json, bytes, size) != 0)
            fail_msg("%s: %s", oip_datatype_name((ds_datatype)t), f->err.message);
        assert_int_equal(f->req.inputs[0].byte_size, size);
        assert_memory_equal(f->req.inputs[0].data, bytes, size);
        assert_int_equal(echo(f), 0);
        assert_int_equal(f->out.len, f->json_len + size);
        assert_memory_equal(f->out.data + f->json_len, bytes, size);
    }
}

static void test_binary_sizes_must_add_up(void **state)
{
    fx *f = *state;
    const char *json = "{\"inputs\":[{\"name\":\"f\",\"shape\":[2],\"datatype\":\"FP32\","
                       "\"parameters\":{\"binary_data_size\":8}}]}";
    char bin[16] = {0};
    assert_int_equal(decode_bin(f, json, bin, 7), OIP_BAD_REQUEST);
    assert_msg(f, "input 'f': binary_data_size 8 exceeds the 7 bytes of binary data left");
    assert_int_equal(decode_bin(f, json, bin, 9), OIP_BAD_REQUEST);
    assert_msg(f, "9 bytes after the JSON header but the inputs' binary_data_size add up to 8");
    const char *bad = "{\"inputs\":[{\"name\":\"f\",\"shape\":[3],\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":8}}]}";
    assert_int_equal(decode_bin(f, bad, bin, 8), OIP_BAD_REQUEST);
    assert_msg(f, "input 'f': binary_data_size 8 does not match shape [3] of FP32 (12 bytes)");
    const char *plain = "{\"inputs\":[{\"name\":\"f\",\"shape\":[1],\"datatype\":\"INT8\","
                        "\"data\":[1]}]}";
    assert_int_equal(decode_bin(f, plain, bin, 3), OIP_BAD_REQUEST);
    assert_int_equal(decode_bin(f, plain, bin, 0), 0);
    const char *neg = "{\"inputs\":[{\"name\":\"f\",\"shape\":[1],\"datatype\":\"INT8\","
                      "\"parameters\":{\"binary_data_size\":-1}}]}";
    assert_int_equal(decode_bin(f, neg, bin, 0), OIP_BAD_REQUEST);
    assert_msg(f, "binary_data_size must be a non-negative integer");
}

static void test_binary_data_size_needs_the_header(void **state)
{
    fx *f = *state;
    assert_rejected(f,
                    "{\"inputs\":[{\"name\":\"f\",\"shape\":[1],\"datatype\":\"INT8\","
                    "\"parameters\":{\"binary_data_size\":1}}]}",
                    OIP_BAD_REQUEST, "Inference-Header-Content-Length");
    const char *body = "{\"inputs\":[]}";
    assert_int_equal(
        oip_decode_request(f->a, body, strlen(body), strlen(body) + 1, NULL, &f->req, &f->err),
        OIP_BAD_REQUEST);
    assert_msg(f, "larger than the body");
    assert_rejected(f,
                    "{\"inputs\":[{\"name\":\"f\",\"shape\":[1],\"datatype\":\"INT8\","
                    "\"data\":[1],\"parameters\":{\"binary_data_size\":1}}]}",
                    OIP_BAD_REQUEST, "has both 'data' and binary_data_size");
}

static void test_binary_bool_and_bytes_are_validated(void **state)
{
    fx *f = *state;
    const char *b = "{\"inputs\":[{\"name\":\"b\",\"shape\":[2],\"datatype\":\"BOOL\","
                    "\"parameters\":{\"binary_data_size\":2}}]}";
    assert_int_equal(decode_bin(f, b, "\x01\x02", 2), OIP_BAD_REQUEST);
    assert_msg(f, "input 'b': binary BOOL element 1 is 2, not 0 or 1");
    const char *s = "{\"inputs\":[{\"name\":\"s\",\"shape\":[1],\"datatype\":\"BYTES\","
                    "\"parameters\":{\"binary_data_size\":6}}]}";
    assert_int_equal(decode_bin(f, s, "\x09\0\0\0ab", 6), OIP_BAD_REQUEST);
    assert_msg(f, "input 's': binary BYTES data does not hold 1 length-prefixed elements");
    assert_int_equal(decode_bin(f, s, "\x01\0\0\0ab", 6), OIP_BAD_REQUEST);
    assert_int_equal(decode_bin(f, s, "\x02\0\0\0ab", 6), 0);
}

static void test_unknown_fields_are_400(void **state)
{
    fx *f = *state;
    assert_rejected(f, "{\"inputs\":[],\"extra\":1}", OIP_BAD_REQUEST,
                    "unknown field 'extra' in the request");
    assert_rejected(f,
                    "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\","
                    "\"data\":[1],\"dtype\":\"x\"}]}",
                    OIP_BAD_REQUEST, "input 'x': unknown field 'dtype'");
    assert_rejected(f, "{\"inputs\":[],\"inputs\":[]}", OIP_BAD_REQUEST,
                    "duplicate field 'inputs'");
    /* Triton's own examples send these */
    assert_int_equal(decode(f, "{\"model_name\":\"m\",\"model_version\":\"1\",\"inputs\":[]}"), 0);
}

static void test_null_optional_members_count_as_absent(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, "{\"id\":null,\"parameters\":null,\"outputs\":null,\"inputs\":["
                               "{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\","
                               "\"parameters\":null,\"data\":[1]}]}"),
                     0);
    assert_null(f->req.plugin.id);
    assert_null(f->req.plugin.parameters);
    assert_null(f->req.inputs[0].parameters);
    assert_int_equal(f->req.output_count, 0);
    assert_rejected(f, "{\"inputs\":null}", OIP_BAD_REQUEST, "'inputs' must be a JSON array");
    assert_rejected(f,
                    "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\","
                    "\"data\":null}]}",
                    OIP_BAD_REQUEST, "'data' must be a JSON array");
}

static void test_required_fields_are_400(void **state)
{
    fx *f = *state;
    assert_rejected(f, "{}", OIP_BAD_REQUEST, "missing field 'inputs'");
    assert_rejected(f, "{\"inputs\":[{\"shape\":[1],\"datatype\":\"INT8\",\"data\":[1]}]}",
                    OIP_BAD_REQUEST, "inputs[0]: missing or empty 'name'");
    assert_rejected(f, "{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"data\":[1]}]}",
                    OIP_BAD_REQUEST, "input 'x': missing 'shape'");
    assert_rejected(f, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"data\":[1]}]}",
                    OIP_BAD_REQUEST, "input 'x': missing 'datatype'");
    assert_rejected(f, "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\"}]}",
                    OIP_BAD_REQUEST, "input 'x': missing 'data'");
    assert_rejected(f, "{\"inputs\":[{\"name\":\"\",\"shape\":[1],\"datatype\":\"INT8\"}]}",
                    OIP_BAD_REQUEST, "missing or empty 'name'");
    assert_rejected(f, "{\"inputs\":[{\"name\":\"a\\u0000b\"}]}", OIP_BAD_REQUEST, "NUL");
    assert_rejected(f, "{\"inputs\":{}}", OIP_BAD_REQUEST, "'inputs' must be a JSON array");
    assert_rejected(f, "[]", OIP_BAD_REQUEST, "the request body must be a JSON object");
}

static void test_duplicate_input_names_are_400(void **state)
{
    fx *f = *state;
    assert_rejected(
        f,
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[1]},"
        "{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[2]}]}",
        OIP_BAD_REQUEST, "duplicate input 'x'");
}

/* ---- JSON syntax --------------------------------------------------------------------------- */

/* Found by the fuzzer: a syntax error inside "data" must fail the decode even when the element
 * count matches the shape (a loop's "done" result must never be mistaken for an error code). */
static void test_bad_nesting_in_data_with_the_right_count_is_rejected(void **state)
{
    fx *f = *state;
    static const char *bad[] = {
        ("{\"inputs\":[{\"name\":\"x\",\"shape\":[2,2],\"datatype\":\"FP32\","
         "\"data\":[[1.0,2.00,[3.0,4.0]]}]}"),
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,2}]}",
        "{\"parameters\":{\"a\":[1,2},\"inputs\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (decode(f, bad[i]) != OIP_BAD_REQUEST)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(f->err.code, OIP_BAD_REQUEST);
        oip_arena_reset(f->a);
    }
}

static void test_invalid_json_is_400(void **state)
{
    fx *f = *state;
    static const char *bad[] = {
        "{\"inputs\":[]} x",
        "{\"inputs\":[],}",
        "{\"inputs\":[1,]}",
        "{\"id\":\"\\x\",\"inputs\":[]}",
        "{\"id\":\"a\nb\",\"inputs\":[]}",
        "{\"id\":\"\\ud800\",\"inputs\":[]}",
        "{\"id\":\"\\udc00\\ud800\",\"inputs\":[]}",
        "{\"id\":\"\\u12g4\",\"inputs\":[]}",
        "{\"parameters\":{\"a\":01},\"inputs\":[]}",
        "{\"parameters\":{\"a\":tru},\"inputs\":[]}",
        "{\"parameters\":{\"a\":NaN},\"inputs\":[]}",
        "{\"parameters\":{\"a\" 1},\"inputs\":[]}",
        "{\"parameters\":{1:1},\"inputs\":[]}",
        "{'inputs':[]}",
        "{\"inputs\":[]}}",
        "",
        "   ",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1 2]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\",\"data\":[1,,2]}]}",
        "{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[.5]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (decode(f, bad[i]) != OIP_BAD_REQUEST)
            fail_msg("accepted: %s", bad[i]);
        oip_arena_reset(f->a);
    }
}

static void test_every_truncation_of_a_valid_request_is_400(void **state)
{
    fx *f = *state;
    const char *json = "{\"id\":\"\\u00e9\",\"parameters\":{\"p\":[1,{\"q\":\"r\"}]},"
                       "\"inputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"FP32\","
                       "\"data\":[[1.5e3],[-2]]}],\"outputs\":[{\"name\":\"x\"}]}";
    size_t n = strlen(json);
    assert_int_equal(decode(f, json), 0);
    for (size_t i = 0; i < n; i++) {
        char *copy = malloc(i ? i : 1); /* exact size: ASan catches any read past the end */
        memcpy(copy, json, i);
        int rc = oip_decode_request(f->a, copy, i, (size_t)-1, NULL, &f->req, &f->err);
        free(copy);
        if (rc != OIP_BAD_REQUEST)
            fail_msg("prefix of %zu bytes gave %d", i, rc);
        oip_arena_reset(f->a);
    }
}

static void test_escaped_keys_and_whitespace_are_understood(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, " \n{ \"in\\u0070uts\" :\t[ { \"name\" : \"x\" , \"shape\" : [ 2 ] ,"
                               " \"datatype\" : \"INT8\" , \"data\" : [ 1 , [ 2 ] ] } ] }\r\n"),
                     0);
    assert_int_equal(f->req.inputs[0].element_count, 2);
}

/* ---- limits -------------------------------------------------------------------------------- */

static char *nested(const char *head, const char *open, const char *mid, const char *close,
                    const char *tail, int depth)
{
    size_t n = strlen(head) + strlen(tail) + strlen(mid) +
               (size_t)depth * (strlen(open) + strlen(close)) + 1;
    char *s = malloc(n), *p = s;
    p += sprintf(p, "%s", head);
    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", open);
    p += sprintf(p, "%s", mid);
    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", close);
    sprintf(p, "%s", tail);
    return s;
}

static void test_depth_limit_applies_to_parameters_and_data(void **state)
{
    fx *f = *state;
    char *ok = nested("{\"parameters\":{\"a\":", "[", "1", "]", "},\"inputs\":[]}", 29);
    char *deep = nested("{\"parameters\":{\"a\":", "[", "1", "]", "},\"inputs\":[]}", 31);
    assert_int_equal(decode(f, ok), 0);
    assert_int_equal(decode(f, deep), OIP_BAD_REQUEST);
    assert_msg(f, "nesting deeper than 32");
    free(ok);
    free(deep);
    char *data = nested("{\"inputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"INT8\","
                        "\"data\":",
                        "[", "1", "]", "}]}", 30);
    assert_int_equal(decode(f, data), OIP_BAD_REQUEST);
    assert_msg(f, "nesting deeper");
    free(data);
}

static void test_very_deep_nesting_is_refused_without_recursion(void **state)
{
    fx *f = *state;
    oip_limits lim = {.max_elements = 100, .max_depth = UINT32_MAX, .max_tensors = 4};
    char *arr = nested("{\"parameters\":{\"a\":", "[", "", "]", "},\"inputs\":[]}", 200000);
    assert_int_equal(decode_lim(f, arr, &lim), OIP_BAD_REQUEST);
    assert_msg(f, "nesting deeper than 1024");
    free(arr);
    char *obj = nested("{\"parameters\":", "{\"a\":", "1", "}", ",\"inputs\":[]}", 1000);
    assert_int_equal(decode_lim(f, obj, &lim), 0);
    free(obj);
}

static void test_strings_must_be_valid_utf8(void **state)
{
    fx *f = *state;
    assert_int_equal(decode_one(f, "BYTES", "[1]", "[\"caf\xc3\xa9 \xf0\x9f\x98\x80\"]"), 0);
    static const char *const bad[] = {"\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                      "abc\xe2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char data[64];
        snprintf(data, sizeof data, "[\"%s\"]", bad[i]);
        assert_int_equal(decode_one(f, "BYTES", "[1]", data), OIP_BAD_REQUEST);
        assert_msg(f, "UTF-8");
    }
}

static void test_tensor_and_element_limits_are_400(void **state)
{
    fx *f = *state;
    oip_limits lim = {.max_elements = 5, .max_depth = 32, .max_tensors = 2};
    char json[1024];
    snprintf(json, sizeof json, "%s}", three_inputs);
    assert_int_equal(decode_lim(f, json, &lim), OIP_BAD_REQUEST);
    assert_msg(f, "more than 2 inputs");
    assert_int_equal(decode_lim(f,
                                "{\"inputs\":[],\"outputs\":[{\"name\":\"a\"},{\"name\":\"b\"},"
                                "{\"name\":\"c\"}]}",
                                &lim),
                     OIP_BAD_REQUEST);
    assert_msg(f, "more than 2 requested outputs");
    assert_int_equal(
        decode_lim(
            f,
            "{\"inputs\":[{\"name\":\"a\",\"shape\":[3],\"datatype\":\"INT8\",\"data\":"
            "[1,2,3]},{\"name\":\"b\",\"shape\":[3],\"datatype\":\"INT8\",\"data\":[1,2,3]}]}",
            &lim),
        OIP_BAD_REQUEST);
    assert_msg(f, "input 'b': shape [3] makes the request exceed 5 elements");
}

/* ---- oip_check_request --------------------------------------------------------------------- */

static const ds_io_desc model_inputs[] = {
    {.name = "img", .datatype = DS_TYPE_FP32, .rank = 3, .shape = {-1, 2, 2}},
    {.name = "k", .datatype = DS_TYPE_INT64, .rank = 0},
    {.name = "any", .datatype = DS_TYPE_ANY, .rank = -1},
};
static const ds_io_desc model_outputs[] = {
    {.name = "out", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 4}},
    {.name = "label", .datatype = DS_TYPE_BOOL, .rank = 1, .shape = {-1}},
};
static const ds_model_desc model = {
    .struct_size = sizeof(ds_model_desc),
    .platform = "dynserve_c",
    .input_count = 3,
    .inputs = model_inputs,
    .output_count = 2,
    .outputs = model_outputs,
};
static const ds_model_desc dynamic_model = {.struct_size = sizeof(ds_model_desc),
                                            .flags = DS_MODEL_DYNAMIC_IO};

/* A request for `model`: "img" of the given shape and type (filled with ones), "k", "any", then
 * `extra` (the rest of the "inputs" array and more members). */
static int check(fx *f, const char *img_shape, const char *img_type, const char *extra)
{
    char json[1024], data[256] = "[", *end;
    int count = 1;
    for (const char *p = img_shape + 1; *p != '\0' && *p != ']'; p = end + (*end == ',')) {
        count *= (int)strtol(p, &end, 10);
        if (end == p)
            break;
    }
    for (int i = 0; i < count && i < 50; i++)
        strcat(data, i ? ",1" : "1");
    strcat(data, "]");
    snprintf(json, sizeof json,
             "{\"inputs\":[{\"name\":\"img\",\"shape\":%s,\"datatype\":\"%s\",\"data\":%s},"
             "{\"name\":\"k\",\"shape\":[],\"datatype\":\"INT64\",\"data\":[3]},"
             "{\"name\":\"any\",\"shape\":[1,1,1],\"datatype\":\"BYTES\",\"data\":[\"s\"]}%s}",
             img_shape, img_type, data, extra);
    int rc = decode(f, json);
    if (rc != 0)
        fail_msg("decode %s: %s", json, f->err.message);
    return oip_check_request(&f->req, &model, &f->err);
}

static void test_check_request_accepts_variable_dims_and_any(void **state)
{
    fx *f = *state;
    assert_int_equal(check(f, "[3,2,2]", "FP32", "]"), 0);
    assert_int_equal(check(f, "[1,2,2]", "FP32", "],\"outputs\":[{\"name\":\"label\"}]"), 0);
}

static void test_check_request_rejects_wrong_datatype_rank_and_dims(void **state)
{
    fx *f = *state;
    assert_int_equal(check(f, "[3,2,2]", "FP64", "]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'img': datatype FP64 does not match the model's FP32");
    assert_int_equal(check(f, "[3,4]", "FP32", "]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'img': shape [3,4] has rank 2, the model expects [-1,2,2]");
    assert_int_equal(check(f, "[3,2,3]", "FP32", "]"), OIP_BAD_REQUEST);
    assert_msg(f, "input 'img': dimension 2 of shape [3,2,3] must be 2 (model shape [-1,2,2])");
}

static void test_check_request_missing_unexpected_and_duplicate_inputs(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, "{\"inputs\":[{\"name\":\"k\",\"shape\":[],\"datatype\":\"INT64\","
                               "\"data\":[3]}]}"),
                     0);
    assert_int_equal(oip_check_request(&f->req, &model, &f->err), OIP_BAD_REQUEST);
    assert_msg(f, "missing input 'img'");
    assert_int_equal(check(f, "[1,2,2]", "FP32",
                           ",{\"name\":\"zz\",\"shape\":[1],\"datatype\":\"INT8\",\"data\":[1]}]"),
                     OIP_BAD_REQUEST);
    assert_msg(f, "unexpected input 'zz'");
    /* duplicates are caught by the decoder; a request built another way is checked too */
    assert_int_equal(check(f, "[1,2,2]", "FP32", "]"), 0);
    ds_tensor twice[2] = {f->req.inputs[1], f->req.inputs[1]};
    oip_request r = f->req;
    r.inputs = twice;
    r.plugin.inputs = twice;
    r.plugin.input_count = 2;
    assert_int_equal(oip_check_request(&r, &model, &f->err), OIP_BAD_REQUEST);
    assert_msg(f, "duplicate input 'k'");
}

static void test_check_request_unknown_requested_output(void **state)
{
    fx *f = *state;
    assert_int_equal(check(f, "[1,2,2]", "FP32", "],\"outputs\":[{\"name\":\"nope\"}]"),
                     OIP_BAD_REQUEST);
    assert_msg(f, "unknown output 'nope'");
}

static void test_check_request_dynamic_io_accepts_anything(void **state)
{
    fx *f = *state;
    assert_int_equal(decode(f, "{\"inputs\":[{\"name\":\"q\",\"shape\":[1],\"datatype\":\"INT8\","
                               "\"data\":[3]}],\"outputs\":[{\"name\":\"whatever\"}]}"),
                     0);
    assert_int_equal(oip_check_request(&f->req, &dynamic_model, &f->err), 0);
    assert_int_equal(oip_check_request(&f->req, NULL, &f->err), 0);
}

/* ---- output_alloc and oip_check_response --------------------------------------------------- */

static void test_output_alloc_returns_zeroed_aligned_buffers(void **state)
{
    fx *f = *state;
    static const int64_t shape[] = {3, 5};
    ds_error e;
    float *p = oip_output_alloc(&f->resp, "o", DS_TYPE_FP32, 2, shape, 60, &e);
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 16, 0);
    for (int i = 0; i < 15; i++)
        assert_true(p[i] == 0.0f);
    assert_int_equal(f->resp.count, 1);
    assert_int_equal(f->resp.outputs[0].element_count, 15);
    assert_int_equal(f->resp.outputs[0].shape[1], 5);
    char name[16];
    for (int i = 0; i < 40; i++) { /* the output table grows */
        snprintf(name, sizeof name, "o%d", i);
        assert_non_null(oip_output_alloc(&f->resp, name, DS_TYPE_INT8, 0, NULL, 1, &e));
    }
    assert_int_equal(f->resp.count, 41);
    assert_string_equal(f->resp.outputs[40].name, "o39");
}

static void test_output_alloc_rejects_duplicates_and_bad_sizes(void **state)
{
    fx *f = *state;
    static const int64_t shape[] = {2, 3};
    static const int64_t neg[] = {-1};
    ds_error e;
    assert_non_null(oip_output_alloc(&f->resp, "o", DS_TYPE_INT32, 2, shape, 24, &e));
    assert_null(oip_output_alloc(&f->resp, "o", DS_TYPE_INT32, 2, shape, 24, &e));
    assert_int_equal(e.code, DS_ERR_INVALID_ARGUMENT);
    assert_string_equal(e.message, "output 'o' is already allocated");
    assert_null(oip_output_alloc(&f->resp, "p", DS_TYPE_INT32, 2, shape, 20, &e));
    assert_string_equal(e.message,
                        "output 'p': byte_size 20 does not match shape [2,3] of INT32 (24 bytes)");
    assert_null(oip_output_alloc(&f->resp, "p", DS_TYPE_BYTES, 2, shape, 23, &e));
    assert_non_null(strstr(e.message, "cannot hold 6 BYTES elements"));
    assert_non_null(oip_output_alloc(&f->resp, "p", DS_TYPE_BYTES, 2, shape, 24, &e));
    assert_null(oip_output_alloc(&f->resp, "q", DS_TYPE_FP32, 1, neg, 0, &e));
    assert_null(oip_output_alloc(&f->resp, "q", DS_TYPE_ANY, 1, shape, 2, &e));
    assert_null(oip_output_alloc(&f->resp, "q", DS_TYPE_INT8, DS_MAX_RANK + 1, shape, 1, &e));
    assert_null(oip_output_alloc(&f->resp, "", DS_TYPE_INT8, 0, NULL, 1, &e));
    assert_null(oip_output_alloc(&f->resp, NULL, DS_TYPE_INT8, 0, NULL, 1, &e));
    assert_int_equal(f->resp.count, 2);
}

static void alloc_out(fx *f, const char *name, ds_datatype t, int64_t d0, int64_t d1, size_t size,
                      const void *data)
{
    int64_t shape[2] = {d0, d1};
    ds_error e;
    void *p = oip_output_alloc(&f->resp, name, t, d1 < 0 ? 1 : 2, shape, size, &e);
    if (p == NULL)
        fail_msg("%s", e.message);
    memcpy(p, data, size);
}

static void test_check_response_accepts_declared_outputs(void **state)
{
    fx *f = *state;
    static const float out[8] = {0};
    alloc_out(f, "out", DS_TYPE_FP32, 2, 4, sizeof out, out);
    alloc_out(f, "label", DS_TYPE_BOOL, 2, -1, 2, "\x01\x00");
    assert_int_equal(check(f, "[1,2,2]", "FP32", "],\"outputs\":[{\"name\":\"label\"}]"), 0);
    assert_int_equal(oip_check_response(&f->resp, &f->req, &model, &f->err), 0);
}

static void test_check_response_missing_requested_output(void **state)
{
    fx *f = *state;
    static const float out[8] = {0};
    alloc_out(f, "out", DS_TYPE_FP32, 2, 4, sizeof out, out);
    assert_int_equal(check(f, "[1,2,2]", "FP32", "],\"outputs\":[{\"name\":\"label\"}]"), 0);
    assert_int_equal(oip_check_response(&f->resp, &f->req, &model, &f->err), OIP_INTERNAL);
    assert_msg(f, "did not produce requested output 'label'");
    /* a model without declared outputs cannot promise any: the client's mistake */
    assert_int_equal(oip_check_response(&f->resp, &f->req, &dynamic_model, &f->err),
                     OIP_BAD_REQUEST);
}

static void test_check_response_rejects_bad_bytes_prefixes(void **state)
{
    fx *f = *state;
    alloc_out(f, "s", DS_TYPE_BYTES, 2, -1, 10, "\x02\0\0\0hi\x05\0\0\0");
    assert_int_equal(oip_check_response(&f->resp, NULL, &dynamic_model, &f->err), OIP_INTERNAL);
    assert_msg(f, "output 's': BYTES element 1 runs past the end of the buffer");
    oip_response_init(&f->resp, f->a);
    alloc_out(f, "s", DS_TYPE_BYTES, 1, -1, 10, "\x02\0\0\0hi\0\0\0\0");
    assert_int_equal(oip_check_response(&f->resp, NULL, &dynamic_model, &f->err), OIP_INTERNAL);
    assert_msg(f, "BYTES elements end before byte_size 10");
    buf_reset(&f->out);
    assert_int_equal(oip_encode_response(&f->out, "m", "1", NULL, &f->resp, NULL, &f->err),
                     OIP_INTERNAL);
}

static void test_check_response_rejects_bool_other_than_0_1(void **state)
{
    fx *f = *state;
    alloc_out(f, "label", DS_TYPE_BOOL, 3, -1, 3, "\x01\x00\x02");
    assert_int_equal(oip_check_response(&f->resp, NULL, &model, &f->err), OIP_INTERNAL);
    assert_msg(f, "output 'label': BOOL element 2 is 2, not 0 or 1");
}

static void test_check_response_rejects_undeclared_type_and_shape(void **state)
{
    fx *f = *state;
    static const double d8[8] = {0};
    alloc_out(f, "out", DS_TYPE_FP64, 2, 4, sizeof d8, d8);
    assert_int_equal(oip_check_response(&f->resp, NULL, &model, &f->err), OIP_INTERNAL);
    assert_msg(f, "output 'out': datatype FP64 does not match the model's FP32");
    oip_response_init(&f->resp, f->a);
    alloc_out(f, "out", DS_TYPE_FP32, 4, 2, 32, d8);
    assert_int_equal(oip_check_response(&f->resp, NULL, &model, &f->err), OIP_INTERNAL);
    assert_msg(f, "dimension 1 of shape [4,2] must be 4");
    oip_response_init(&f->resp, f->a);
    alloc_out(f, "extra", DS_TYPE_FP32, 1, -1, 4, d8);
    assert_int_equal(oip_check_response(&f->resp, NULL, &model, &f->err), OIP_INTERNAL);
    assert_msg(f, "undeclared output 'extra'");
    assert_int_equal(oip_check_response(&f->resp, NULL, &dynamic_model, &f->err), 0);
}

/* ---- metadata ------------------------------------------------------------------------------ */

static void test_model_metadata_lists_tensors_with_variable_dims(void **state)
{
    fx *f = *state;
    const char *versions[] = {"1", "2"};
    oip_encode_model_metadata(&f->out, "m", versions, 2, &model, NULL);
    assert_string_equal(
        f->out.data,
        "{\"name\":\"m\",\"versions\":[\"1\",\"2\"],\"platform\":\"dynserve_c\",\"inputs\":["
        "{\"name\":\"img\",\"datatype\":\"FP32\",\"shape\":[-1,2,2]},"
        "{\"name\":\"k\",\"datatype\":\"INT64\",\"shape\":[]},"
        "{\"name\":\"any\",\"datatype\":\"ANY\",\"shape\":[-1]}],\"outputs\":["
        "{\"name\":\"out\",\"datatype\":\"FP32\",\"shape\":[-1,4]},"
        "{\"name\":\"label\",\"datatype\":\"BOOL\",\"shape\":[-1]}]}");
    buf_reset(&f->out);
    oip_encode_model_metadata(&f->out, "dyn\"q", NULL, 0, NULL, "onnx");
    assert_string_equal(f->out.data, "{\"name\":\"dyn\\\"q\",\"versions\":[],\"platform\":\"\","
                                     "\"backend\":\"onnx\",\"inputs\":[],\"outputs\":[]}");
}

/* ---- arena --------------------------------------------------------------------------------- */

static void test_arena_aligns_grows_and_resets(void **state)
{
    (void)state;
    oip_arena *a = oip_arena_new();
    for (int round = 0; round < 3; round++) {
        for (int i = 1; i < 2000; i++) {
            unsigned char *p = oip_arena_alloc(a, (size_t)i * 7);
            assert_non_null(p);
            assert_int_equal((uintptr_t)p % 16, 0);
            memset(p, 0xab, (size_t)i * 7);
        }
        unsigned char *big = oip_arena_alloc(a, (size_t)8 << 20);
        assert_non_null(big);
        memset(big, 1, (size_t)8 << 20);
        unsigned char *g = oip_arena_alloc(a, 16);
        memcpy(g, "0123456789abcdef", 16);
        g = oip_arena_grow(a, g, 16, 100000);
        assert_non_null(g);
        assert_memory_equal(g, "0123456789abcdef", 16);
        oip_arena_reset(a);
    }
    assert_null(oip_arena_alloc(a, SIZE_MAX - 3));
    oip_arena_free(a);
}

/* ---- the whole round trip ------------------------------------------------------------------ */

static void test_quadratic_round_trip_4096_elements(void **state)
{
    fx *f = *state;
    ds_buf req = DS_BUF_INIT;
    buf_append_str(&req, "{\"inputs\":[{\"name\":\"input\",\"shape\":[4096,1],\"datatype\":"
                         "\"FP32\",\"data\":[");
    for (int i = 0; i < 4096; i++)
        buf_printf(&req, "%s%.3f", i ? ", " : "", i / 1000.0);
    buf_append_str(&req, "]}]}");
    assert_int_equal(
        oip_decode_request(f->a, req.data, req.len, (size_t)-1, NULL, &f->req, &f->err), 0);
    assert_int_equal(echo(f), 0);
    /* decode the response's data again: the values must be the identical floats */
    const char *data = strstr(f->out.data, "\"data\":[") + 7;
    char *again = malloc(f->out.len + 128);
    sprintf(again,
            "{\"inputs\":[{\"name\":\"input\",\"shape\":[4096,1],\"datatype\":\"FP32\","
            "\"data\":%.*s}]}",
            (int)(strstr(data, "]}") + 1 - data), data);
    const void *first = f->req.inputs[0].data;
    float *copy = malloc(4096 * 4);
    memcpy(copy, first, 4096 * 4);
    assert_int_equal(decode(f, again), 0);
    assert_memory_equal(f->req.inputs[0].data, copy, 4096 * 4);
    free(copy);
    free(again);
    buf_free(&req);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_datatype_names_parse_back),
        T(test_datatype_sizes),
        T(test_unknown_datatype_is_400),
        T(test_bool_accepts_true_false_and_round_trips),
        T(test_bool_rejects_numbers_and_strings),
        T(test_uint8_accepts_0_to_255_and_rejects_300_and_minus_1),
        T(test_uint16_uint32_uint64_limits),
        T(test_signed_integer_limits),
        T(test_int64_is_exact_not_through_double),
        T(test_integers_reject_fraction_exponent_bool_string),
        T(test_fp32_decodes_nearest_float_and_prints_shortest),
        T(test_fp32_rejects_out_of_range_and_strings),
        T(test_fp64_decodes_exactly_and_prints_shortest),
        T(test_nan_and_infinity_tokens_for_float_types),
        T(test_fp16_every_value_round_trips_through_json),
        T(test_fp16_rounds_to_nearest_even),
        T(test_fp16_conversion_of_specials_and_subnormals),
        T(test_bytes_decode_escapes_to_utf8_and_round_trip),
        T(test_bytes_rejects_numbers),
        T(test_every_datatype_encodes_as_json),
        T(test_float_format_integral_exponent_and_specials),
        T(test_float_printing_is_shortest_and_round_trips),
        T(test_number_parsing_matches_strtod),
        T(test_number_scanner_follows_json_grammar),
        T(test_zero_sized_dim_is_an_empty_tensor),
        T(test_rank_zero_scalar_has_one_element),
        T(test_huge_dims_overflow_and_limit),
        T(test_data_count_must_match_shape),
        T(test_shape_must_be_non_negative_integers_up_to_rank_8),
        T(test_nested_data_equals_flat_data),
        T(test_members_in_any_order),
        T(test_id_is_echoed_and_absent_without_one),
        T(test_parameters_pass_through_as_raw_json),
        T(test_requested_outputs_limit_and_order_the_response),
        T(test_requested_output_twice_or_without_name_is_400),
        T(test_requested_output_not_produced_is_500_at_encode),
        T(test_binary_data_output_sends_every_output_in_binary),
        T(test_large_binary_outputs_are_recorded_as_spans_not_copied),
        T(test_binary_data_per_output_overrides_request_default),
        T(test_binary_inputs_follow_the_json_header),
        T(test_an_aligned_binary_input_is_used_in_place_else_copied),
        T(test_every_datatype_round_trips_in_binary),
        T(test_binary_sizes_must_add_up),
        T(test_binary_data_size_needs_the_header),
        T(test_binary_bool_and_bytes_are_validated),
        T(test_unknown_fields_are_400),
        T(test_null_optional_members_count_as_absent),
        T(test_required_fields_are_400),
        T(test_duplicate_input_names_are_400),
        T(test_invalid_json_is_400),
        T(test_bad_nesting_in_data_with_the_right_count_is_rejected),
        T(test_every_truncation_of_a_valid_request_is_400),
        T(test_escaped_keys_and_whitespace_are_understood),
        T(test_depth_limit_applies_to_parameters_and_data),
        T(test_very_deep_nesting_is_refused_without_recursion),
        T(test_strings_must_be_valid_utf8),
        T(test_tensor_and_element_limits_are_400),
        T(test_check_request_accepts_variable_dims_and_any),
        T(test_check_request_rejects_wrong_datatype_rank_and_dims),
        T(test_check_request_missing_unexpected_and_duplicate_inputs),
        T(test_check_request_unknown_requested_output),
        T(test_check_request_dynamic_io_accepts_anything),
        T(test_output_alloc_returns_zeroed_aligned_buffers),
        T(test_output_alloc_rejects_duplicates_and_bad_sizes),
        T(test_check_response_accepts_declared_outputs),
        T(test_check_response_missing_requested_output),
        T(test_check_response_rejects_bad_bytes_prefixes),
        T(test_check_response_rejects_bool_other_than_0_1),
        T(test_check_response_rejects_undeclared_type_and_shape),
        T(test_model_metadata_lists_tensors_with_variable_dims),
        T(test_arena_aligns_grows_and_resets),
        T(test_quadratic_round_trip_4096_elements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
