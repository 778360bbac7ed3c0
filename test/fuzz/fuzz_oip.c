/*
 * fuzz_oip: libFuzzer harness for the OIP codec (oip_decode_request and everything downstream).
 *
 * Input layout: when it starts with '{' or JSON whitespace the whole input is the JSON body (no
 * Inference-Header-Content-Length). Otherwise the first 4 bytes are a little-endian header length
 * (taken modulo the rest's size + 1) and the rest is the body: JSON header, then binary tensor
 * data. Seeds for the binary mode carry that 4-byte prefix.
 *
 * For every request that decodes, the harness checks it against a declared model and as a
 * dynamic one, answers like the identity model (each input copied to an output of the same name),
 * checks and encodes the response and, when the response is all JSON, decodes its "outputs" array
 * again as "inputs": every tensor must come back with the same datatype, shape and bytes (floats
 * compared bit for bit, NaN as NaN). Any mismatch or broken invariant aborts.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"
#include "oip_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_oip: check failed: %s (line %d)\n", #cond, __LINE__);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const ds_io_desc fz_inputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
    {.name = "b", .datatype = DS_TYPE_ANY, .rank = -1},
};
static const ds_io_desc fz_outputs[] = {
    {.name = "input", .datatype = DS_TYPE_FP32, .rank = 2, .shape = {-1, 1}},
};
static const ds_model_desc fz_model = {.struct_size = sizeof(ds_model_desc),
                                       .platform = "fuzz",
                                       .input_count = 2,
                                       .inputs = fz_inputs,
                                       .output_count = 1,
                                       .outputs = fz_outputs};
static const ds_model_desc fz_dynamic = {.struct_size = sizeof(ds_model_desc),
                                         .flags = DS_MODEL_DYNAMIC_IO};

static bool is_nan_elem(ds_datatype t, const unsigned char *p)
{
    if (t == DS_TYPE_FP16) {
        uint16_t h;
        memcpy(&h, p, 2);
        return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
    }
    if (t == DS_TYPE_FP32) {
        float f;
        memcpy(&f, p, 4);
        return f != f;
    }
    double d;
    memcpy(&d, p, 8);
    return d != d;
}

/* Same values: bytes equal, except that any NaN equals any NaN. */
static bool same_data(const ds_tensor *a, const ds_tensor *b)
{
    if (a->byte_size != b->byte_size)
        return false;
    if (a->byte_size == 0 || memcmp(a->data, b->data, a->byte_size) == 0)
        return true;
    ds_datatype t = a->datatype;
    if (t != DS_TYPE_FP16 && t != DS_TYPE_FP32 && t != DS_TYPE_FP64)
        return false;
    size_t es = oip_datatype_size(t);
    const unsigned char *p = a->data, *q = b->data;
    for (size_t i = 0; i < a->byte_size; i += es)
        if (memcmp(p + i, q + i, es) != 0 && !(is_nan_elem(t, p + i) && is_nan_elem(t, q + i)))
            return false;
    return true;
}

static const ds_tensor *find_input(const oip_request *r, const char *name)
{
    for (uint32_t i = 0; i < r->plugin.input_count; i++)
        if (strcmp(r->inputs[i].name, name) == 0)
            return &r->inputs[i];
    return NULL;
}

