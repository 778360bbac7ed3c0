/*
 * onnx backend: serves an ONNX graph (model.onnx) through OpenCV's DNN module (Debian's
 * libopencv-dnn406; see README "ONNX backend" for why OpenCV). C++ inside; the only exported
 * symbol is the C entry dynserve_plugin_init, and no C++ exception ever crosses it: every call
 * from the server is wrapped in try/catch and turned into a ds_status with a message.
 *
 * IO comes from the graph (onnx_graph.c reads the file's declared inputs and outputs): each
 * FLOAT tensor becomes an FP32 input/output with the graph's shape, symbolic dimensions
 * ("N") as -1. OpenCV computes in FP32, so graphs with non-float inputs or outputs are refused
 * at create with a clear reason.
 *
 * Parameters (config.json "parameters"):
 *   model_file   the graph's file name in the version directory (default model.onnx)
 *   num_threads  OpenCV worker threads (default 1). OpenCV's thread pool is process-wide: the
 *                last instance created sets it for every ONNX deployment.
 *
 * Threads: a cv::dnn::Net is not safe to run from two threads at once (it keeps its blobs in
 * the object), so the plugin does not declare DS_PLUGIN_THREAD_SAFE; a deployment with
 * "instance_count": N gets N nets that run in parallel, each one request at a time.
 * The load hook quiets OpenCV's own logging to errors (its warnings would go to stderr).
 *
 * Dynamic batching (execute_batch, max_batch_size 256): when every input and output of the graph
 * has a variable first dimension, the rows of the requests of a batch are laid end to end (one
 * row-major tensor per input: concatenation along dimension 0 is concatenation of bytes), the net
 * runs once, and each output is cut back by rows into each request's own response. A request
 * that is malformed fails alone; the others still run. A graph with a fixed first dimension runs
 * the requests of a batch one by one.
 */
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/dnn.hpp>

#include "backend_util.h"
#include "onnx_graph.h"

namespace
{

/* One instance: a net and the IO the graph declared. Owned by the plugin from create_instance
 * to destroy; used by one thread at a time (no DS_PLUGIN_THREAD_SAFE). */
struct onnx_instance {
    cv::dnn::Net net;
    onnx_io io;
    std::vector<std::string> out_names;
    ds_io_desc inputs[ONNX_GRAPH_MAX_IO];
    ds_io_desc outputs[ONNX_GRAPH_MAX_IO];
    ds_model_desc model;
    const ds_deployment *dep;
    bool batchable; /* every input and output has a variable first dimension */
};

ds_status read_file(const std::string &path, std::vector<uchar> &bytes, ds_error *err)
{
    std::ifstream f(path, std::ios::binary | std::ios::ate);
    if (!f)
        return ds_error_set(err, DS_ERR_NOT_FOUND, "cannot open ONNX graph '%s'", path.c_str());
    std::streamoff n = f.tellg();
    if (n <= 0)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "ONNX graph '%s' is empty", path.c_str());
    bytes.resize(static_cast<size_t>(n));
    f.seekg(0);
    if (!f.read(reinterpret_cast<char *>(bytes.data()), n))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "cannot read ONNX graph '%s'",
                            path.c_str());
    return DS_OK;
}

/* Describe graph value v as FP32 IO; UNSUPPORTED for element types OpenCV cannot serve. */
ds_status describe(const onnx_value &v, const char *kind, ds_io_desc &d, ds_error *err)
{
    if (v.elem_type != ONNX_FLOAT)
        return ds_error_set(err, DS_ERR_UNSUPPORTED,
                            "graph %s '%s' has ONNX element type %d; this backend (OpenCV DNN) "
                            "serves FLOAT tensors only",
                            kind, v.name, static_cast<int>(v.elem_type));
    if (v.rank <= 0)
        return ds_error_set(err, DS_ERR_UNSUPPORTED,
                            "graph %s '%s' declares no shape; the backend needs its rank", kind,
                            v.name);
    d.name = v.name;
    d.datatype = DS_TYPE_FP32;
    d.rank = v.rank;
    for (int32_t k = 0; k < v.rank; k++)
        d.shape[k] = v.shape[k] > 0 ? v.shape[k] : -1;
    return DS_OK;
}

