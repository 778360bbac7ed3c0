/*
 * oip_internal: what the files of the oip module share and nobody else uses.
 *
 * Leaves (use nothing but each other's declarations below):
 *   arena.c   the bump allocator;
 *   types.c   errors, datatypes, shapes, element counts, BYTES layout, output lookup;
 *   text.c    UTF-8 validation;
 *   num.c     numbers: exact decimal -> binary64/32/16 parsing, shortest round-trip printing
 *             (Schubfach), binary16 conversions, integer printing (tables in oip_pow10.h).
 * On top of the leaves, never on each other:
 *   decode.c  the request decoder: a hand-written single-pass JSON scanner that decodes tensor
 *             data straight into typed arena buffers (no DOM, no malloc per element); its
 *             scanner is decode_scan.c and its binary extension decode_binary.c (they share
 *             decode_internal.h);
 *   check.c   request and plugin-output checks against the model, output_alloc;
 *   encode.c  response and model-metadata encoding.
 *
 * Private to src/oip/ (and its unit test and fuzzer, which reach the leaves); not part of oip.h.
 */
#ifndef DS_OIP_INTERNAL_H
#define DS_OIP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "oip.h"

/* Hard cap on JSON nesting whatever oip_limits says: the generic value skipper keeps one bit per
 * open level on the stack. */
#define OIP_DEPTH_CAP 1024

/* ---- arena (arena.c) ------------------------------------------------------------------------- */

/* Resize the allocation p (old bytes) to new_size bytes, in place when p is the most recent
 * allocation and its chunk has room, else by copying. The old block is not reused. NULL when
 * memory runs out (p stays valid). Lives until the next reset, like every arena block. */
void *oip_arena_grow(oip_arena *a, void *p, size_t old_size, size_t new_size);

/* Copy n bytes and a NUL into the arena; NULL when memory runs out. */
char *oip_arena_strndup(oip_arena *a, const char *s, size_t n);

/* ---- shared helpers (types.c) -------------------------------------------------------------- */

/* Fill err (message truncated to fit) and return code. */
int oip_errorf(oip_error *err, oip_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "[2,3]" into buf (truncated with "..." when it does not fit); returns buf. */
const char *oip_shape_str(char *buf, size_t cap, const int64_t *shape, uint32_t rank);

/* Product of the dims into *count; false when a dim is negative or the product overflows (a zero
 * dim makes the product 0 whatever the other dims are). */
bool oip_element_count(const int64_t *shape, uint32_t rank, uint64_t *count);

/* Check a BYTES buffer: exactly `count` elements (4-byte little-endian length + bytes) filling
 * `size` bytes. On failure *bad is the index of the first element that does not fit (== count
 * when bytes are left over) and false is returned. */
bool oip_bytes_valid(const unsigned char *p, size_t size, uint64_t count, uint64_t *bad);

/* The output called `name`, or NULL. */
const oip_output *oip_output_find(const oip_response *resp, const char *name);

/* ---- numbers (num.c) ---------------------------------------------------------------------- */

/* A JSON number as scanned: value = (neg ? -1 : 1) * mant * 10^exp10 when !inexact. */
typedef struct oip_num {
    uint64_t mant; /* the first (at most 19) significant decimal digits */
    int64_t exp10; /* decimal exponent of the last digit kept in mant */
    bool neg;      /* leading '-' */
    bool inexact;  /* nonzero digits beyond the 19th were dropped */
    bool integral; /* written without '.' and without an exponent */
} oip_num;

/* Scan the JSON number grammar at p (p < end). Returns the number of bytes it spans, or 0 when p
 * does not start a valid JSON number. Reads nothing at or past end. */
size_t oip_num_scan(const char *p, const char *end, oip_num *n);

/* Convert a scanned number (`text`/`len` is its source, used by the slow path) to the nearest
 * binary64 / binary32 / binary16, ties to even. Return 0, or -1 when a finite literal is too large
 * for the type (it would round to infinity). */
int oip_num_to_f64(const oip_num *n, const char *text, size_t len, double *out);
int oip_num_to_f32(const oip_num *n, const char *text, size_t len, float *out);
int oip_num_to_f16(const oip_num *n, const char *text, size_t len, uint16_t *out);

/* Exact integer value of an integral scanned number. Return 0, or -1 when it is not integral or
 * does not fit (u64: 0..UINT64_MAX, "-0" allowed; i64: INT64_MIN..INT64_MAX). */
int oip_num_to_u64(const oip_num *n, const char *text, size_t len, uint64_t *out);
int oip_num_to_i64(const oip_num *n, const char *text, size_t len, int64_t *out);

/* IEEE-754 binary16 <-> wider, round to nearest even; NaN stays NaN, overflow becomes inf. */
uint16_t oip_f64_to_f16(double d);
float oip_f16_to_f32(uint16_t h);

/* Printers: write at most OIP_FMT_MAX bytes (no NUL) and return how many. Floats print the
 * shortest decimal that parses back to the same value of that width (Schubfach), "6.0" for
 * integral values, exponent form outside 1e-4 <= |v| < 1e16, never locale-dependent.
 * NaN and infinities print as the bare tokens NaN, Infinity, -Infinity (see encode.c). */
#define OIP_FMT_MAX 32
size_t oip_fmt_f64(char *dst, double v);
size_t oip_fmt_f32(char *dst, float v);
size_t oip_fmt_f16(char *dst, uint16_t h);
size_t oip_fmt_u64(char *dst, uint64_t v);
size_t oip_fmt_i64(char *dst, int64_t v);

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). Pure. (text.c) */
bool oip_utf8_valid(const unsigned char *p, size_t n);

#endif
