/*
 * oip num: numbers for the OIP codec — JSON number scanning, correctly rounded decimal -> binary
 * conversion for binary64/32/16, shortest round-trip printing, binary16 conversions, integers.
 *
 * Parsing. oip_num_scan() keeps the first 19 significant digits as an integer w and a decimal
 * exponent q. Conversion then tries, in order:
 *   1. Clinger's fast path: w and 10^|q| are exact in the target's arithmetic, so one correctly
 *      rounded multiply or divide gives the answer (most hand-written and short numbers);
 *   2. a 128-bit multiply by a truncated power of ten (Eisel-Lemire style, see dec_to_bin): the
 *      error is one-sided and below 2^64 in a 192-bit product, so the rounding decision is exact
 *      unless a carry could reach the rounding bit, which it detects;
 *   3. strtod_l/strtof_l in the "C" locale (more than 19 digits that 2. cannot settle, or the rare
 *      undecidable carry), so the server's locale can never turn "1.5" into 1.
 * binary16 uses the same exact step 2 with an 11-bit significand; only when it has to fall back
 * does it round twice (decimal -> binary64 -> binary16), like numpy's float16(float(s)).
 *
 * Printing. Schubfach (R. Giulietti, "The Schubfach way to render doubles", 2020; structure as in
 * A. Bolz's C++ port): the shortest decimal in the rounding interval of the value, closest to it
 * when several are equally short. binary64 uses 128-bit powers of ten (oip_pow10.h), binary32 and
 * binary16 the upper 64 bits of the same table. The output parses back to the identical value.
 */
#include "oip_internal.h"
#include "oip_pow10.h"

#include <float.h>
#include <locale.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

__extension__ typedef unsigned __int128 oip_u128;

static inline bool num_is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

/* ---- scanning ------------------------------------------------------------------------------ */

/* Digits of the integer part: all significant (JSON forbids leading zeros). */
static const char *scan_int_part(const char *p, const char *end, uint64_t *w, int *nd, int64_t *e,
                                 bool *inexact)
{
    do {
        unsigned d = (unsigned)(*p - '0');
        if (*nd < 19) {
            *w = *w * 10 + d;
            (*nd)++;
        } else {
            (*e)++;
            *inexact |= d != 0;
        }
        p++;
    } while (p < end && num_is_digit(*p));
    return p;
}

/* Digits of the fraction: leading zeros only move the exponent. */
static const char *scan_fraction(const char *p, const char *end, uint64_t *w, int *nd, int64_t *e,
                                 bool *inexact)
{
    do {
        unsigned d = (unsigned)(*p - '0');
        if (*nd < 19) {
            if (*w != 0 || d != 0) {
                *w = *w * 10 + d;
                (*nd)++;
            }
            (*e)--;
        } else {
            *inexact |= d != 0;
        }
        p++;
    } while (p < end && num_is_digit(*p));
    return p;
}

/* The exponent's digits saturate at 10^6: anything beyond is 0 or infinity for every type. */
static const char *scan_exponent(const char *p, const char *end, int64_t *e)
{
    bool neg = false;
    if (p < end && (*p == '+' || *p == '-'))
        neg = *p++ == '-';
    if (p == end || !num_is_digit(*p))
        return NULL;
    int64_t x = 0;
    do {
        if (x < 1000000)
            x = x * 10 + (*p - '0');
        p++;
    } while (p < end && num_is_digit(*p));
    *e += neg ? -x : x;
    return p;
}

