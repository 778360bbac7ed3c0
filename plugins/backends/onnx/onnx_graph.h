/*
 * onnx_graph: reads a graph's inputs and outputs (names, element types, shapes) straight from
 * the bytes of an .onnx file (a protobuf ModelProto), without a protobuf library. OpenCV 4.6's
 * DNN module has no API for the declared IO of an imported graph, and linking Debian's libonnx
 * (with its own libprotobuf) next to OpenCV's risks two protobuf runtimes in one process.
 *
 * Only the fields on the path ModelProto.graph -> GraphProto.{input,output,initializer} ->
 * ValueInfoProto.{name,type} -> TypeProto.tensor_type -> {elem_type, shape.dim} are decoded;
 * everything else is skipped by wire type. Inputs that are also initializers (IR < 4 graphs list
 * weights as inputs) are dropped. The input is untrusted: every length is bounds-checked, and a
 * malformed file returns -1 with a reason, never reads past `len` (fuzzed: test/fuzz).
 *
 * Thread-safety: reentrant; no allocation (results go into the caller's fixed arrays).
 */
#ifndef DS_ONNX_GRAPH_H
#define DS_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ONNX_GRAPH_MAX_IO   64
#define ONNX_GRAPH_MAX_RANK 8
#define ONNX_GRAPH_MAX_NAME 64

/* ONNX TensorProto.DataType values used by the backend. */
enum {
    ONNX_FLOAT = 1,
    ONNX_UINT8 = 2,
    ONNX_INT8 = 3,
    ONNX_INT32 = 6,
    ONNX_INT64 = 7,
    ONNX_DOUBLE = 11,
};

typedef struct onnx_value {
    char name[ONNX_GRAPH_MAX_NAME + 1];
    int32_t elem_type;                  /* TensorProto.DataType; 0 when not a tensor */
    int32_t rank;                       /* -1 when the graph declares no shape */
    int64_t shape[ONNX_GRAPH_MAX_RANK]; /* -1 for a symbolic (dim_param) or unknown dimension */
} onnx_value;

typedef struct onnx_io {
    uint32_t input_count, output_count;
    onnx_value inputs[ONNX_GRAPH_MAX_IO];
    onnx_value outputs[ONNX_GRAPH_MAX_IO];
} onnx_io;

/* Decode the graph IO of the ModelProto in buf[0..len). 0 on success (*io filled), -1 with a
 * reason in err (a truncated or malformed file, no graph, too many inputs/outputs, a name
 * longer than ONNX_GRAPH_MAX_NAME, a rank above ONNX_GRAPH_MAX_RANK). */
int onnx_graph_io(const uint8_t *buf, size_t len, onnx_io *io, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
