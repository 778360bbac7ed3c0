#!/usr/bin/python3
"""Build the real XGBoost example models into a Triton-style model repository.

    make_models.py REPO_DIR TESTDATA_DIR

writes, for each of three datasets that scikit-learn bundles (no download):
    REPO_DIR/breast_cancer/1/{config.json,model.json}   binary:logistic  (binary classifier)
    REPO_DIR/iris/1/{config.json,model.json}            multi:softprob   (3 classes)
    REPO_DIR/diabetes/1/{config.json,model.json}        reg:squarederror (regression)
and TESTDATA_DIR/<model>.npz with the held-out test split (X_test float32, y_test), which
the integration tests and the benchmark feed through dynserve and compare with xgboost's own
prediction of the same artifact.

Debian packages only (python3-xgboost, python3-sklearn, python3-numpy); deterministic: fixed
seeds and a single training thread, so the same package versions give the same bytes.
"""
import json
import os
import sys

import numpy as np
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.model_selection import train_test_split

MODELS = {
    # name: (dataset loader, xgboost parameters, boosting rounds)
    "breast_cancer": (load_breast_cancer,
                      {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3}, 40),
    "iris": (load_iris,
             {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3}, 30),
    "diabetes": (load_diabetes,
                 {"objective": "reg:squarederror", "max_depth": 3, "eta": 0.1}, 80),
}


def build(outdir, tdir, name, loader, params, rounds):
    data = loader()
    x = data.data.astype(np.float32)
    y = data.target
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=7)
    booster = xgb.train(dict(params, seed=7, nthread=1), xgb.DMatrix(x_train, label=y_train),
                        num_boost_round=rounds)
    vdir = os.path.join(outdir, name, "1")
    os.makedirs(vdir, exist_ok=True)
    booster.save_model(os.path.join(vdir, "model.json"))
    config = {
        "backend": "xgboost",
        # Inputs and outputs are read from the booster by the backend; the config only says how
        # to run it. nthread: OpenMP threads per prediction (1 suits a server with many workers).
        "parameters": {"nthread": 1},
    }
    with open(os.path.join(vdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.makedirs(tdir, exist_ok=True)
    np.savez(os.path.join(tdir, name + ".npz"), X_test=x_test, y_test=y_test)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: make_models.py REPO_DIR TESTDATA_DIR")
    for name, (loader, params, rounds) in MODELS.items():
        build(sys.argv[1], sys.argv[2], name, loader, params, rounds)


if __name__ == "__main__":
    main()
