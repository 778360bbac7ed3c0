#!/usr/bin/python3
"""Build the real ONNX example model: an MLP trained on scikit-learn's bundled digits set.

    make_digits.py REPO_DIR TESTDATA_DIR

writes REPO_DIR/digits/1/{config.json,model.onnx} and TESTDATA_DIR/digits.npz (the held-out
test split: X_test float32 [n,64] with pixel values 0..16, y_test). The weights come from
sklearn's MLPClassifier; the graph is written by hand with onnx's helper API:

    input [N,64] -> Gemm(W1/16, b1) -> Relu -> Gemm(W2, b2) -> Relu -> Gemm(W3, b3)
                 -> Softmax(axis=1) -> probabilities [N,10]

(the 1/16 pixel scaling the network was trained with is folded into W1, so clients send raw
pixels; Gemm weights are stored transposed, transB=1). Debian packages only (python3-sklearn, python3-onnx, python3-numpy); deterministic.
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier


def train():
    data = load_digits()
    x = data.data.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, data.target, test_size=0.2,
                                                        random_state=7)
    mlp = MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=300, random_state=7)
    mlp.fit(x_train / 16.0, y_train)
    return mlp, x_test, y_test


def graph(mlp):
    weights = [w.astype(np.float32) for w in mlp.coefs_]
    biases = [b.astype(np.float32) for b in mlp.intercepts_]
    weights[0] = weights[0] / np.float32(16.0)
    inits, nodes, prev = [], [], "input"
    for i, (w, b) in enumerate(zip(weights, biases)):
        # Weights stored [out, in] with transB=1, the layout PyTorch exports and OpenCV's
        # importer handles for every shape (4.6 mis-sizes the bias of non-square transB=0).
        inits += [numpy_helper.from_array(np.ascontiguousarray(w.T), "W%d" % i),
                  numpy_helper.from_array(b, "B%d" % i)]
        nodes.append(helper.make_node("Gemm", [prev, "W%d" % i, "B%d" % i], ["gemm%d" % i],
                                      transB=1))
        prev = "gemm%d" % i
        if i + 1 < len(weights):
            nodes.append(helper.make_node("Relu", [prev], ["relu%d" % i]))
            prev = "relu%d" % i
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], axis=1))
    n_in, n_out = weights[0].shape[0], weights[-1].shape[1]
    g = helper.make_graph(
        nodes, "digits_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_in])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", n_out])],
        inits)
    model = helper.make_model(g, producer_name="dynserve make_digits.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_digits.py REPO_DIR TESTDATA_DIR")
    repo, tdir = sys.argv[1], sys.argv[2]
    mlp, x_test, y_test = train()
    vdir = os.path.join(repo, "digits", "1")
    os.makedirs(vdir, exist_ok=True)
    onnx.save(graph(mlp), os.path.join(vdir, "model.onnx"))
    # Inputs and outputs come from the graph; num_threads is OpenCV's worker count per process.
    with open(os.path.join(vdir, "config.json"), "w") as f:
        json.dump({"backend": "onnx", "parameters": {"num_threads": 1}}, f, indent=2)
        f.write("\n")
    os.makedirs(tdir, exist_ok=True)
    np.savez(os.path.join(tdir, "digits.npz"), X_test=x_test, y_test=y_test)


if __name__ == "__main__":
    main()