ds_status describe_all(onnx_instance &x, ds_error *err)
{
    for (uint32_t i = 0; i < x.io.input_count; i++) {
        ds_status st = describe(x.io.inputs[i], "input", x.inputs[i], err);
        if (st != DS_OK)
            return st;
    }
    for (uint32_t i = 0; i < x.io.output_count; i++) {
        ds_status st = describe(x.io.outputs[i], "output", x.outputs[i], err);
        if (st != DS_OK)
            return st;
        x.out_names.emplace_back(x.io.outputs[i].name);
    }
    x.model = ds_model_desc{};
    x.model.struct_size = sizeof(ds_model_desc);
    x.model.platform = "onnx";
    x.model.input_count = x.io.input_count;
    x.model.inputs = x.inputs;
    x.model.output_count = x.io.output_count;
    x.model.outputs = x.outputs;
    return DS_OK;
}

ds_status configure(const ds_instance_context *ctx, std::string &path, ds_error *err)
{
    cJSON *root = cJSON_Parse(ctx->config_json != nullptr ? ctx->config_json : "{}");
    if (root == nullptr)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "config is not valid JSON");
    const cJSON *params = bk_parameters(root);
    const char *file = bk_param_string(params, "model_file");
    char buf[4096];
    long threads = 1;
    ds_status st =
        bk_artifact_path(ctx, file != nullptr ? file : "model.onnx", buf, sizeof buf, err);
    if (st == DS_OK)
        st = bk_param_int(params, "num_threads", 1, 256, 1, &threads, err);
    cJSON_Delete(root);
    if (st != DS_OK)
        return st;
    path = buf;
    cv::setNumThreads(static_cast<int>(threads));
    return DS_OK;
}

ds_status load_net(onnx_instance &x, const ds_instance_context *ctx, ds_error *err)
{
    std::string path;
    std::vector<uchar> bytes;
    ds_status st = configure(ctx, path, err);
    if (st == DS_OK)
        st = read_file(path, bytes, err);
    if (st != DS_OK)
        return st;
    char why[200];
    if (onnx_graph_io(bytes.data(), bytes.size(), &x.io, why, sizeof why) != 0)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "'%s': %s", path.c_str(), why);
    st = describe_all(x, err);
    if (st != DS_OK)
        return st;
    x.net = cv::dnn::readNetFromONNX(bytes);
    if (x.net.empty())
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "OpenCV could not import '%s'",
                            path.c_str());
    x.net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    x.net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    return DS_OK;
}

/* OpenCV's exception text, first line only (the rest repeats file and function). */
ds_status opencv_error(ds_error *err, ds_status code, const char *what, const cv::Exception &e)
{
    std::string msg = e.err.empty() ? e.what() : e.err;
    return ds_error_set(err, code, "%s: %s", what, msg.substr(0, msg.find('\n')).c_str());
}

ds_status create_instance(ds_instance_context *ctx, void **instance, ds_error *err)
{
    onnx_instance *x = new (std::nothrow) onnx_instance();
    if (x == nullptr)
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    x->dep = ctx->deployment;
    ds_status st;
    try {
        st = load_net(*x, ctx, err);
    } catch (const cv::Exception &e) {
        st = opencv_error(err, DS_ERR_INVALID_ARGUMENT, "OpenCV cannot import the graph", e);
    } catch (const std::exception &e) {
        st = ds_error_set(err, DS_ERR_INTERNAL, "cannot load the graph: %s", e.what());
    }
    if (st != DS_OK) {
        delete x;
        return st;
    }
    x->batchable = x->model.input_count > 0;
    for (uint32_t i = 0; i < x->model.input_count; i++)
        x->batchable = x->batchable && x->inputs[i].rank >= 1 && x->inputs[i].shape[0] == -1;
    for (uint32_t i = 0; i < x->model.output_count; i++)
        x->batchable = x->batchable && x->outputs[i].rank >= 1 && x->outputs[i].shape[0] == -1;
    ctx->model = &x->model;
    bk_log(x->dep, DS_LOG_DEBUG, "onnx graph: %u input(s), %u output(s), instance %u of %u",
           x->io.input_count, x->io.output_count, ctx->instance_index + 1, ctx->instance_count);
    *instance = x;
    return DS_OK;
}

