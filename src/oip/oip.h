/*
 * oip: the Open Inference Protocol v2 REST codec — request JSON (and the binary tensor data
 * extension) in, typed tensors out; plugin outputs in, response JSON (+ binary) out; model
 * metadata JSON. It knows tensors and JSON only: no deployments, registry or HTTP server, so it
 * is unit-tested and fuzzed alone.
 *
 * Memory: every decode/encode allocation comes from an oip_arena that the caller resets per
 * request and reuses (one per worker thread), so the hot path does no malloc per element and,
 * once warm, usually none per request. Everything a decoded oip_request or an oip_response
 * points to lives in that arena until the next oip_arena_reset.
 *
 * Thread-safety: functions are reentrant; an arena, a request and a response belong to one
 * thread at a time.
 *
 * Errors: functions return OIP_OK (0) or an oip_code (OIP_BAD_REQUEST: the client's request is
 * wrong; OIP_INTERNAL: out of memory or a plugin bug) and fill oip_error.message with a message
 * naming the tensor or field at fault. The codec knows no HTTP; http/reply.c maps the codes.
 */
#ifndef DS_OIP_H
#define DS_OIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"
#include "dynserve/plugin.h"

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct oip_arena oip_arena;

/* Caller owns; NULL when memory runs out. */
oip_arena *oip_arena_new(void);
void oip_arena_free(oip_arena *a);
/* Forget every allocation but keep (a bounded amount of) memory for reuse. */
void oip_arena_reset(oip_arena *a);
/* 16-byte aligned, uninitialised; NULL when memory runs out. Lives until the next reset. */
void *oip_arena_alloc(oip_arena *a, size_t n);

/* ---- errors and limits --------------------------------------------------------------------- */

/* oip_code (OIP_OK, OIP_BAD_REQUEST, OIP_INTERNAL, OIP_TOO_LARGE): what went wrong, in the codec's
 * own terms; declared in base/errors.h. */
typedef struct oip_error {
    oip_code code;     /* OIP_OK until a function fails */
    char message[256]; /* NUL-terminated */
} oip_error;

typedef struct oip_limits {
    uint64_t max_elements; /* per request, over all input tensors */
    uint32_t max_depth;    /* nesting depth of JSON arrays/objects */
    uint32_t max_tensors;  /* inputs or requested outputs */
} oip_limits;

/* Defaults: 64 Mi elements, depth 32, 128 tensors. */
extern const oip_limits oip_default_limits;

/* ---- datatypes ----------------------------------------------------------------------------- */

const char *oip_datatype_name(ds_datatype t);            /* "FP32"...; "INVALID" for others */
ds_datatype oip_datatype_parse(const char *s, size_t n); /* DS_TYPE_INVALID when unknown */
size_t oip_datatype_size(ds_datatype t);                 /* bytes per element; 0 for BYTES */

/* ---- requests ------------------------------------------------------------------------------ */

typedef struct oip_requested_output {
    const char *name;
    bool binary_data;       /* "parameters": {"binary_data": true} */
    const char *parameters; /* the output's parameters as JSON text, or NULL */
} oip_requested_output;

typedef struct oip_request {
    ds_infer_request plugin; /* what the plugin sees; its arrays point into the arena */
    ds_tensor *inputs;       /* == plugin.inputs, writable */
    oip_requested_output *outputs;
    uint32_t output_count;
    bool binary_data_output; /* request parameter: every output in binary */
    const char *routing_key; /* request parameter "routing_key" (string), or NULL */
} oip_request;

/* Decode one infer request. `header_len` is the Inference-Header-Content-Length value when the
 * client sent one (the JSON is the first header_len bytes and binary tensor data follows), or
 * (size_t)-1 when it did not (the whole body is JSON). Validates syntax, datatypes, shapes
 * against data (element count = product of shape, overflow-checked), value ranges per datatype
 * and the limits. Unknown top-level fields are OIP_BAD_REQUEST. Returns OIP_OK or the code.
 * Ownership: *out lives in the arena, except that a binary input whose bytes are 16-byte
 * aligned in `body` points into `body` (no copy): the caller keeps `body` unchanged and alive
 * as long as *out is used. */
int oip_decode_request(oip_arena *a, const char *body, size_t len, size_t header_len,
                       const oip_limits *lim, oip_request *out, oip_error *err);

/* Check decoded inputs against the model's declared inputs: names (missing, unexpected,
 * duplicate), datatypes, rank and fixed dims. Also checks requested output names exist.
 * DS_MODEL_DYNAMIC_IO models accept any inputs. Returns OIP_OK or OIP_BAD_REQUEST. */
