/*
 * loader: the only module that calls dlopen/dlsym/dlclose. It turns a plugin file into a checked
 * loader_plugin and owns the dlopen handle until loader_close().
 *
 * How loader_open() works:
 *   1. stat() the path first, so a missing file or a directory gets a plain message instead of
 *      a dlerror() string. A path without '/' gets "./" in front: dlopen would otherwise search
 *      LD_LIBRARY_PATH and the system directories and could load some other library.
 *   2. dlopen(RTLD_NOW | RTLD_LOCAL), then dlsym(DS_PLUGIN_ENTRY_SYMBOL). dlerror() is cleared
 *      before each call and its text copied into the caller's buffer at once (it is only valid
 *      until the next dl* call on this thread), always with the file and symbol named.
 *   3. Call the entry with the host table. Entry calls are serialised by entry_lock so a plugin's
 *      one-time set-up needs no lock of its own. dlopen reference-counts: opening a file that is
 *      already open returns the same image and calls its entry again.
 *   4. Check the table header (same ABI major, minor <= ours, struct_size covers the minor-0
 *      table) and copy the first struct_size bytes into a zeroed ds_plugin_api owned by the
 *      loader. Fields appended after the plugin's minor therefore read as 0/NULL, which is how
 *      later servers will recognise "not provided". The model description is copied the same way.
 *   5. Check the functions and the metadata (rules below). Every failure after dlopen dlcloses.
 *
 * What a loaded plugin guarantees to the rest of the server (checked here, once, so the hot path
 * never re-checks): create/execute/destroy are non-NULL; loader_api()->model == loader_model();
 * name and platform are non-NULL strings; at most LOADER_MAX_IO inputs and outputs; each name
 * is 1..LOADER_MAX_NAME characters of [A-Za-z0-9_.-] and unique within its list (an input and
 * an output may share a name, as identity's do); rank is -1..DS_MAX_RANK and each of the first
 * `rank` dims is >= -1; the datatype is BOOL..BYTES. DS_TYPE_ANY is accepted only in models
 * flagged DS_MODEL_DYNAMIC_IO: the server does not type-check those, so a wildcard never reaches
 * the request/response checks of a typed model. A model without DS_MODEL_DYNAMIC_IO must declare
 * at least one input and one output.
 *
 * Memory: a loader_plugin (and its path copy) is malloc'd by loader_open and freed by
 * loader_close. ds_io_desc arrays and name strings stay in the plugin's memory (valid until
 * dlclose, per plugin.h).
 */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "names.h"

#define LOADER_MAX_IO   256
#define LOADER_MAX_NAME NAME_MAX_LEN
/* A struct_size above this is an uninitialised field, not a future ABI. */
#define LOADER_MAX_STRUCT_SIZE 65536u

/* Size of a table as ABI minor 0 defined it: up to and including its last minor-0 field. New
 * fields are appended, so this is the least any plugin of this major can hand us. */
#define MINOR0_SIZE(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))
#define PLUGIN_API_MINOR0_SIZE  MINOR0_SIZE(ds_plugin_api, destroy)
#define MODEL_DESC_MINOR0_SIZE  MINOR0_SIZE(ds_model_desc, outputs)

/* The first fields of every ds_plugin_api, whatever its minor. */
typedef struct table_header {
    uint32_t struct_size;
    uint16_t abi_major;
    uint16_t abi_minor;
} table_header;

_Static_assert(offsetof(ds_plugin_api, abi_minor) + sizeof(uint16_t) == sizeof(table_header),
               "ds_plugin_api must start with struct_size, abi_major, abi_minor");
_Static_assert(sizeof(void *) == sizeof(ds_plugin_entry_fn),
               "dlsym's object pointer must hold a function pointer");

struct loader_plugin {
    void *handle;        /* from dlopen; dlclosed by loader_close */
    char *path;          /* owned copy, for messages */
    ds_plugin_api api;   /* zero-extended copy of the plugin's table; api.model == &model */
    ds_model_desc model; /* zero-extended copy of the plugin's model description */
    bool loaded;         /* counted in `images` (its load hook ran or it has none) */
};

/* How many open loader_plugins share each dlopen handle, so the ABI 1.1 load hook runs before the
 * first and unload after the last (dlopen returns the same handle for the same file). A short
 * list: one entry per distinct open file. Guarded by entry_lock. */
