/*
 * dynserve plugin ABI: the only header a model plugin includes.
 *
 * A model version is a shared object that exports one C symbol. The server dlopens the file,
 * calls the entry with a table of host services (ds_host_api) and receives the plugin's table
 * (ds_plugin_api). Everything else goes through those two tables, so a plugin never links
 * against server symbols. Entry symbols, tried in this order (sqlite3ext.h's "one well-known
 * name with a documented fallback"):
 *   - DS_PLUGIN_INIT_SYMBOL ("dynserve_plugin_init", ABI 1.1): returns a status and can say why
 *     it refuses, like sqlite3_extension_init's pzErrMsg;
 *   - DS_PLUGIN_ENTRY_SYMBOL ("dynserve_plugin_entry", ABI 1.0): returns the table or NULL.
 *
 * A backend is a plugin that serves model files: a version is then {backend, artifact directory,
 * config.json}, and every instance learns the version's artifact directory and config through
 * ds_instance_context (ABI 1.1), and may describe its own inputs/outputs (read from the file).
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
#define DS_PLUGIN_ABI_MINOR    1
#define DS_PLUGIN_ENTRY_SYMBOL "dynserve_plugin_entry"
#define DS_PLUGIN_INIT_SYMBOL  "dynserve_plugin_init" /* ABI 1.1 entry, tried first */
#define DS_MAX_RANK            8
#define DS_ERROR_MESSAGE_MAX   256

#if defined(__GNUC__)
#define DS_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define DS_PLUGIN_EXPORT
#endif

#if defined(__GNUC__)
#define DS_PRINTF_LIKE(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define DS_PRINTF_LIKE(fmt, args)
#endif

/* Result of every ABI call. The server maps them to HTTP: INVALID_ARGUMENT -> 400,
 * NOT_FOUND -> 404, UNAVAILABLE -> 503, DEADLINE_EXCEEDED -> 504, CANCELLED -> 499 (the client
 * went away; gRPC's mapping), everything else -> 500.
 *
 * When a function returns a ds_status and also writes a ds_error, the RETURN VALUE WINS: the
 * server decides by it and uses err->message only as text; err->code is informational (a plugin
 * that forgets to set it, or sets a different code, gets what it returned). A non-DS_OK return
 * with an empty message is reported as "(no message)". */
typedef enum ds_status {
    DS_OK = 0,
    DS_ERR_INVALID_ARGUMENT = 1, /* the request's data is wrong for this model */
    DS_ERR_INTERNAL = 2,         /* the plugin failed */
    DS_ERR_UNAVAILABLE = 3,      /* temporarily cannot serve (e.g. overloaded) */
    DS_ERR_NO_MEMORY = 4,
    DS_ERR_UNSUPPORTED = 5,       /* config or feature not supported by this plugin */
    DS_ERR_NOT_FOUND = 6,         /* ABI 1.1: a named thing (file, output, key) does not exist */
    DS_ERR_DEADLINE_EXCEEDED = 7, /* ABI 1.1: the request's deadline passed (see is_cancelled) */
    DS_ERR_CANCELLED = 8          /* ABI 1.1: the request was abandoned (see is_cancelled) */
} ds_status;

/* Log levels of ds_host_api.logf (ABI 1.1); the same numbers as ds_host_api.log's int level. */
typedef enum ds_log_level {
    DS_LOG_ERROR = 0,
    DS_LOG_WARN = 1,
    DS_LOG_INFO = 2,
    DS_LOG_DEBUG = 3
} ds_log_level;

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

/* ds_model_desc.flags
 * DS_MODEL_DYNAMIC_IO: inputs are not declared: any names, types and shapes are accepted, and
 * outputs are whatever the plugin produces. */
#define DS_MODEL_DYNAMIC_IO 0x1u

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

/* Opaque (ABI 1.1): one deployment of a version, as the server names it in logs. Handed to the
 * plugin in ds_instance_context; owned by the server and valid until destroy() of that instance
 * returns. */
typedef struct ds_deployment ds_deployment;

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

    /* Log a line at level 0 (error), 1 (warning), 2 (info), 3 (debug). `msg` is copied.
     * Kept for ABI 1.0 plugins; new code uses logf. */
    void (*log)(int level, const char *msg);

    /* ---- ABI 1.1 (check struct_size >= offsetof(ds_host_api, <field>) + its size) ---- */

    /* printf-style log line naming the deployment ("model/version#id") in each line; `dep` may
     * be NULL (in load/unload, or the entry) and the line then names only the plugin. The
     * formatted text is copied; a line is cut at 1 KiB. Thread-safe. */
    void (*logf)(const ds_deployment *dep, ds_log_level level, const char *fmt, ...)
        DS_PRINTF_LIKE(3, 4);

    /* Nonzero when the request behind `resp` was abandoned: the client disconnected
     * (DS_ERR_CANCELLED) or its deadline passed (DS_ERR_DEADLINE_EXCEEDED); the value returned
     * is that status, 0 while the request is still wanted. A long execute() may poll it and
     * return the status it got. Cheap: a clock read, plus at most one poll(2) of the client's
     * socket per millisecond (the first check also locates the socket); a request without a
     * client (an async job) only has its deadline; in an isolated worker the server relays both
     * (the client is looked at every 5 ms there). Valid during execute()/execute_batch() for the
     * `resp` passed to them, on the thread that got it. Thread-safe for distinct `resp`. */
    ds_status (*is_cancelled)(const ds_infer_response *resp);
} ds_host_api;

/* ds_plugin_api.flags
 * DS_PLUGIN_THREAD_SAFE: execute() may run concurrently on one instance; without it the server
 * never runs execute() twice at once on one instance (different instances may run in
 * parallel). */
