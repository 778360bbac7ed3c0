/*
 * codec_bench: the OIP codec alone, no HTTP. For the 4-element request of wrk/infer.lua and the
 * 4096-element body_4096.json it decodes the request, computes y = 2x^2 + 3x + 1 into an output
 * (as quadratic_predictor does) and encodes the response, N times, and prints ns per request.
 * Then it decodes a request whose FP32 input travels in the binary extension: laid out as the
 * server lays bodies (in place: ns per request) and 1 byte off (copied: GB/s).
 * Prints numbers; it is never a timed test (see bench/README.md).
 *
 * usage: codec_bench [BODY_4096_JSON] [ITERATIONS]
 *   without a readable BODY_4096_JSON an equivalent body (0.0, 0.001, ... 4.095) is generated.
 */
#include "oip.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Caller frees; NULL when the file cannot be read. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

/* The same shape of body as bench/body_4096.json. Caller frees. */
static char *make_body_4096(size_t *len)
{
    ds_buf b = DS_BUF_INIT;
    buf_append_str(&b, "{\"inputs\": [{\"name\": \"input\", \"shape\": [4096, 1], "
                       "\"datatype\": \"FP32\", \"data\": [");
    for (int i = 0; i < 4096; i++)
        buf_printf(&b, "%s%.15g", i ? ", " : "", i / 1000.0);
    buf_append_str(&b, "]}]}");
    *len = b.len;
    return buf_detach(&b);
}

/* y = 2x^2 + 3x + 1 into output "prediction", like the quadratic_predictor plugin. */
static int quadratic(const oip_request *req, oip_response *resp)
{
    const ds_tensor *x = &req->inputs[0];
    ds_error err;
    float *y =
        oip_output_alloc(resp, "prediction", DS_TYPE_FP32, x->rank, x->shape, x->byte_size, &err);
    if (y == NULL)
        return -1;
    const float *in = x->data;
    for (uint64_t i = 0; i < x->element_count; i++)
        y[i] = 2.0f * in[i] * in[i] + 3.0f * in[i] + 1.0f;
    return 0;
}

/* One request through decode, compute, encode; 0 or an oip_code. */
static int round_trip(oip_arena *a, ds_buf *out, const char *body, size_t len, size_t header_len)
{
    oip_request req;
    oip_response resp;
    oip_error err;
    size_t json_len;
    oip_arena_reset(a);
    buf_reset(out);
    int rc = oip_decode_request(a, body, len, header_len, NULL, &req, &err);
    if (rc == 0) {
        oip_response_init(&resp, a);
        rc = quadratic(&req, &resp) ? OIP_INTERNAL : 0;
    }
    if (rc == 0)
        rc = oip_encode_response(out, "quadratic_predictor", "1", &req, &resp, &json_len, &err);
    if (rc != 0)
        fprintf(stderr, "codec_bench: %d %s\n", rc, err.message);
    return rc;
}

static void bench_json(const char *what, const char *body, size_t len, long iters)
{
    oip_arena *a = oip_arena_new();
    ds_buf out = DS_BUF_INIT;
    if (round_trip(a, &out, body, len, (size_t)-1) != 0)
        exit(1);
    size_t out_len = out.len;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++)
        round_trip(a, &out, body, len, (size_t)-1);
    double ns = (now_ns() - t0) / (double)iters;
    printf("%-28s %10.0f ns/request  (request %zu B, response %zu B, %ld iterations)\n", what, ns,
           len, out_len, iters);
    buf_free(&out);
    oip_arena_free(a);
}

/* Decode only: FP32 input of `elements` in the binary extension. `aligned`: the binary part
 * starts 16-byte aligned, as src/http lays out every body, so the decoder uses it in place and
 * the cost is the JSON header's (printed per request); else it starts 1 byte off and is copied
 * into the arena (printed as GB/s): the path of a caller that cannot place the body. */
static void bench_binary(size_t elements, long iters, bool aligned)
{
    char header[256];
    int hl = snprintf(header, sizeof header,
                      "{\"inputs\":[{\"name\":\"input\",\"shape\":[%zu],\"datatype\":\"FP32\","
                      "\"parameters\":{\"binary_data_size\":%zu}}]}",
                      elements, elements * 4);
    /* trailing JSON whitespace puts the binary part where wanted from a 64-byte aligned base */
    size_t pad = aligned ? (16 - (size_t)hl % 16) % 16 : (17 - (size_t)hl % 16) % 16;
    size_t head = (size_t)hl + pad, len = head + elements * 4;
    char *body = aligned_alloc(64, (len + 63) / 64 * 64);
    if (body == NULL)
        exit(1);
    memcpy(body, header, (size_t)hl);
    memset(body + hl, ' ', pad);
    for (size_t i = 0; i < elements; i++) {
        float f = (float)i;
        memcpy(body + head + i * 4, &f, 4);
    }
    oip_arena *a = oip_arena_new();
    oip_request req;
    oip_error err;
    double t0 = now_ns();
    for (long i = 0; i < iters; i++) {
        oip_arena_reset(a);
        if (oip_decode_request(a, body, len, head, NULL, &req, &err) != 0) {
            fprintf(stderr, "codec_bench: %s\n", err.message);
            exit(1);
        }
    }
    double ns = (now_ns() - t0) / (double)iters;
    if (aligned)
        printf("%-28s %10.0f ns/request (%zu KB binary FP32, in place, %ld iterations)\n",
               "binary input decode", ns, elements * 4 >> 10, iters);
    else
        printf("%-28s %10.2f GB/s        (%zu KB binary FP32, unaligned: copied, %ld iterations)\n",
               "binary input decode", (double)(elements * 4) / ns, elements * 4 >> 10, iters);
    oip_arena_free(a);
    free(body);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : NULL;
    long iters = argc > 2 ? atol(argv[2]) : 2000;
    if (iters <= 0)
        iters = 2000;
    static const char small[] = "{\"inputs\":[{\"name\":\"input\",\"shape\":[4,1],"
                                "\"datatype\":\"FP32\",\"data\":[1.0,2.0,3.0,4.0]}]}";
    size_t len = 0;
    char *big = read_file(path, &len);
    if (big == NULL)
        big = make_body_4096(&len);
    if (big == NULL)
        return 1;
    bench_json("4 elements (decode+encode)", small, sizeof small - 1, iters * 100);
    bench_json("4096 elements (dec+enc)", big, len, iters);
    for (int aligned = 1; aligned >= 0; aligned--) {
        bench_binary((size_t)128 << 10, 2000, aligned); /* 512 KB: fits the arena kept on reset */
        bench_binary((size_t)16 << 20, 20, aligned);    /* 64 MB: fresh pages every request */
    }
    free(big);
    return 0;
}