int oip_check_request(const oip_request *req, const ds_model_desc *model, oip_error *err);

/* ---- responses ----------------------------------------------------------------------------- */

typedef struct oip_output {
    char *name;
    ds_datatype datatype;
    uint32_t rank;
    int64_t shape[DS_MAX_RANK];
    void *data;
    size_t byte_size;
    uint64_t element_count;
} oip_output;

/* What a plugin fills through host->output_alloc. Server-internal; plugins see it opaque. */
struct ds_infer_response {
    oip_arena *arena;
    oip_output *outputs; /* in the arena */
    uint32_t count;
    uint32_t capacity;
    uint64_t deadline_ns; /* CLOCK_MONOTONIC deadline of the request; 0 = none (is_cancelled) */
    /* is_cancelled's client check (plugin/host.c): client_gone(client_ctx) is true once the
     * client went away; NULL when the request has no client (async job, shadow copy). Asked at
     * most once per OIP_CLIENT_PROBE_NS; a "gone" answer latches in `cancelled`. Set by the
     * thread serving the request and used only by it (the plugin's execute on that thread). */
    bool (*client_gone)(void *client_ctx);
    void *client_ctx;
    uint64_t next_probe_ns;
    ds_status cancelled; /* DS_OK, or DS_ERR_CANCELLED once seen */
};
#define OIP_CLIENT_PROBE_NS 1000000u /* 1 ms: a polling plugin costs one poll(2) per ms */
typedef struct ds_infer_response oip_response;

void oip_response_init(oip_response *r, oip_arena *a);

/* The host->output_alloc implementation (see plugin.h for the contract). Thread-safe for
 * distinct responses. */
void *oip_output_alloc(ds_infer_response *resp, const char *name, ds_datatype datatype,
                       uint32_t rank, const int64_t *shape, size_t byte_size, ds_error *err);

/* Check what the plugin produced against its declared outputs and internal consistency (BYTES
 * length prefixes inside the buffer, BOOL bytes 0/1, every requested output present).
 * Returns OIP_OK, or OIP_INTERNAL with a message naming the output (a plugin bug, not the
 * client's); OIP_BAD_REQUEST when a requested output is missing from a model without declared
 * outputs. */
int oip_check_response(const oip_response *resp, const oip_request *req, const ds_model_desc *model,
                       oip_error *err);

/* Append the OIP response to `out`: {"model_name","model_version","id"?,"parameters"?,
 * "outputs":[...]} limited to and ordered by the requested outputs (all, in plugin order, when
 * none were requested). Outputs asked in binary (per output or binary_data_output) carry
 * "parameters":{"binary_data_size":N} and their bytes follow the JSON, in order.
 * *json_len is the length of the JSON part: when it is less than what was appended, the HTTP
 * layer sends Inference-Header-Content-Length: *json_len. Returns OIP_OK, OIP_BAD_REQUEST (a
 * non-UTF-8 BYTES output asked for as JSON) or OIP_INTERNAL. */
int oip_encode_response(ds_buf *out, const char *model_name, const char *model_version,
                        const oip_request *req, const oip_response *resp, size_t *json_len,
                        oip_error *err);

/* Where oip_encode_response_spans records binary outputs instead of copying them. */
#define OIP_SPAN_MIN ((size_t)64 * 1024) /* smaller binary outputs are copied */
typedef struct oip_spans {
    ds_span *spans; /* capacity entries, the caller's */
    uint32_t capacity;
    uint32_t count; /* out */
} oip_spans;

/* oip_encode_response, except that binary output bytes, from the first output of at least
 * OIP_SPAN_MIN bytes on, are not appended to `out` but recorded in spans (in order): the
 * response is `out` followed by those spans. The spans point into the outputs' memory (resp's
 * arena), so they are valid until that arena is reset. Outputs before the first large one are
 * appended as usual, so a response without a large output is all in `out` (count 0). A buffer
 * limit on `out` counts the spanned bytes too (OIP_TOO_LARGE). spans NULL: the same as
 * oip_encode_response. A capacity of the number of outputs sent always suffices. */
int oip_encode_response_spans(ds_buf *out, const char *model_name, const char *model_version,
                              const oip_request *req, const oip_response *resp, size_t *json_len,
                              oip_spans *spans, oip_error *err);

/* Append model metadata JSON: {"name","versions":[...],"platform","backend"?,"inputs":[...],
 * "outputs":[...]} with datatype names and shapes (-1 for variable dims). "backend" (Triton's
 * field) only when backend is non-empty. */
void oip_encode_model_metadata(ds_buf *out, const char *name, const char *const *versions,
                               size_t version_count, const ds_model_desc *model,
                               const char *backend);

#endif
