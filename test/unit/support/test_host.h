/*
 * A plugin host for unit tests: its output_alloc treats the opaque ds_infer_response as a
 * test_response, so loader and worker tests run plugins without the OIP codec.
 * Ownership: each output's data is calloc'd by output_alloc and freed by test_response_free.
 * Not thread-safe per response; distinct responses may be used from distinct threads.
 */
#ifndef DS_TEST_HOST_H
#define DS_TEST_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <dynserve/plugin.h>

#define TEST_MAX_OUTPUTS 8

typedef struct test_output {
    char name[64];
    ds_datatype datatype;
    uint32_t rank;
    int64_t shape[DS_MAX_RANK];
    unsigned char *data;
    size_t byte_size;
} test_output;

typedef struct test_response {
    test_output out[TEST_MAX_OUTPUTS];
    uint32_t count;
    int refuse; /* make output_alloc fail, as a host out of memory would */
} test_response;

/* The host table (ABI DS_PLUGIN_ABI_MAJOR.MINOR); its log discards every line. */
extern const ds_host_api test_host;

void test_response_free(test_response *r);
const test_output *test_response_find(const test_response *r, const char *name);

#endif
