/* The unit tests' plugin host (see test_host.h). */
#include "support/test_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *test_output_alloc(ds_infer_response *resp, const char *name, ds_datatype datatype,
                               uint32_t rank, const int64_t *shape, size_t byte_size, ds_error *err)
{
    test_response *r = (test_response *)resp;
    if (r->refuse) {
        ds_error_set(err, DS_ERR_NO_MEMORY, "test host refuses output '%s'", name);
        return NULL;
    }
    if (r->count == TEST_MAX_OUTPUTS || rank > DS_MAX_RANK ||
        strlen(name) >= sizeof(r->out[0].name)) {
        ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "test host cannot hold output '%s'", name);
        return NULL;
    }
    if (test_response_find(r, name) != NULL) {
        ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "duplicate output '%s'", name);
        return NULL;
    }
    test_output *o = &r->out[r->count++];
    snprintf(o->name, sizeof(o->name), "%s", name);
    o->datatype = datatype;
    o->rank = rank;
    if (rank > 0)
        memcpy(o->shape, shape, rank * sizeof(shape[0]));
    o->byte_size = byte_size;
    o->data = calloc(1, byte_size > 0 ? byte_size : 1);
    return o->data;
}

static void test_log(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

const ds_host_api test_host = {
    .struct_size = sizeof(ds_host_api),
    .abi_major = DS_PLUGIN_ABI_MAJOR,
    .abi_minor = DS_PLUGIN_ABI_MINOR,
    .output_alloc = test_output_alloc,
    .log = test_log,
};

void test_response_free(test_response *r)
{
    for (uint32_t i = 0; i < r->count; i++)
        free(r->out[i].data);
    memset(r, 0, sizeof(*r));
}

const test_output *test_response_find(const test_response *r, const char *name)
{
    for (uint32_t i = 0; i < r->count; i++) {
        if (strcmp(r->out[i].name, name) == 0)
            return &r->out[i];
    }
    return NULL;
}