#define DS_PLUGIN_THREAD_SAFE 0x1u

/* ABI 1.1: what the server tells an instance when it creates it (Triton's TRITONBACKEND_Model
 * and TRITONBACKEND_ModelInstance properties, in one struct). Owned by the server. The input
 * fields are valid only during create_instance() (copy what you keep) except `deployment`, which
 * is valid until destroy() of this instance returns. Read only fields below struct_size. */
typedef struct ds_instance_context {
    uint32_t struct_size;    /* sizeof(ds_instance_context) as the server was built */
    uint32_t instance_index; /* 0 .. instance_count-1 within this deployment */
    uint32_t instance_count; /* instances the deployment creates (its "instance_count") */
    uint32_t reserved_u32;
    const char *model_name;    /* registered model name */
    const char *model_version; /* registered version */
    const char *deployment_id; /* unique in this process, e.g. "digits/1#7" */
    /* The version's artifact directory (absolute path, holding config.json and the model
     * files), or NULL for a plain .so version. Read-only: never write into it. */
    const char *artifact_dir;
    const char *config_json;         /* the version's config as a JSON object text, "{}" if none */
    const ds_deployment *deployment; /* for host->logf */

    /* Out (optional): set to describe THIS instance's inputs/outputs when they come from the
     * artifact rather than from ds_plugin_api.model (a generic ONNX backend reads them from the
     * graph). Owned by the instance and valid until destroy(). The server checks it with the same
     * rules as the plugin's table, and uses it for OIP metadata, request validation and the
     * dashboard. Every instance of one deployment must describe the same IO. */
    const ds_model_desc *model;

    void *reserved[8]; /* zero; for later minors */
} ds_instance_context;

/* ABI 1.1: what the load hook receives. Owned by the server, valid only during load(). */
typedef struct ds_load_context {
    uint32_t struct_size; /* sizeof(ds_load_context) as the server was built */
    uint32_t reserved_u32;
    const char *plugin_path; /* the file being loaded */
    void *reserved[8];
} ds_load_context;

/* The plugin's table. Returned by the entry point; owned by the plugin and valid until dlclose.
 * Lifecycle per deployment: create -> execute* -> destroy. The server calls destroy exactly once
 * for every instance create() returned, on every path, before dlclose.
 * ABI 1.1 lifecycle of a loaded image (one dlopen'ed file, shared by every deployment that uses
 * it): load -> (create_instance -> execute*|execute_batch* -> destroy)* -> unload -> dlclose.
 * load runs before the first instance of the image and unload after the last one is destroyed;
 * a later deployment of the same file runs load again. */
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

    /* ---- ABI 1.1 (a table with abi_minor >= 1 and struct_size covering them) ---- */

    /* Create instance ctx->instance_index of a deployment. Preferred over create() when set
     * (then create may be NULL); same ownership as create(): on DS_OK *instance belongs to the
     * plugin until destroy(), on error nothing is left to destroy. A plugin without
     * DS_PLUGIN_THREAD_SAFE gets ctx->instance_count instances that may execute in parallel,
     * each one at a time. */
    ds_status (*create_instance)(ds_instance_context *ctx, void **instance, ds_error *err);

    /* Optional hooks around the first/last instance of a loaded image (thread pools, library
     * init). unload is called only after a successful load. Serialised with every other
     * load/unload/entry call of any plugin. NULL = nothing to do. */
    ds_status (*load)(const ds_load_context *ctx, ds_error *err);
    void (*unload)(void);

    /* Optional: run `count` (1..max_batch_size) requests in one call; used by dynamic batching.
     * requests[i] goes with responses[i] and errors[i] (all server-owned, valid during the
     * call; errors zeroed by the server). Return DS_OK when the batch ran: request i then
     * succeeded unless errors[i].code != DS_OK. A non-DS_OK return fails every request of the
     * batch with that status and errors[0].message. Same thread rules as execute(). */
    ds_status (*execute_batch)(void *instance, uint32_t count,
                               const ds_infer_request *const *requests,
                               ds_infer_response *const *responses, ds_error *errors);
    uint32_t max_batch_size; /* most requests per execute_batch call; 0 = no execute_batch */
    uint32_t reserved_u32;   /* zero */
} ds_plugin_api;

/* The ABI 1.0 entry. `host` stays valid until dlclose. Returns the plugin's table (owned
 * by the plugin, valid until dlclose), or NULL if the plugin cannot work with this host.
 * It may be called more than once (the same file loaded for two deployments shares one image):
 * return the same table each time. The server passes the same host table every time. */
typedef const ds_plugin_api *(*ds_plugin_entry_fn)(const ds_host_api *host);
DS_PLUGIN_EXPORT const ds_plugin_api *dynserve_plugin_entry(const ds_host_api *host);

/* The ABI 1.1 entry, DS_PLUGIN_INIT_SYMBOL, tried before DS_PLUGIN_ENTRY_SYMBOL. Same contract
 * as dynserve_plugin_entry, but it returns a status: on DS_OK *table is set; otherwise the
 * server refuses the file with err->message as the reason (the return value wins over
 * err->code, as everywhere). A plugin exports one of the two. */
typedef ds_status (*ds_plugin_init_fn)(const ds_host_api *host, const ds_plugin_api **table,
                                       ds_error *err);
DS_PLUGIN_EXPORT ds_status dynserve_plugin_init(const ds_host_api *host,
                                                const ds_plugin_api **table, ds_error *err);

#ifdef __cplusplus
}
#endif
#endif /* DYNSERVE_PLUGIN_H */
