/*
 * dynserve plugin ABI: the only header a model plugin includes.
 *
 * A model version is a shared object that exports one C symbol, DS_PLUGIN_ENTRY_SYMBOL
 * ("dynserve_plugin_entry"). The server dlopens the file, calls the entry with a table of host
 * services (ds_host_api) and receives the plugin's table (ds_plugin_api). Everything else goes
 * through those two tables, so a plugin never links against server symbols.
 *
 * Versioning (sqlite3ext.h / tritonbackend.h style):
 *   - DS_PLUGIN_ABI_MAJOR changes only on incompatible change; the server refuses another major.
 *   - DS_PLUGIN_ABI_MINOR grows when fields are appended; the server loads any plugin whose minor
 *     is <= its own, and reads only the first `struct_size` bytes of the plugin's table.
 *   - Fields are only ever appended at the end of a struct, never reordered or removed.
 *   - Exception: ds_tensor and ds_io_desc are passed as arrays without a per-element size, so
 *     their layout (and DS_MAX_RANK) is frozen for major version 1; per-tensor additions will
 *     come as separate arrays in the tables.
 *
 * Ownership, in one sentence per direction:
 *   - Everything the server hands the plugin (tensors, names, parameters, the host table) is
 *     owned by the server and valid only during the call it is passed to, unless noted.
 *   - Everything the plugin hands the server through ds_plugin_api (names, metadata) is owned
 *     by the plugin and must stay valid until the shared object is unloaded (dlclose).
 *   - Output tensor memory is allocated by the server (host->output_alloc); the plugin only
 *     fills it. Nothing is ever freed across the boundary.
 *
 * Errors are values: functions return DS_OK (0) or a ds_status code, and write a message into a
 * server-owned ds_error. A plugin must never call exit(), abort() or raise signals on bad input.
 */
#ifndef DYNSERVE_PLUGIN_H
#define DYNSERVE_PLUGIN_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DS_PLUGIN_ABI_MAJOR    1
#define DS_PLUGIN_ABI_MINOR    0
#define DS_PLUGIN_ENTRY_SYMBOL "dynserve_plugin_entry"
#define DS_MAX_RANK            8
#define DS_ERROR_MESSAGE_MAX   256

#if defined(__GNUC__)
#define DS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define DS_PLUGIN_EXPORT
#endif

/* Result of every ABI call. The server maps them to HTTP: INVALID_ARGUMENT -> 400,
 * UNAVAILABLE -> 503, everything else -> 500. */
typedef enum ds_status {
    DS_OK = 0,
    DS_ERR_INVALID_ARGUMENT = 1, /* the request's data is wrong for this model */
    DS_ERR_INTERNAL = 2,         /* the plugin failed */
    DS_ERR_UNAVAILABLE = 3,      /* temporarily cannot serve (e.g. overloaded) */
    DS_ERR_NO_MEMORY = 4,
    DS_ERR_UNSUPPORTED = 5 /* config or feature not supported by this plugin */
} ds_status;

/* Tensor element types, named as the Open Inference Protocol names them.
 * DS_TYPE_ANY is valid only in metadata ("accepts any datatype"). */
typedef enum ds_datatype {
    DS_TYPE_INVALID = 0,
    DS_TYPE_BOOL,
    DS_TYPE_UINT8,
    DS_TYPE_UINT16,
    DS_TYPE_UINT32,
    DS_TYPE_UINT64,
    DS_TYPE_INT8,
    DS_TYPE_INT16,
    DS_TYPE_INT32,
    DS_TYPE_INT64,
    DS_TYPE_FP16,
    DS_TYPE_FP32,
    DS_TYPE_FP64,
    DS_TYPE_BYTES,
    DS_TYPE_ANY
} ds_datatype;

/* Server-owned error buffer. The plugin writes `code` and `message` (NUL-terminated) when it
 * returns a status other than DS_OK; use ds_error_set(). */
typedef struct ds_error {
    ds_status code;
    char message[DS_ERROR_MESSAGE_MAX];
} ds_error;