/* Check a request tensor against the graph's declared shape and wrap it as a cv::Mat. */
ds_status input_blob(const ds_io_desc &d, const ds_infer_request *req, cv::Mat &blob, ds_error *err)
{
    const ds_tensor *t = bk_find_input(req, d.name);
    if (t == nullptr)
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "missing input '%s'", d.name);
    if (t->datatype != DS_TYPE_FP32 || t->rank != static_cast<uint32_t>(d.rank))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' must be FP32 of rank %d",
                            d.name, static_cast<int>(d.rank));
    std::vector<int> sizes(t->rank);
    uint64_t n = 1;
    for (uint32_t k = 0; k < t->rank; k++) {
        if (t->shape[k] < 0 || t->shape[k] > INT32_MAX ||
            (d.shape[k] >= 0 && t->shape[k] != d.shape[k]))
            return ds_error_set(err, DS_ERR_INVALID_ARGUMENT,
                                "input '%s' dimension %u is %lld, the graph wants %lld", d.name, k,
                                static_cast<long long>(t->shape[k]),
                                static_cast<long long>(d.shape[k]));
        sizes[k] = static_cast<int>(t->shape[k]);
        n *= static_cast<uint64_t>(t->shape[k]);
    }
    if (t->byte_size != n * sizeof(float))
        return ds_error_set(err, DS_ERR_INVALID_ARGUMENT, "input '%s' has %zu bytes, needs %llu",
                            d.name, t->byte_size, static_cast<unsigned long long>(n * 4));
    /* setInput copies the blob into the net, so wrapping the request's (const) bytes is safe;
     * clone() first when they are unaligned, as cv::Mat assumes aligned floats. */
    blob = cv::Mat(static_cast<int>(t->rank), sizes.data(), CV_32F, const_cast<void *>(t->data));
    if (reinterpret_cast<uintptr_t>(t->data) % alignof(float) != 0)
        blob = blob.clone();
    return DS_OK;
}

ds_status write_output(const ds_io_desc &d, const cv::Mat &m, ds_infer_response *resp,
                       ds_error *err)
{
    if (m.type() != CV_32F || !m.isContinuous() || m.dims > DS_MAX_RANK)
        return ds_error_set(err, DS_ERR_INTERNAL, "OpenCV produced output '%s' of type %d", d.name,
                            m.type());
    int64_t shape[DS_MAX_RANK];
    for (int k = 0; k < m.dims; k++)
        shape[k] = m.size[k];
    void *buf = nullptr;
    size_t bytes = m.total() * sizeof(float);
    ds_status st = bk_add_output(resp, d.name, DS_TYPE_FP32, static_cast<uint32_t>(m.dims), shape,
                                 bytes, &buf, err);
    if (st == DS_OK && bytes > 0)
        std::memcpy(buf, m.ptr(), bytes);
    return st;
}

ds_status run(onnx_instance &x, const ds_infer_request *req, ds_infer_response *resp, ds_error *err)
{
    for (uint32_t i = 0; i < x.model.input_count; i++) {
        cv::Mat blob;
        ds_status st = input_blob(x.inputs[i], req, blob, err);
        if (st != DS_OK)
            return st;
        x.net.setInput(blob, x.inputs[i].name);
    }
    ds_status cancelled = bk_cancelled(resp);
    if (cancelled != DS_OK)
        return ds_error_set(err, cancelled, "request abandoned before the graph ran");
    std::vector<cv::Mat> outs;
    x.net.forward(outs, x.out_names);
    if (outs.size() != x.out_names.size())
        return ds_error_set(err, DS_ERR_INTERNAL, "OpenCV returned %zu outputs, expected %zu",
                            outs.size(), x.out_names.size());
    for (size_t i = 0; i < outs.size(); i++) {
        if (!bk_output_wanted(req, x.outputs[i].name))
            continue;
        ds_status st = write_output(x.outputs[i], outs[i], resp, err);
        if (st != DS_OK)
            return st;
    }
    return DS_OK;
}

