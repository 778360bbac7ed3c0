/*
 * fuzz_onnx_graph: libFuzzer harness for the ONNX graph IO reader used by the onnx backend
 * (onnx_graph_io). A model file is untrusted input: every result must be within the declared
 * bounds (counts, ranks, NUL-terminated names), errors must carry a message, and no byte outside
 * the input may be read (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx_graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_values(const onnx_value *v, uint32_t n)
{
    if (n > ONNX_GRAPH_MAX_IO)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        if (memchr(v[i].name, '\0', sizeof v[i].name) == NULL || v[i].name[0] == '\0')
            abort();
        if (v[i].rank < -1 || v[i].rank > ONNX_GRAPH_MAX_RANK)
            abort();
        for (int32_t k = 0; k < v[i].rank; k++)
            if (v[i].shape[k] < -1)
                abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static onnx_io io; /* 35 KiB: not on the fuzzer's stack */
    char err[256] = "";
    if (onnx_graph_io(data, size, &io, err, sizeof err) != 0) {
        if (err[0] == '\0')
            abort();
        return 0;
    }
    if (io.input_count == 0 || io.output_count == 0)
        abort();
    check_values(io.inputs, io.input_count);
    check_values(io.outputs, io.output_count);
    return 0;
}
