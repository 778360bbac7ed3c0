"""fastapi_models: the peer a seed user would write for the real example models — FastAPI +
pydantic OIP models (the shape of ../shared/bench/anchors/fastapi_oip.py) + the model's Python
library, serving the same artifacts dynserve serves:

  POST /v2/models/<xgb model>/versions/1/infer   xgboost.Booster.inplace_predict on model.json
  POST /v2/models/digits/versions/1/infer        the ONNX MLP evaluated with numpy (weights read
                                                 with onnx.numpy_helper; Debian 12 ships no
                                                 onnxruntime, and numpy's BLAS matmul is the
                                                 fastest Python path it has)

usage: /usr/bin/python3 fastapi_models.py PORT MODEL_REPOSITORY [XGB_MODEL ...]
"""
import os
import sys
from typing import Any, Dict, List, Optional, Union

import numpy as np
import uvicorn
import xgboost as xgb
from fastapi import FastAPI, HTTPException
from onnx import load as onnx_load
from onnx import numpy_helper
from pydantic import BaseModel, Extra


class RequestInput(BaseModel, extra=Extra.forbid):
    name: str
    shape: List[int]
    datatype: str
    parameters: Optional[Dict[str, Any]] = None
    data: List[Any]


class RequestOutput(BaseModel, extra=Extra.forbid):
    name: str
    parameters: Optional[Dict[str, Any]] = None


class InferenceRequest(BaseModel, extra=Extra.forbid):
    id: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    inputs: List[RequestInput]
    outputs: Optional[List[RequestOutput]] = None


class ResponseOutput(BaseModel):
    name: str
    shape: List[int]
    datatype: str
    parameters: Optional[Dict[str, Any]] = None
    data: List[Union[float, int]]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: Optional[str] = None
    id: Optional[str] = None
    parameters: Optional[Dict[str, Any]] = None
    outputs: List[ResponseOutput]


app = FastAPI()
PORT = int(sys.argv[1])
REPO = sys.argv[2]
XGB_MODELS = sys.argv[3:] or ["breast_cancer"]


def matrix(req: InferenceRequest, cols: int) -> np.ndarray:
    t = req.inputs[0]
    if t.datatype != "FP32" or len(t.shape) != 2 or t.shape[1] != cols:
        raise HTTPException(status_code=400, detail=f"expected FP32 [-1,{cols}]")
    return np.asarray(t.data, dtype=np.float32).reshape(t.shape)


def add_xgb_route(name: str) -> None:
    booster = xgb.Booster(model_file=os.path.join(REPO, name, "1", "model.json"))
    booster.set_param({"nthread": 1})
    cols = booster.num_features()

    def infer(req: InferenceRequest) -> InferenceResponse:
        x = matrix(req, cols)
        p = booster.inplace_predict(x)
        outs = [ResponseOutput(name="probability", shape=[len(x), 1], datatype="FP32",
                               data=p.tolist()),
                ResponseOutput(name="label", shape=[len(x), 1], datatype="INT32",
                               data=(p >= 0.5).astype(np.int32).tolist())]
        return InferenceResponse(model_name=name, model_version="1", id=req.id, outputs=outs)

    app.post(f"/v2/models/{name}/versions/1/infer", response_model=InferenceResponse)(infer)


def add_onnx_route() -> None:
    m = onnx_load(os.path.join(REPO, "digits", "1", "model.onnx"))
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    layers = sum(1 for n in m.graph.node if n.op_type == "Gemm")
    weights = [(w[f"W{i}"].T.copy(), w[f"B{i}"]) for i in range(layers)]

    def infer(req: InferenceRequest) -> InferenceResponse:
        h = matrix(req, weights[0][0].shape[0])
        for i, (wi, bi) in enumerate(weights):
            h = h @ wi + bi
            if i + 1 < layers:
                h = np.maximum(h, 0)
        e = np.exp(h - h.max(axis=1, keepdims=True))
        p = e / e.sum(axis=1, keepdims=True)
        outs = [ResponseOutput(name="probabilities", shape=list(p.shape), datatype="FP32",
                               data=p.ravel().tolist())]
        return InferenceResponse(model_name="digits", model_version="1", id=req.id, outputs=outs)

    app.post("/v2/models/digits/versions/1/infer", response_model=InferenceResponse)(infer)


for model in XGB_MODELS:
    add_xgb_route(model)
add_onnx_route()

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=PORT, log_level="warning")