/* The response's "outputs" array decoded as "inputs" must give back the original tensors. */
static void round_trip(const oip_request *req, const ds_buf *resp_json, const oip_limits *lim)
{
    static const char prefix[] = "{\"model_name\":\"fuzz\",\"model_version\":\"1\",\"outputs\":";
    CHECK(resp_json->len > sizeof prefix &&
          memcmp(resp_json->data, prefix, sizeof prefix - 1) == 0);
    ds_buf again = DS_BUF_INIT;
    buf_append_str(&again, "{\"inputs\":");
    buf_append(&again, resp_json->data + sizeof prefix - 1, resp_json->len - (sizeof prefix - 1));
    CHECK(!again.failed);
    oip_arena *a = oip_arena_new();
    oip_request back;
    oip_error err;
    int rc = oip_decode_request(a, again.data, again.len, (size_t)-1, lim, &back, &err);
    if (rc != 0)
        fprintf(stderr, "fuzz_oip: re-decode failed: %d %s\n%.*s\n", rc, err.message,
                (int)(again.len > 2000 ? 2000 : again.len), again.data);
    CHECK(rc == 0);
    for (uint32_t i = 0; i < back.plugin.input_count; i++) {
        const ds_tensor *t = &back.inputs[i], *o = find_input(req, t->name);
        CHECK(o != NULL);
        CHECK(o->datatype == t->datatype && o->rank == t->rank);
        CHECK(o->rank == 0 || memcmp(o->shape, t->shape, o->rank * sizeof *o->shape) == 0);
        CHECK(o->element_count == t->element_count);
        CHECK(same_data(o, t));
    }
    oip_arena_free(a);
    buf_free(&again);
}

/* The identity model: every input becomes an output of the same name. */
static void identity(const oip_request *req, oip_response *resp)
{
    ds_error e;
    for (uint32_t i = 0; i < req->plugin.input_count; i++) {
        const ds_tensor *t = &req->inputs[i];
        void *p = oip_output_alloc(resp, t->name, t->datatype, t->rank, t->shape, t->byte_size, &e);
        CHECK(p != NULL);
        if (t->byte_size != 0)
            memcpy(p, t->data, t->byte_size);
    }
}

static void respond(oip_arena *a, const oip_request *req, const oip_limits *lim)
{
    oip_response resp;
    oip_error err;
    oip_response_init(&resp, a);
    identity(req, &resp);
    int rc = oip_check_response(&resp, req, &fz_dynamic, &err);
    CHECK(rc == 0 ||
          rc == OIP_BAD_REQUEST); /* bad request: an output was requested that no input provides */
    if (rc != 0)
        return;
    oip_request quiet = *req; /* without the id the response starts with a fixed prefix */
    quiet.plugin.id = NULL;
    ds_buf out = DS_BUF_INIT;
    size_t json_len = 0;
    rc = oip_encode_response(&out, "fuzz", "1", &quiet, &resp, &json_len, &err);
    /* OIP_BAD_REQUEST: binary BYTES input that is not UTF-8 cannot come back as a JSON string */
    CHECK((rc == 0 && json_len <= out.len) || rc == OIP_BAD_REQUEST);
    if (rc != 0) {
        buf_free(&out);
        return;
    }
    if (json_len == out.len)
        round_trip(req, &out, lim);
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const oip_limits lim = {.max_elements = 1 << 20, .max_depth = 32, .max_tensors = 64};
    size_t header_len = (size_t)-1;
    const char *body = (const char *)data;
    if (size >= 4 && data[0] != '{' && data[0] != ' ' && data[0] != '\n' && data[0] != '\t' &&
        data[0] != '\r') {
        uint32_t h = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                     (uint32_t)data[3] << 24;
        body += 4;
        size -= 4;
        header_len = h % (size + 1);
    }
    oip_arena *a = oip_arena_new();
    oip_request req;
    oip_error err;
    int rc = oip_decode_request(a, body, size, header_len, &lim, &req, &err);
    CHECK(rc == OIP_OK || rc == OIP_BAD_REQUEST || rc == OIP_INTERNAL);
    CHECK(rc == 0 ? err.code == 0 : (int)err.code == rc && err.message[0] != '\0');
    if (rc == 0) {
        rc = oip_check_request(&req, &fz_model, &err);
        CHECK(rc == 0 || (rc == OIP_BAD_REQUEST && err.message[0] != '\0'));
        CHECK(oip_check_request(&req, &fz_dynamic, &err) == 0);
        respond(a, &req, &lim);
    }
    ds_buf meta = DS_BUF_INIT;
    oip_encode_model_metadata(&meta, "fuzz", NULL, 0, &fz_model, "fuzz");
    CHECK(!meta.failed);
    buf_free(&meta);
    oip_arena_free(a);
    return 0;
}