size_t oip_num_scan(const char *p, const char *end, oip_num *n)
{
    const char *start = p;
    uint64_t w = 0;
    int64_t e = 0;
    int nd = 0;
    bool inexact = false;
    n->neg = false;
    n->integral = true;
    if (p < end && *p == '-') {
        n->neg = true;
        p++;
    }
    if (p == end)
        return 0;
    if (*p == '0')
        p++;
    else if (num_is_digit(*p))
        p = scan_int_part(p, end, &w, &nd, &e, &inexact);
    else
        return 0;
    if (p < end && *p == '.') {
        n->integral = false;
        if (++p == end || !num_is_digit(*p))
            return 0;
        p = scan_fraction(p, end, &w, &nd, &e, &inexact);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        n->integral = false;
        p = scan_exponent(p + 1, end, &e);
        if (p == NULL)
            return 0;
    }
    n->mant = w;
    n->exp10 = e;
    n->inexact = inexact;
    return (size_t)(p - start);
}

/* ---- decimal -> binary --------------------------------------------------------------------- */

/* floor(x / 2^n) without relying on the implementation-defined shift of negative numbers. */
static inline int32_t floor_div_pow2(int32_t x, int n)
{
    return x >= 0 ? x >> n : ~(~x >> n);
}

/* floor(log2(10^q)) for |q| <= 1233. */
static inline int32_t floor_log2_pow10(int32_t q)
{
    return floor_div_pow2(q * 1741647, 19);
}

/* A binary floating-point format: significand bits (with the hidden one), exponent bias, and the
 * all-ones exponent field (inf/NaN). */
typedef struct num_format {
    int p;
    int bias;
    int emax;
} num_format;

static const num_format fmt_b64 = {53, 1023, 2047};
static const num_format fmt_b32 = {24, 127, 255};
static const num_format fmt_b16 = {11, 15, 31};

enum { DEC_OK, DEC_OVERFLOW, DEC_AMBIGUOUS };

/* The magnitude bits of w * 10^q (w < 2^64) rounded to nearest even in format f.
 * With F = floor(10^q / 2^r) from the table (2^127 <= F < 2^128), the exact product V = w * 10^q
 * / 2^r (after normalising w) satisfies P <= V < P + w < P + 2^64, where P = w * F is computed
 * exactly in 192 bits. F is exact for 0 <= q <= 55 (then V == P). Otherwise V > P, so the bits
 * below the rounding bit are nonzero (sticky), and the rounding bit of V equals that of P unless
 * the bits between 2^64 and the rounding bit are all ones (a carry might reach it): then it
 * answers DEC_AMBIGUOUS and the caller falls back. A tie in V shows up exactly as that case. */
static int dec_to_bin(uint64_t w, int64_t q, num_format f, uint64_t *bits)
{
    if (w == 0 || q < OIP_POW10_QMIN) {
        *bits = 0; /* w * 10^q < 10^-323: below half the smallest binary64 subnormal */
        return DEC_OK;
    }
    if (q > 308)
        return DEC_OVERFLOW;
    int lz = __builtin_clzll(w);
    const uint64_t *t = oip_pow10_tab[q - OIP_POW10_QMIN];
    oip_u128 lo = (oip_u128)(w << lz) * t[1];
    oip_u128 hi = (oip_u128)(w << lz) * t[0] + (uint64_t)(lo >> 64);
    uint64_t p0 = (uint64_t)lo, p1 = (uint64_t)hi, p2 = (uint64_t)(hi >> 64);
    int hb = 190 + (int)(p2 >> 63);                                      /* top bit of P */
    int64_t e = hb + (floor_log2_pow10((int32_t)q) - 127) - lz + f.bias; /* biased, if normal */
    int64_t sh = hb - (f.p - 1) + (e < 1 ? 1 - e : 0) - 128; /* shift within p2, >= 10 */
    if (sh > 64) {
        *bits = 0; /* the rounding bit would lie above P: less than half a subnormal */
        return DEC_OK;
    }
    uint64_t m = sh == 64 ? 0 : p2 >> sh;
    uint64_t below_mask = (UINT64_C(1) << (sh - 1)) - 1;
    uint64_t round = (p2 >> (sh - 1)) & 1, below = p2 & below_mask;
    bool sticky = true;
    if (q >= 0 && q <= 55)
        sticky = (below | p1 | p0) != 0;
    else if (p1 == UINT64_MAX && below == below_mask)
        return DEC_AMBIGUOUS;
    if (round && (sticky || (m & 1)))
        m++;
    /* (e - 1) << (p - 1) plus a significand with its hidden bit is the encoding; a carry out of
     * the significand moves into the exponent by itself. */
    uint64_t b = e >= 1 ? ((uint64_t)(e - 1) << (f.p - 1)) + m : m;
    if (b >= (uint64_t)f.emax << (f.p - 1))
        return DEC_OVERFLOW;
    *bits = b;
    return DEC_OK;
}

