"""Writes the operator coverage models of this directory with their expected outputs:

- operators.onnx: a PyTorch model exported at opset 17 (dynamic batch) with ConvTranspose
  (output_padding), Hardtanh (Clip with bounds as inputs), a product with a constant (Mul),
  F.pad (Pad, its list folded from ConstantOfShape/Reshape/Slice/Transpose/Cast), a 'same'
  convolution with an even kernel (asymmetric padding), GlobalMaxPool, MatMul and Softmax;
  the expected output is PyTorch's.
- handmade.onnx: a graph written with onnx.helper at opset 11 for attributes PyTorch does not
  emit: auto_pad SAME_UPPER / SAME_LOWER with strides (asymmetric pads), MaxPool with explicit
  asymmetric pads, ConvTranspose with output_shape and with SAME_UPPER, Pad with a constant
  value, Clip with only a minimum, Div by a constant, Gemm with alpha, beta and transB = 0,
  Softmax at opset 11; the expected output is ONNX Runtime's.

    pip install torch onnx onnxruntime safetensors
    python3 tests/onnx/make_operators.py
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


class Operators(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 4, 3, padding=1)
        self.up = nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1, output_padding=1)
        self.c2 = nn.Conv2d(4, 6, 4, padding="same")
        self.w = nn.Parameter(torch.randn(6, 5) * 0.3)

    def forward(self, x):
        x = self.up(self.c1(x))
        x = F.hardtanh(x, -1.0, 1.0) * 0.5
        x = F.pad(x, (1, 0, 0, 1))
        x = F.adaptive_max_pool2d(self.c2(x), 1).flatten(1)
        return torch.softmax(x @ self.w, dim=1)


def pytorch_export():
    torch.manual_seed(3)
    model = Operators().eval()
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        y = model(x)
    torch.onnx.export(model, x, os.path.join(HERE, "operators.onnx"), opset_version=17,
                      dynamo=False, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    save_file({"input": x.numpy(), "output": y.numpy()},
              os.path.join(HERE, "operators.expected.safetensors"))


def handmade():
    rng = np.random.default_rng(5)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32),
                                       name)

    inits = [
        init("w1", 4, 3, 4, 4), init("b1", 4),
        numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64), "pads"),
        numpy_helper.from_array(np.array(0.25, np.float32), "pad_value"),
        init("wt1", 4, 2, 3, 3), init("bt1", 2),
        init("wt2", 2, 3, 3, 3),
        numpy_helper.from_array(np.array(-0.3, np.float32), "clip_min"),
        numpy_helper.from_array(np.array(0.7, np.float32), "factor"),
        numpy_helper.from_array(np.array([2.0], np.float32), "divisor"),
        init("gemm_b", 3, 5), init("gemm_c", 5),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Pad", ["r1", "pads", "pad_value"], ["p1"], name="pad1"),
        helper.make_node("MaxPool", ["p1"], ["m1"], name="max1", kernel_shape=[2, 2],
                         pads=[0, 0, 1, 1]),
        helper.make_node("AveragePool", ["m1"], ["a1"], name="avg1", kernel_shape=[2, 2],
                         strides=[2, 2], auto_pad="SAME_LOWER", count_include_pad=1),
        helper.make_node("ConvTranspose", ["a1", "wt1", "bt1"], ["t1"], name="up1",
                         strides=[2, 2], output_shape=[6, 8]),
        helper.make_node("ConvTranspose", ["t1", "wt2"], ["t2"], name="up2", strides=[2, 2],
                         auto_pad="SAME_UPPER"),
        helper.make_node("Clip", ["t2", "clip_min"], ["k1"], name="clip1"),
        helper.make_node("Mul", ["factor", "k1"], ["s1"], name="mul1"),
        helper.make_node("Div", ["s1", "divisor"], ["s2"], name="div1"),
        helper.make_node("GlobalMaxPool", ["s2"], ["g1"], name="gmax"),
        helper.make_node("Flatten", ["g1"], ["f1"], name="flatten"),
        helper.make_node("Gemm", ["f1", "gemm_b", "gemm_c"], ["fc"], name="fc", alpha=0.5,
                         beta=2.0),
        helper.make_node("Softmax", ["fc"], ["output"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "handmade",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 9, 9])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 5])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = os.path.join(HERE, "handmade.onnx")
    onnx.save(model, path)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    (y,) = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    save_file({"input": x, "output": y}, os.path.join(HERE, "handmade.expected.safetensors"))


if __name__ == "__main__":
    pytorch_export()
    handmade()