ds_status execute(void *instance, const ds_infer_request *req, ds_infer_response *resp,
                  ds_error *err)
{
    try {
        return run(*static_cast<onnx_instance *>(instance), req, resp, err);
    } catch (const cv::Exception &e) {
        /* Shape errors inside the graph surface here: the request did not fit the network. */
        return opencv_error(err, DS_ERR_INVALID_ARGUMENT, "the graph rejected the request", e);
    } catch (const std::bad_alloc &) {
        return ds_error_set(err, DS_ERR_NO_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return ds_error_set(err, DS_ERR_INTERNAL, "inference failed: %s", e.what());
    }
}

/* The batch's requests whose inputs are valid (a bad one gets its own error) and their rows;
 * every input of one request must have the same first dimension. */
void batch_members(onnx_instance &x, uint32_t count, const ds_infer_request *const *reqs,
                   ds_infer_response *const *resps, ds_error *errs, std::vector<uint32_t> &ok,
                   std::vector<int64_t> &rows)
{
    for (uint32_t i = 0; i < count; i++) {
        int64_t r = -1;
        ds_status st = DS_OK;
        for (uint32_t k = 0; st == DS_OK && k < x.model.input_count; k++) {
            cv::Mat blob;
            st = input_blob(x.inputs[k], reqs[i], blob, &errs[i]);
            const ds_tensor *t = st == DS_OK ? bk_find_input(reqs[i], x.inputs[k].name) : nullptr;
            if (t != nullptr && r >= 0 && t->shape[0] != r)
                st = ds_error_set(&errs[i], DS_ERR_INVALID_ARGUMENT,
                                  "inputs disagree on the batch dimension (%lld vs %lld)",
                                  static_cast<long long>(t->shape[0]), static_cast<long long>(r));
            else if (t != nullptr)
                r = t->shape[0];
        }
        ds_status gone = st == DS_OK ? bk_cancelled(resps[i]) : DS_OK;
        if (gone != DS_OK)
            st = ds_error_set(&errs[i], gone, "request abandoned before the graph ran");
        if (st == DS_OK) {
            ok.push_back(i);
            rows.push_back(r);
        }
    }
}

/* Input k of every member, end to end along dimension 0 (row-major: bytes back to back). */
cv::Mat batch_input(const ds_io_desc &d, const ds_infer_request *const *reqs,
                    const std::vector<uint32_t> &ok, int64_t total_rows)
{
    const ds_tensor *first = bk_find_input(reqs[ok[0]], d.name);
    std::vector<int> sizes(first->rank);
    for (uint32_t k = 0; k < first->rank; k++)
        sizes[k] = static_cast<int>(first->shape[k]);
    sizes[0] = static_cast<int>(total_rows);
    cv::Mat big(static_cast<int>(first->rank), sizes.data(), CV_32F);
    uchar *at = big.ptr();
    for (uint32_t i : ok) {
        const ds_tensor *t = bk_find_input(reqs[i], d.name);
        std::memcpy(at, t->data, t->byte_size);
        at += t->byte_size;
    }
    return big;
}

/* Output m of the batch, rows [off, off + n) into one member's response. */
ds_status batch_output(const ds_io_desc &d, const cv::Mat &m, int64_t off, int64_t n,
                       ds_infer_response *resp, ds_error *err)
{
    int64_t shape[DS_MAX_RANK];
    for (int k = 0; k < m.dims; k++)
        shape[k] = m.size[k];
    shape[0] = n;
    size_t per_row = m.total() / static_cast<size_t>(m.size[0]) * sizeof(float);
    void *buf = nullptr;
    size_t bytes = per_row * static_cast<size_t>(n);
    ds_status st = bk_add_output(resp, d.name, DS_TYPE_FP32, static_cast<uint32_t>(m.dims), shape,
                                 bytes, &buf, err);
    if (st == DS_OK && bytes > 0)
        std::memcpy(buf, m.ptr() + per_row * static_cast<size_t>(off), bytes);
    return st;
}

ds_status run_batch(onnx_instance &x, uint32_t count, const ds_infer_request *const *reqs,
                    ds_infer_response *const *resps, ds_error *errs)
{
    if (!x.batchable) {
        for (uint32_t i = 0; i < count; i++)
            run(x, reqs[i], resps[i], &errs[i]);
        return DS_OK;
    }
    std::vector<uint32_t> ok;
    std::vector<int64_t> rows;
    batch_members(x, count, reqs, resps, errs, ok, rows);
    if (ok.empty())
        return DS_OK;
    int64_t total = 0;
    for (int64_t r : rows)
        total += r;
    for (uint32_t k = 0; k < x.model.input_count; k++)
        x.net.setInput(batch_input(x.inputs[k], reqs, ok, total), x.inputs[k].name);
    std::vector<cv::Mat> outs;
    x.net.forward(outs, x.out_names);
    for (size_t j = 0; j < outs.size() && j < x.out_names.size(); j++) {
        const cv::Mat &m = outs[j];
        if (m.type() != CV_32F || !m.isContinuous() || m.dims < 1 || m.dims > DS_MAX_RANK ||
            m.size[0] != total)
            return ds_error_set(&errs[0], DS_ERR_INTERNAL,
                                "output '%s' does not have the batch's %lld rows",
                                x.outputs[j].name, static_cast<long long>(total));
        int64_t off = 0;
        for (size_t i = 0; i < ok.size(); off += rows[i], i++)
            if (errs[ok[i]].code == DS_OK && bk_output_wanted(reqs[ok[i]], x.outputs[j].name))
                batch_output(x.outputs[j], m, off, rows[i], resps[ok[i]], &errs[ok[i]]);
    }
    return DS_OK;
}

ds_status execute_batch(void *instance, uint32_t count, const ds_infer_request *const *reqs,
                        ds_infer_response *const *resps, ds_error *errs)
{
    try {
        return run_batch(*static_cast<onnx_instance *>(instance), count, reqs, resps, errs);
    } catch (const cv::Exception &e) {
        return opencv_error(&errs[0], DS_ERR_INVALID_ARGUMENT, "the graph rejected the batch", e);
    } catch (const std::bad_alloc &) {
        return ds_error_set(&errs[0], DS_ERR_NO_MEMORY, "out of memory");
    } catch (const std::exception &e) {
        return ds_error_set(&errs[0], DS_ERR_INTERNAL, "inference failed: %s", e.what());
    }
}

void destroy(void *instance)
{
    delete static_cast<onnx_instance *>(instance);
}

ds_status load(const ds_load_context *ctx, ds_error *err)
{
    (void)ctx;
    try {
        cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
    } catch (const std::exception &e) {
        return ds_error_set(err, DS_ERR_INTERNAL, "cannot initialise OpenCV: %s", e.what());
    }
    return DS_OK;
}

void unload(void) {}

/* Placeholder: every instance describes its own IO (read from the graph). */
const ds_model_desc placeholder = {
    sizeof(ds_model_desc), DS_MODEL_DYNAMIC_IO, "onnx", 0, nullptr, 0, nullptr};

ds_plugin_api make_api()
{
    ds_plugin_api a{};
    a.struct_size = sizeof(ds_plugin_api);
    a.abi_major = DS_PLUGIN_ABI_MAJOR;
    a.abi_minor = DS_PLUGIN_ABI_MINOR;
    a.flags = 0; /* not thread-safe: see the top of the file */
    a.name = "onnx backend (OpenCV DNN)";
    a.model = &placeholder;
    a.execute = execute;
    a.destroy = destroy;
    a.create_instance = create_instance;
    a.load = load;
    a.unload = unload;
    a.execute_batch = execute_batch;
    a.max_batch_size = 256;
    return a;
}

const ds_plugin_api api = make_api();

} // namespace

extern "C" DS_PLUGIN_EXPORT ds_status dynserve_plugin_init(const ds_host_api *host,
                                                           const ds_plugin_api **table,
                                                           ds_error *err)
{
    if (!bk_accept_host(host, err))
        return DS_ERR_UNSUPPORTED;
    *table = &api;
    return DS_OK;
}