/* Step 2 for a scanned number: with more than 19 digits the true value lies strictly between
 * w and w + 1 (times 10^q); when both round to the same value, that is the answer. */
static int dec_to_bin_num(const oip_num *n, num_format f, uint64_t *bits)
{
    int rc = dec_to_bin(n->mant, n->exp10, f, bits);
    if (!n->inexact || rc == DEC_AMBIGUOUS)
        return rc;
    uint64_t up = 0;
    int rc_up = dec_to_bin(n->mant + 1, n->exp10, f, &up);
    if (rc != rc_up || (rc == DEC_OK && up != *bits))
        return DEC_AMBIGUOUS;
    return rc;
}

static pthread_once_t num_locale_once = PTHREAD_ONCE_INIT;
static locale_t num_c_locale;

static void num_locale_init(void)
{
    num_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Step 3: the C library on a NUL-terminated copy (the token may end at the end of the body, and a
 * following byte such as 'x' in "0x1" must not extend it). Returns false when memory runs out. */
static bool num_slow(const char *text, size_t len, bool single, double *d, float *fl)
{
    char small[96];
    char *buf = len < sizeof small ? small : malloc(len + 1);
    if (buf == NULL)
        return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    pthread_once(&num_locale_once, num_locale_init);
    if (single)
        *fl = num_c_locale ? strtof_l(buf, NULL, num_c_locale) : strtof(buf, NULL);
    else
        *d = num_c_locale ? strtod_l(buf, NULL, num_c_locale) : strtod(buf, NULL);
    if (buf != small)
        free(buf);
    return true;
}

static const double num_pow10_f64[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                         1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                         1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
static const float num_pow10_f32[11] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                        1e6f, 1e7f, 1e8f, 1e9f, 1e10f};

int oip_num_to_f64(const oip_num *n, const char *text, size_t len, double *out)
{
#if FLT_EVAL_METHOD == 0
    if (!n->inexact && n->mant <= (UINT64_C(1) << 53) && n->exp10 >= -22 && n->exp10 <= 22) {
        double d = (double)n->mant;
        d = n->exp10 < 0 ? d / num_pow10_f64[-n->exp10] : d * num_pow10_f64[n->exp10];
        *out = n->neg ? -d : d;
        return 0;
    }
#endif
    uint64_t bits = 0;
    int rc = dec_to_bin_num(n, fmt_b64, &bits);
    if (rc == DEC_OVERFLOW)
        return -1;
    if (rc == DEC_OK) {
        bits |= (uint64_t)n->neg << 63;
        memcpy(out, &bits, sizeof *out);
        return 0;
    }
    double d = 0;
    if (!num_slow(text, len, false, &d, NULL))
        return -1;
    *out = d;
    return (d > DBL_MAX || d < -DBL_MAX) ? -1 : 0;
}

int oip_num_to_f32(const oip_num *n, const char *text, size_t len, float *out)
{
#if FLT_EVAL_METHOD == 0
    if (!n->inexact && n->mant <= (UINT64_C(1) << 24) && n->exp10 >= -10 && n->exp10 <= 10) {
        float f = (float)n->mant;
        f = n->exp10 < 0 ? f / num_pow10_f32[-n->exp10] : f * num_pow10_f32[n->exp10];
        *out = n->neg ? -f : f;
        return 0;
    }
#endif
    uint64_t bits = 0;
    int rc = dec_to_bin_num(n, fmt_b32, &bits);
    if (rc == DEC_OVERFLOW)
        return -1;
    if (rc == DEC_OK) {
        uint32_t b = (uint32_t)bits | (uint32_t)n->neg << 31;
        memcpy(out, &b, sizeof *out);
        return 0;
    }
    float f = 0;
    if (!num_slow(text, len, true, NULL, &f))
        return -1;
    *out = f;
    return (f > FLT_MAX || f < -FLT_MAX) ? -1 : 0;
}

int oip_num_to_f16(const oip_num *n, const char *text, size_t len, uint16_t *out)
{
    uint64_t bits = 0;
    int rc = dec_to_bin_num(n, fmt_b16, &bits);
    if (rc == DEC_OVERFLOW)
        return -1;
    if (rc == DEC_OK) {
        *out = (uint16_t)(bits | (uint64_t)n->neg << 15);
        return 0;
    }
    double d = 0;
    if (!num_slow(text, len, false, &d, NULL))
        return -1;
    *out = oip_f64_to_f16(d);
    return (*out & 0x7fffu) == 0x7c00u ? -1 : 0;
}

/* ---- integers ------------------------------------------------------------------------------ */

/* 20 or more digits: only UINT64 values from 10^19 to 2^64-1 fit anything. */
static int num_long_u64(const char *text, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(text[i] - '0');
        if (d > 9 || v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int oip_num_to_u64(const oip_num *n, const char *text, size_t len, uint64_t *out)
{
    if (!n->integral)
        return -1;
    if (n->exp10 != 0 || n->inexact) /* 20+ digits */
        return n->neg ? -1 : num_long_u64(text, len, out);
    if (n->neg && n->mant != 0)
        return -1;
    *out = n->mant;
    return 0;
}

int oip_num_to_i64(const oip_num *n, const char *text, size_t len, int64_t *out)
{
    (void)text;
    (void)len;
    if (!n->integral || n->exp10 != 0 || n->inexact) /* 20+ digits never fit */
        return -1;
    if (n->neg) {
        if (n->mant > (uint64_t)INT64_MAX + 1)
            return -1;
        *out = n->mant == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n->mant;
        return 0;
    }
    if (n->mant > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)n->mant;
    return 0;
}

/* ---- binary16 ------------------------------------------------------------------------------ */

/* Round m >> shift to nearest even (1 <= shift <= 63). */
static uint64_t num_round_shift(uint64_t m, int shift)
{
    uint64_t q = m >> shift, rem = m & ((UINT64_C(1) << shift) - 1);
    uint64_t half = UINT64_C(1) << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t oip_f64_to_f16(double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 48) & 0x8000u);
    int ie = (int)((bits >> 52) & 0x7ff);
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    if (ie == 0x7ff) /* keep NaN quiet and nonzero, keep the top payload bits */
        return (uint16_t)(sign | 0x7c00u | (frac ? 0x200u | (frac >> 42) : 0));
    int e = ie - 1023;
    if (ie == 0 || e < -25) /* below half the smallest binary16 subnormal (2^-24) */
        return sign;
    if (e > 15)
        return (uint16_t)(sign | 0x7c00u);
    uint64_t m = frac | (UINT64_C(1) << 52);
    if (e >= -14) /* normal: 11 significant bits; a carry moves into the exponent (or to inf) */
        return (uint16_t)(sign + ((uint64_t)(e + 14) << 10) + num_round_shift(m, 42));
    return (uint16_t)(sign | num_round_shift(m, 28 - e)); /* subnormal: value = m * 2^(e-52) */
}

float oip_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t bits;
    if (e == 0x1f)
        bits = sign | 0x7f800000u | (m << 13);
    else if (e != 0)
        bits = sign | ((e + 112) << 23) | (m << 13);
    else {
        float f = (float)m * 0x1p-24f; /* subnormal (or zero), exact */
        return sign ? -f : f;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* ---- Schubfach: binary -> shortest decimal ------------------------------------------------- */

typedef struct num_decimal {
    uint64_t digits; /* significand, may end in zeros */
    int32_t exp10;
} num_decimal;

static inline bool pow10_exact(int32_t k)
{
    return k >= 0 && k <= 55;
}

/* Schubfach's round-to-odd of g * cp / 2^128 (2^96 for the 32-bit variant): the integer part,
 * with its lowest bit forced to 1 when the discarded fraction is not (close to) zero. g is rounded
 * up, so a fraction of at most 1 ulp of the next word still counts as zero. */
static inline uint64_t num_rto64(uint64_t ghi, uint64_t glo, uint64_t cp)
{
    oip_u128 x = (oip_u128)glo * cp;
    oip_u128 y = (oip_u128)ghi * cp + (uint64_t)(x >> 64);
    return (uint64_t)(y >> 64) | ((uint64_t)y > 1);
}

static inline uint32_t num_rto32(uint64_t g, uint32_t cp)
{
    oip_u128 p = (oip_u128)g * cp;
    uint32_t y1 = (uint32_t)(uint64_t)(p >> 64);
    uint32_t y0 = (uint32_t)((uint64_t)p >> 32);
    return y1 | (y0 > 1);
}

/* Value c * 2^q (c > 0). `closer`: the lower neighbour is half as far (c is a power of two that
 * is not the smallest normal). */
static num_decimal schubfach64(uint64_t c, int32_t q, bool closer)
{
    bool odd = (c & 1) != 0;
    uint64_t cbl = 4 * c - 2 + closer, cb = 4 * c, cbr = 4 * c + 2;
    int32_t k = floor_div_pow2(q * 1262611 - (closer ? 524031 : 0), 22);
    int32_t h = q + floor_log2_pow10(-k) + 1; /* 1..4 */
    const uint64_t *t = oip_pow10_tab[-k - OIP_POW10_QMIN];
    uint64_t ghi = t[0], glo = t[1];
    if (!pow10_exact(-k) && ++glo == 0) /* ceil(10^-k / 2^r) */
        ghi++;
    uint64_t vbl = num_rto64(ghi, glo, cbl << h);
    uint64_t vb = num_rto64(ghi, glo, cb << h);
    uint64_t vbr = num_rto64(ghi, glo, cbr << h);
    uint64_t lower = vbl + odd, upper = vbr - odd;
    uint64_t s = vb / 4;
    if (s >= 10) { /* one digit shorter? */
        uint64_t sp = s / 10;
        bool up_in = lower <= 40 * sp, wp_in = 40 * sp + 40 <= upper;
        if (up_in != wp_in)
            return (num_decimal){sp + wp_in, k + 1};
    }
    bool u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
    if (u_in != w_in)
        return (num_decimal){s + w_in, k};
    uint64_t mid = 4 * s + 2;
    bool up = vb > mid || (vb == mid && (s & 1) != 0);
    return (num_decimal){s + up, k};
}

/* Same for significands below 2^30 (binary32, binary16) with 64-bit powers of ten. */
static num_decimal schubfach32(uint32_t c, int32_t q, bool closer)
{
    bool odd = (c & 1) != 0;
    uint32_t cbl = 4 * c - 2 + closer, cb = 4 * c, cbr = 4 * c + 2;
    int32_t k = floor_div_pow2(q * 1262611 - (closer ? 524031 : 0), 22);
    int32_t h = q + floor_log2_pow10(-k) + 1;
    const uint64_t *t = oip_pow10_tab[-k - OIP_POW10_QMIN];
    uint64_t g = t[0] + !(pow10_exact(-k) && t[1] == 0); /* ceil(10^-k / 2^(r+64)) */
    uint32_t vbl = num_rto32(g, cbl << h);
    uint32_t vb = num_rto32(g, cb << h);
    uint32_t vbr = num_rto32(g, cbr << h);
    uint32_t lower = vbl + odd, upper = vbr - odd;
    uint32_t s = vb / 4;
    if (s >= 10) {
        uint32_t sp = s / 10;
        bool up_in = lower <= 40 * sp, wp_in = 40 * sp + 40 <= upper;
        if (up_in != wp_in)
            return (num_decimal){sp + wp_in, k + 1};
    }
    bool u_in = lower <= 4 * s, w_in = 4 * s + 4 <= upper;
    if (u_in != w_in)
        return (num_decimal){s + w_in, k};
    uint32_t mid = 4 * s + 2;
    bool up = vb > mid || (vb == mid && (s & 1) != 0);
    return (num_decimal){s + up, k};
}

/* IEEE fields -> shortest decimal, for a format with p significand bits and the given bias
 * (exponent of the least significant significand bit is field - bias). Nonzero, finite. */
static num_decimal num_to_decimal(uint64_t frac, uint32_t field, int p, int32_t bias)
{
    uint64_t c = frac;
    int32_t q = 1 - bias;
    if (field != 0) {
        c |= UINT64_C(1) << (p - 1);
        q = (int32_t)field - bias;
        /* small integers: exact, and Schubfach would not strip their zeros anyway */
        if (q <= 0 && -q < p && (c & ((UINT64_C(1) << -q) - 1)) == 0)
            return (num_decimal){c >> -q, 0};
    }
    bool closer = frac == 0 && field > 1;
    return p > 30 ? schubfach64(c, q, closer) : schubfach32((uint32_t)c, q, closer);
}

/* ---- text ---------------------------------------------------------------------------------- */

static const char num_digit_pairs[201] = "00010203040506070809"
                                         "10111213141516171819"
                                         "20212223242526272829"
                                         "30313233343536373839"
                                         "40414243444546474849"
                                         "50515253545556575859"
                                         "60616263646566676869"
                                         "70717273747576777879"
                                         "80818283848586878889"
                                         "90919293949596979899";

static const uint64_t num_pow10_u64[20] = {1,
                                           10,
                                           100,
                                           1000,
                                           10000,
                                           100000,
                                           1000000,
                                           10000000,
                                           100000000,
                                           1000000000,
                                           10000000000,
                                           100000000000,
                                           1000000000000,
                                           10000000000000,
                                           100000000000000,
                                           1000000000000000,
                                           10000000000000000,
                                           100000000000000000,
                                           1000000000000000000,
                                           10000000000000000000u};

static int num_ndigits(uint64_t v)
{
    v |= 1;                                           /* same digit count, and 0 has one digit */
    int n = ((64 - __builtin_clzll(v)) * 1233) >> 12; /* floor(log10(v)) or one less */
    return n + (n < 20 && v >= num_pow10_u64[n]);
}

/* Write the n decimal digits of v into dst[0..n). */
static void num_put_digits(char *dst, uint64_t v, int n)
{
    char *o = dst + n;
    while (v >= 100) {
        o -= 2;
        memcpy(o, &num_digit_pairs[2 * (v % 100)], 2);
        v /= 100;
    }
    if (v >= 10) {
        o -= 2;
        memcpy(o, &num_digit_pairs[2 * v], 2);
    } else {
        *--o = (char)('0' + v);
    }
}

size_t oip_fmt_u64(char *dst, uint64_t v)
{
    int n = num_ndigits(v);
    num_put_digits(dst, v, n);
    return (size_t)n;
}

size_t oip_fmt_i64(char *dst, int64_t v)
{
    if (v >= 0)
        return oip_fmt_u64(dst, (uint64_t)v);
    dst[0] = '-';
    return 1 + oip_fmt_u64(dst + 1, 0 - (uint64_t)v);
}

/* digits * 10^e10 as fixed notation for 1e-4 <= |v| < 1e16 (like Python's repr, and always with
 * a '.' so integral floats read as floats: "6.0"), else as "d.ddde-7". */
static size_t num_fmt_decimal(char *dst, bool neg, uint64_t d, int32_t e)
{
    char *o = dst, tmp[24];
    if (neg)
        *o++ = '-';
    while (d != 0 && d % 10 == 0) { /* d is never 0 here; the test keeps the loop finite */
        d /= 10;
        e++;
    }
    int n = num_ndigits(d);
    num_put_digits(tmp, d, n);
    int x = n + e - 1; /* scientific exponent */
    if (x >= -4 && x < 16) {
        if (e >= 0) {
            memcpy(o, tmp, (size_t)n);
            memset(o + n, '0', (size_t)e);
            o += n + e;
            memcpy(o, ".0", 2);
            o += 2;
        } else if (x >= 0) {
            memcpy(o, tmp, (size_t)x + 1);
            o[x + 1] = '.';
            memcpy(o + x + 2, tmp + x + 1, (size_t)(n - x - 1));
            o += n + 1;
        } else {
            memcpy(o, "0.0000", (size_t)(1 - x));
            memcpy(o + 1 - x, tmp, (size_t)n);
            o += 1 - x + n;
        }
        return (size_t)(o - dst);
    }
    *o++ = tmp[0];
    if (n > 1) {
        *o++ = '.';
        memcpy(o, tmp + 1, (size_t)n - 1);
        o += n - 1;
    }
    *o++ = 'e';
    if (x < 0) {
        *o++ = '-';
        x = -x;
    }
    o += oip_fmt_u64(o, (uint64_t)x);
    return (size_t)(o - dst);
}

/* NaN, Infinity, -Infinity, 0.0, -0.0. JSON has no NaN or infinity; Triton writes these bare
 * tokens (rapidjson kWriteNanAndInfFlag) and Python's json reads them, so we do the same. */
static size_t num_fmt_special(char *dst, bool neg, bool nan, bool zero)
{
    const char *s = nan ? "NaN" : zero ? (neg ? "-0.0" : "0.0") : neg ? "-Infinity" : "Infinity";
    size_t n = strlen(s);
    memcpy(dst, s, n);
    return n;
}

size_t oip_fmt_f64(char *dst, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 63;
    uint32_t field = (uint32_t)(bits >> 52) & 0x7ffu;
    uint64_t frac = bits & ((UINT64_C(1) << 52) - 1);
    if (field == 0x7ff || (field == 0 && frac == 0))
        return num_fmt_special(dst, neg, field == 0x7ff && frac != 0, field == 0);
    num_decimal r = num_to_decimal(frac, field, 53, 1075);
    return num_fmt_decimal(dst, neg, r.digits, r.exp10);
}

size_t oip_fmt_f32(char *dst, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    bool neg = bits >> 31;
    uint32_t field = (bits >> 23) & 0xffu, frac = bits & 0x7fffffu;
    if (field == 0xff || (field == 0 && frac == 0))
        return num_fmt_special(dst, neg, field == 0xff && frac != 0, field == 0);
    num_decimal r = num_to_decimal(frac, field, 24, 150);
    return num_fmt_decimal(dst, neg, r.digits, r.exp10);
}

size_t oip_fmt_f16(char *dst, uint16_t h)
{
    bool neg = h >> 15;
    uint32_t field = (h >> 10) & 0x1fu, frac = h & 0x3ffu;
    if (field == 0x1f || (field == 0 && frac == 0))
        return num_fmt_special(dst, neg, field == 0x1f && frac != 0, field == 0);
    num_decimal r = num_to_decimal(frac, field, 11, 25);
    return num_fmt_decimal(dst, neg, r.digits, r.exp10);
}