typedef struct loader_image {
    void *handle;
    unsigned users;
    struct loader_image *next;
} loader_image;
static loader_image *images;

/* Serialises calls into plugin entry points and load/unload hooks, and guards `images`: plugins
 * initialise one at a time. */
static pthread_mutex_t entry_lock = PTHREAD_MUTEX_INITIALIZER;

/* Where one load reports to: the file being loaded and the caller's message buffer. */
typedef struct load_ctx {
    const char *path;
    char *err;
    size_t errlen;
} load_ctx;

/* Write "plugin '<path>': <message>" into the caller's buffer; returns -1 for `return fail(..)`. */
__attribute__((format(printf, 2, 3))) static int fail(const load_ctx *c, const char *fmt, ...)
{
    if (c->err == NULL || c->errlen == 0)
        return -1;
    int n = snprintf(c->err, c->errlen, "plugin '%s': ", c->path);
    if (n >= 0 && (size_t)n < c->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* dlerror() text, never NULL. Valid only until the next dl* call on this thread. */
static const char *dl_message(void)
{
    const char *e = dlerror();
    return e != NULL ? e : "unknown dynamic loader error";
}

const char *loader_status_name(ds_status s)
{
    switch (s) {
    case DS_OK: return "OK";
    case DS_ERR_INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case DS_ERR_INTERNAL: return "INTERNAL";
    case DS_ERR_UNAVAILABLE: return "UNAVAILABLE";
    case DS_ERR_NO_MEMORY: return "NO_MEMORY";
    case DS_ERR_UNSUPPORTED: return "UNSUPPORTED";
    case DS_ERR_NOT_FOUND: return "NOT_FOUND";
    case DS_ERR_DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case DS_ERR_CANCELLED: return "CANCELLED";
    }
    return "UNKNOWN";
}

/* The plugin's message, NUL-terminated, or "(no message)". The plugin may fill the buffer. */
static const char *plugin_message(ds_error *e)
{
    e->message[sizeof(e->message) - 1] = '\0';
    return e->message[0] != '\0' ? e->message : "(no message)";
}

/* ---- opening the file ---------------------------------------------------------------------- */

static int check_file(const load_ctx *c)
{
    struct stat st;
    if (c->path[0] == '\0')
        return fail(c, "empty path");
    if (stat(c->path, &st) != 0)
        return fail(c, "cannot open file: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return fail(c, "not a regular file");
    return 0;
}

/* dlopen `path`; a bare file name means the file in the working directory, not a library search. */
static void *open_image(const load_ctx *c)
{
    const char *path = c->path;
    char *dotted = NULL;
    if (strchr(path, '/') == NULL) {
        size_t n = strlen(path) + 3;
        dotted = malloc(n);
        if (dotted == NULL) {
            fail(c, "out of memory");
            return NULL;
        }
        snprintf(dotted, n, "./%s", path);
        path = dotted;
    }
    dlerror();
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL)
        fail(c, "cannot load shared object: %s", dl_message());
    free(dotted);
    return handle;
}

/* The ABI 1.1 entry, or NULL when the plugin has none (then it must have the 1.0 entry). */
static ds_plugin_init_fn find_init(void *handle)
{
    dlerror();
    void *sym = dlsym(handle, DS_PLUGIN_INIT_SYMBOL);
    ds_plugin_init_fn init = NULL;
    if (dlerror() == NULL && sym != NULL)
        memcpy(&init, &sym, sizeof(init));
    return init;
}

static int find_entry(const load_ctx *c, void *handle, ds_plugin_entry_fn *entry)
{
    dlerror();
    void *sym = dlsym(handle, DS_PLUGIN_ENTRY_SYMBOL);
    const char *e = dlerror();
    if (e != NULL)
        return fail(c, "symbol '%s' not found (is it exported with DS_PLUGIN_EXPORT?): %s",
                    DS_PLUGIN_ENTRY_SYMBOL, e);
    if (sym == NULL)
        return fail(c, "symbol '%s' resolves to NULL", DS_PLUGIN_ENTRY_SYMBOL);
    /* ISO C has no object-to-function pointer conversion; POSIX guarantees this copy works. */
    memcpy(entry, &sym, sizeof(*entry));
    return 0;
}

/* Call the ABI 1.1 entry; its status wins over err.code, its message becomes the reason. */
static const ds_plugin_api *call_init(const load_ctx *c, ds_plugin_init_fn init,
                                      const ds_host_api *host)
{
    ds_error e;
    memset(&e, 0, sizeof(e));
    const ds_plugin_api *raw = NULL;
    pthread_mutex_lock(&entry_lock);
    ds_status st = init(host, &raw, &e);
    pthread_mutex_unlock(&entry_lock);
    if (st != DS_OK) {
        fail(c, "%s() refused with %s: %s", DS_PLUGIN_INIT_SYMBOL, loader_status_name(st),
             plugin_message(&e));
        return NULL;
    }
    if (raw == NULL)
        fail(c, "%s() returned DS_OK without a table", DS_PLUGIN_INIT_SYMBOL);
    return raw;
}

static const ds_plugin_api *call_entry(const load_ctx *c, ds_plugin_entry_fn entry,
                                       const ds_host_api *host)
{
    pthread_mutex_lock(&entry_lock);
    const ds_plugin_api *raw = entry(host);
    pthread_mutex_unlock(&entry_lock);
    if (raw == NULL)
        fail(c, "%s() returned NULL (the plugin refused this host, ABI %d.%d)",
             DS_PLUGIN_ENTRY_SYMBOL, DS_PLUGIN_ABI_MAJOR, DS_PLUGIN_ABI_MINOR);
    return raw;
}

/* ---- the plugin table ---------------------------------------------------------------------- */

static int check_header(const load_ctx *c, const table_header *h)
{
    if (h->abi_major != DS_PLUGIN_ABI_MAJOR)
        return fail(c, "built for ABI %u.%u, server supports %d.%d (major version differs)",
                    h->abi_major, h->abi_minor, DS_PLUGIN_ABI_MAJOR, DS_PLUGIN_ABI_MINOR);
    if (h->abi_minor > DS_PLUGIN_ABI_MINOR)
        return fail(c, "built for ABI %u.%u, server supports %d.%d (plugin is newer)", h->abi_major,
                    h->abi_minor, DS_PLUGIN_ABI_MAJOR, DS_PLUGIN_ABI_MINOR);
    if (h->struct_size < PLUGIN_API_MINOR0_SIZE)
        return fail(c, "truncated table: struct_size %u is smaller than the ABI %d.0 table (%zu)",
                    h->struct_size, DS_PLUGIN_ABI_MAJOR, PLUGIN_API_MINOR0_SIZE);
    if (h->struct_size > LOADER_MAX_STRUCT_SIZE)
        return fail(c, "implausible table struct_size %u", h->struct_size);
    return 0;
}

/* Copy the plugin's table into p->api, reading only struct_size bytes of it. */
static int copy_table(const load_ctx *c, const ds_plugin_api *raw, loader_plugin *p)
{
    table_header h;
    memcpy(&h, raw, sizeof(h));
    if (check_header(c, &h) != 0)
        return -1;
    size_t n = h.struct_size < sizeof(p->api) ? h.struct_size : sizeof(p->api);
    memset(&p->api, 0, sizeof(p->api));
    memcpy(&p->api, raw, n);
    if (h.abi_minor < 1) /* a 1.0 table: whatever lies past its fields is not ours to read */
        memset((char *)&p->api + PLUGIN_API_MINOR0_SIZE, 0,
               sizeof(p->api) - PLUGIN_API_MINOR0_SIZE);
    bool can_create = p->api.create != NULL || p->api.create_instance != NULL;
    if (!can_create || p->api.execute == NULL || p->api.destroy == NULL)
        return fail(c, "table has a NULL function (create %s, execute %s, destroy %s)",
                    can_create ? "set" : "NULL", p->api.execute ? "set" : "NULL",
                    p->api.destroy ? "set" : "NULL");
    if (p->api.execute_batch != NULL && p->api.max_batch_size == 0)
        return fail(c, "table has execute_batch but max_batch_size 0");
    if (p->api.execute_batch == NULL)
        p->api.max_batch_size = 0;
    if (p->api.name == NULL)
        p->api.name = "";
    return 0;
}

/* ---- the model description ----------------------------------------------------------------- */

/* NULL when `name` is acceptable, else what is wrong with it. Reads at most 65 bytes. */
static const char *name_problem(const char *name)
{
    if (name == NULL)
        return "is NULL";
    size_t n = strnlen(name, LOADER_MAX_NAME + 1);
    if (n == 0)
        return "is empty";
    if (n > LOADER_MAX_NAME)
        return "is longer than 64 characters";
    for (size_t i = 0; i < n; i++) {
        if (!name_char_ok(name[i]))
            return "has a character outside [A-Za-z0-9_.-]";
    }
    return NULL;
}

static int datatype_ok(ds_datatype t, int dynamic)
{
    unsigned v = (unsigned)t;
    if (v >= DS_TYPE_BOOL && v <= DS_TYPE_BYTES)
        return 1;
    return dynamic && v == DS_TYPE_ANY;
}

static int check_io(const load_ctx *c, const char *kind, uint32_t i, const ds_io_desc *d,
                    int dynamic)
{
    const char *bad = name_problem(d->name);
    if (bad != NULL)
        return fail(c, "%s %u name %s", kind, i, bad);
    if (!datatype_ok(d->datatype, dynamic))
        return fail(c, "%s '%s' has invalid datatype %d%s", kind, d->name, (int)d->datatype,
                    d->datatype == DS_TYPE_ANY ? " (ANY needs DS_MODEL_DYNAMIC_IO)" : "");
    if (d->rank < -1 || d->rank > DS_MAX_RANK)
        return fail(c, "%s '%s' has rank %d, expected -1..%d", kind, d->name, (int)d->rank,
                    DS_MAX_RANK);
    for (int32_t k = 0; k < d->rank; k++) {
        if (d->shape[k] < -1)
            return fail(c, "%s '%s' has dimension %d = %lld, expected >= -1", kind, d->name, (int)k,
                        (long long)d->shape[k]);
    }
    return 0;
}

static int check_io_list(const load_ctx *c, const char *kind, const ds_io_desc *list,
                         uint32_t count, int dynamic)
{
    if (count > LOADER_MAX_IO)
        return fail(c, "model declares %u %ss, at most %d allowed", count, kind, LOADER_MAX_IO);
    if (count > 0 && list == NULL)
        return fail(c, "model declares %u %ss but the array is NULL", count, kind);
    for (uint32_t i = 0; i < count; i++) {
        if (check_io(c, kind, i, &list[i], dynamic) != 0)
            return -1;
        for (uint32_t j = 0; j < i; j++) {
            if (strcmp(list[i].name, list[j].name) == 0)
                return fail(c, "duplicate %s name '%s'", kind, list[i].name);
        }
    }
    if (count == 0 && !dynamic)
        return fail(c, "model declares no %ss (only DS_MODEL_DYNAMIC_IO models may)", kind);
    return 0;
}

/* Copy and check the model description the table points to; repoint p->api.model at the copy. */
static int copy_model(const load_ctx *c, loader_plugin *p)
{
    const ds_model_desc *raw = p->api.model;
    if (raw == NULL)
        return fail(c, "table has no model description (model is NULL)");
    uint32_t size;
    memcpy(&size, raw, sizeof(size));
    if (size < MODEL_DESC_MINOR0_SIZE || size > LOADER_MAX_STRUCT_SIZE)
        return fail(c, "model description struct_size %u is invalid (ABI %d.0 needs %zu)", size,
                    DS_PLUGIN_ABI_MAJOR, MODEL_DESC_MINOR0_SIZE);
    memset(&p->model, 0, sizeof(p->model));
    memcpy(&p->model, raw, size < sizeof(p->model) ? size : sizeof(p->model));
    p->api.model = &p->model;
    if (p->model.platform == NULL)
        p->model.platform = "dynserve_c";
    int dynamic = (p->model.flags & DS_MODEL_DYNAMIC_IO) != 0;
    if (check_io_list(c, "input", p->model.inputs, p->model.input_count, dynamic) != 0)
        return -1;
    return check_io_list(c, "output", p->model.outputs, p->model.output_count, dynamic);
}

/* Check an instance's own description (ABI 1.1 ctx->model) with the table's rules. */
static int check_instance_model(const load_ctx *c, const ds_model_desc *m)
{
    uint32_t size;
    memcpy(&size, m, sizeof(size));
    if (size < MODEL_DESC_MINOR0_SIZE || size > LOADER_MAX_STRUCT_SIZE)
        return fail(c, "instance model description struct_size %u is invalid", size);
    if (m->platform == NULL)
        return fail(c, "instance model description has no platform");
    int dynamic = (m->flags & DS_MODEL_DYNAMIC_IO) != 0;
    if (check_io_list(c, "input", m->inputs, m->input_count, dynamic) != 0)
        return -1;
    return check_io_list(c, "output", m->outputs, m->output_count, dynamic);
}

/* ---- images: load/unload hooks ------------------------------------------------------------- */

/* Count p's image as used; the first user runs the plugin's load hook. 0, or -1 with err. */
static int image_acquire(const load_ctx *c, loader_plugin *p)
{
    pthread_mutex_lock(&entry_lock);
    loader_image *im = images;
    while (im != NULL && im->handle != p->handle)
        im = im->next;
    int rc = 0;
    if (im == NULL) {
        im = calloc(1, sizeof(*im));
        if (im == NULL) {
            rc = fail(c, "out of memory");
        } else if (p->api.load != NULL) {
            ds_error e;
            memset(&e, 0, sizeof(e));
            ds_load_context lc = {.struct_size = sizeof(lc), .plugin_path = p->path};
            ds_status st = p->api.load(&lc, &e);
            if (st != DS_OK) {
                rc = fail(c, "load() failed with %s: %s", loader_status_name(st),
                          plugin_message(&e));
                free(im);
                im = NULL;
            }
        }
        if (im != NULL) {
            im->handle = p->handle;
            im->next = images;
            images = im;
        }
    }
    if (rc == 0) {
        im->users++;
        p->loaded = true;
    }
    pthread_mutex_unlock(&entry_lock);
    return rc;
}

/* The last user of an image runs its unload hook (before the caller's dlclose). */
static void image_release(loader_plugin *p)
{
    if (!p->loaded)
        return;
    pthread_mutex_lock(&entry_lock);
    loader_image **link = &images;
    while (*link != NULL && (*link)->handle != p->handle)
        link = &(*link)->next;
    loader_image *im = *link;
    if (im != NULL && --im->users == 0) {
        *link = im->next;
        free(im);
        if (p->api.unload != NULL)
            p->api.unload();
    }
    pthread_mutex_unlock(&entry_lock);
    p->loaded = false;
}

/* ---- public API ---------------------------------------------------------------------------- */

static void set_plain_error(char *err, size_t errlen, const char *msg)
{
    if (err != NULL && errlen > 0)
        snprintf(err, errlen, "%s", msg);
}

/* Everything after dlopen: entry, table, metadata. On failure the caller dlcloses. */
static int load_image(const load_ctx *c, loader_plugin *p, const ds_host_api *host)
{
    const ds_plugin_api *raw = NULL;
    ds_plugin_init_fn init = find_init(p->handle);
    if (init != NULL) {
        raw = call_init(c, init, host);
    } else {
        ds_plugin_entry_fn entry = NULL;
        if (find_entry(c, p->handle, &entry) != 0)
            return -1;
        raw = call_entry(c, entry, host);
    }
    if (raw == NULL)
        return -1;
    if (copy_table(c, raw, p) != 0 || copy_model(c, p) != 0)
        return -1;
    return image_acquire(c, p);
}

int loader_open(const char *path, const ds_host_api *host, loader_plugin **out, char *err,
                size_t errlen)
{
    if (out != NULL)
        *out = NULL;
    if (path == NULL || host == NULL || out == NULL) {
        set_plain_error(err, errlen, "loader_open: path, host and out must not be NULL");
        return -1;
    }
    load_ctx c = {path, err, errlen};
    if (check_file(&c) != 0)
        return -1;
    loader_plugin *p = calloc(1, sizeof(*p));
    if (p == NULL || (p->path = strdup(path)) == NULL) {
        free(p);
        return fail(&c, "out of memory");
    }
    p->handle = open_image(&c);
    if (p->handle == NULL || load_image(&c, p, host) != 0) {
        loader_close(p); /* dlcloses the handle if there is one */
        return -1;
    }
    *out = p;
    return 0;
}

const ds_plugin_api *loader_api(const loader_plugin *p)
{
    return &p->api;
}

const ds_model_desc *loader_model(const loader_plugin *p)
{
    return &p->model;
}

int loader_thread_safe(const loader_plugin *p)
{
    return (p->api.flags & DS_PLUGIN_THREAD_SAFE) != 0;
}

int loader_instance_create(loader_plugin *p, const char *config_json, void **instance, char *err,
                           size_t errlen)
{
    if (instance != NULL)
        *instance = NULL;
    if (p == NULL || instance == NULL) {
        set_plain_error(err, errlen, "loader_instance_create: plugin and instance must be set");
        return -1;
    }
    loader_instance_args args = {.config_json = config_json, .instance_count = 1};
    const ds_model_desc *ignored;
    return loader_instance_create_ctx(p, &args, instance, &ignored, err, errlen);
}

int loader_instance_create_ctx(loader_plugin *p, const loader_instance_args *a, void **instance,
                               const ds_model_desc **model, char *err, size_t errlen)
{
    if (instance != NULL)
        *instance = NULL;
    if (p == NULL || a == NULL || instance == NULL || model == NULL) {
        set_plain_error(err, errlen, "loader_instance_create_ctx: arguments must be set");
        return -1;
    }
    ds_error e;
    memset(&e, 0, sizeof(e));
    void *inst = NULL;
    const char *config = a->config_json != NULL ? a->config_json : "{}";
    ds_instance_context ctx = {
        .struct_size = sizeof(ctx),
        .instance_index = a->instance_index,
        .instance_count = a->instance_count ? a->instance_count : 1,
        .model_name = a->model_name ? a->model_name : "",
        .model_version = a->model_version ? a->model_version : "",
        .deployment_id = a->deployment_id ? a->deployment_id : "",
        .artifact_dir = a->artifact_dir,
        .config_json = config,
        .deployment = a->deployment,
    };
    ds_status st = p->api.create_instance != NULL ? p->api.create_instance(&ctx, &inst, &e)
                                                  : p->api.create(config, &inst, &e);
    load_ctx c = {p->path, err, errlen};
    if (st != DS_OK)
        return fail(&c, "%s() failed with %s: %s",
                    p->api.create_instance != NULL ? "create_instance" : "create",
                    loader_status_name(st), plugin_message(&e));
    *model = ctx.model != NULL ? ctx.model : &p->model;
    if (ctx.model != NULL && check_instance_model(&c, ctx.model) != 0) {
        p->api.destroy(inst);
        return -1;
    }
    *instance = inst;
    return 0;
}

void loader_instance_destroy(loader_plugin *p, void *instance)
{
    if (p != NULL)
        p->api.destroy(instance);
}

void loader_close(loader_plugin *p)
{
    if (p == NULL)
        return;
    image_release(p);
    if (p->handle != NULL) {
        dlerror();
        /* A failing dlclose leaves the image mapped; nothing useful can be done about it. */
        (void)dlclose(p->handle);
    }
    free(p->path);
    free(p);
}

int loader_probe(const char *path, const ds_host_api *host, const char *config_json, char *err,
                 size_t errlen)
{
    loader_plugin *p = NULL;
    if (loader_open(path, host, &p, err, errlen) != 0)
        return -1;
    void *instance = NULL;
    int rc = loader_instance_create(p, config_json, &instance, err, errlen);
    if (rc == 0)
        loader_instance_destroy(p, instance);
    loader_close(p);
    return rc;
}

int loader_probe_artifact(const char *path, const ds_host_api *host, const char *model,
                          const char *version, const char *artifact_dir, const char *config_json,
                          char *err, size_t errlen)
{
    loader_plugin *p = NULL;
    if (loader_open(path, host, &p, err, errlen) != 0)
        return -1;
    loader_instance_args args = {.model_name = model,
                                 .model_version = version,
                                 .deployment_id = "probe",
                                 .artifact_dir = artifact_dir,
                                 .config_json = config_json,
                                 .instance_count = 1};
    void *instance = NULL;
    const ds_model_desc *desc = NULL;
    int rc = loader_instance_create_ctx(p, &args, &instance, &desc, err, errlen);
    if (rc == 0)
        loader_instance_destroy(p, instance);
    loader_close(p);
    return rc == 0 ? 0 : -2;
}