static inline ds_status ds_error_set(ds_error *err, ds_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline ds_status ds_error_set(ds_error *err, ds_status code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        va_start(ap, fmt);
        err->code = code;
        vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Declared input or output of a model. rank == -1 means "any rank" (shape ignored);
 * a shape entry of -1 means "any size in this dimension". */
typedef struct ds_io_desc {
    const char *name;
    ds_datatype datatype;
    int32_t rank;
    int64_t shape[DS_MAX_RANK];
} ds_io_desc;

/* ds_model_desc.flags */
#define DS_MODEL_DYNAMIC_IO                                                                        \
    0x1u /* inputs are not declared: any names, types and shapes are                               \
            accepted, and outputs are whatever the plugin produces */

/* Static description of the model. Owned by the plugin; valid until dlclose. */
typedef struct ds_model_desc {
    uint32_t struct_size; /* sizeof(ds_model_desc) as the plugin was built */
    uint32_t flags;       /* DS_MODEL_* */
    const char *platform; /* free text for OIP metadata, e.g. "dynserve_c" */
    uint32_t input_count;
    const ds_io_desc *inputs;
    uint32_t output_count;
    const ds_io_desc *outputs;
} ds_model_desc;

/* A tensor handed to the plugin. Owned by the server; valid only during execute().
 * data is row-major, little-endian, densely packed. BOOL is one byte per element (0 or 1).
 * FP16 is IEEE-754 binary16 bits in a uint16_t. BYTES elements are each a 4-byte little-endian
 * length followed by that many bytes, back to back (the binary tensor extension's layout). */
typedef struct ds_tensor {
    const char *name;
    ds_datatype datatype;
    uint32_t rank;
    const int64_t *shape; /* rank entries */
    const void *data;     /* byte_size bytes */
    size_t byte_size;
    uint64_t element_count; /* product of shape */
    const char *parameters; /* the tensor's "parameters" object as JSON text, or NULL */
} ds_tensor;

/* One inference request. Owned by the server; valid only during execute(). */
typedef struct ds_infer_request {
    uint32_t struct_size;   /* sizeof(ds_infer_request) as the server was built */
    const char *id;         /* request "id", or NULL */
    const char *parameters; /* request "parameters" as JSON text, or NULL */
    uint32_t input_count;
    const ds_tensor *inputs;
    uint32_t requested_output_count; /* 0 = the client wants every output */
    const char *const *requested_outputs;
} ds_infer_request;

/* Opaque: where a plugin puts its outputs. Defined inside the server only. */
typedef struct ds_infer_response ds_infer_response;

/* Services the server offers the plugin. Owned by the server; valid from the entry call until
 * dlclose, so a plugin may keep the pointer. Every function is thread-safe. */
typedef struct ds_host_api {
    uint32_t struct_size; /* check before using a field added after minor 0 */
    uint16_t abi_major;
    uint16_t abi_minor;

    /* Allocate an output tensor `name` in `resp` and return its data buffer of byte_size bytes
     * (zero-filled, 16-byte aligned; for byte_size 0 a non-NULL pointer that must not be
     * written), or NULL with `err` set when the output cannot be added (duplicate name,
     * bad shape, byte_size inconsistent with datatype and shape, out of memory). For BYTES,
     * byte_size is the total of the 4-byte length prefixes and payloads.
     * The buffer is owned by the server and valid until execute() returns; `name` and `shape`
     * are copied. Thread-safe for distinct `resp`. */
    void *(*output_alloc)(ds_infer_response *resp, const char *name, ds_datatype datatype,
                          uint32_t rank, const int64_t *shape, size_t byte_size, ds_error *err);

    /* Log a line at level 0 (error), 1 (warning), 2 (info), 3 (debug). `msg` is copied. */
    void (*log)(int level, const char *msg);
} ds_host_api;

/* ds_plugin_api.flags */
#define DS_PLUGIN_THREAD_SAFE                                                                      \
    0x1u /* execute() may run concurrently on one instance; without it                             \
            the server never runs execute() twice at once on one                                   \
            instance (different instances may run in parallel) */

/* The plugin's table. Returned by the entry point; owned by the plugin and valid until dlclose.
 * Lifecycle per deployment: create -> execute* -> destroy. The server calls destroy exactly once
 * for every instance create() returned, on every path, before dlclose. */
typedef struct ds_plugin_api {
    uint32_t struct_size;       /* sizeof(ds_plugin_api) as the plugin was built */
    uint16_t abi_major;         /* DS_PLUGIN_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;         /* DS_PLUGIN_ABI_MINOR the plugin was built with */
    uint32_t flags;             /* DS_PLUGIN_* */
    const char *name;           /* informational, e.g. "quadratic_predictor v1" */
    const ds_model_desc *model; /* inputs/outputs; owned by the plugin, valid until dlclose */

    /* Create an instance from `config_json` (a JSON object as text, "{}" when none; owned by
     * the caller, valid only during the call). On DS_OK *instance is set (may be NULL for a
     * stateless plugin) and stays owned by the plugin until destroy(). On error, nothing is
     * left to destroy. */
    ds_status (*create)(const char *config_json, void **instance, ds_error *err);

    /* Run one request. Outputs are added with host->output_alloc(resp, ...). Never called
     * after destroy(). Thread-safety: see DS_PLUGIN_THREAD_SAFE. */
    ds_status (*execute)(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                         ds_error *err);

    /* Release an instance. Called once per successful create(), after the last execute(). */
    void (*destroy)(void *instance);
} ds_plugin_api;

/* The one exported symbol. `host` stays valid until dlclose. Returns the plugin's table (owned
 * by the plugin, valid until dlclose), or NULL if the plugin cannot work with this host.
 * It may be called more than once (the same file loaded for two deployments shares one image):
 * return the same table each time. The server passes the same host table every time. */
typedef const ds_plugin_api *(*ds_plugin_entry_fn)(const ds_host_api *host);
DS_PLUGIN_EXPORT const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host);

#ifdef __cplusplus
}
#endif
#endif /* DYNSERVE_PLUGIN_H */
