"""Writes the small ONNX files the importer's error tests read (errors-*.onnx). Not run by CI
or the tests: the files are committed.

    pip install onnx numpy
    python3 tests/onnx/make_errors.py
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))


def model(nodes, inits, outputs=("y",), name="errors"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, name, [x], outs, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
conv = lambda out, **kw: helper.make_node("Conv", ["x", "w"], [out], name="conv", **kw)

cases = {
    # An operator gconv does not have.
    "errors-unsupported-op": model([conv("c"), helper.make_node("Erf", ["c"], ["y"], name="erf")], [w]),
    # A padding mode other than constant.
    "errors-reflect-pad": model(
        [helper.make_node("Pad", ["x", "pads"], ["y"], name="pad", mode="reflect")],
        [numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")],
    ),
    # Asymmetric pads where padding in front would change the averages' divisors.
    "errors-avgpool-asymmetric": model(
        [helper.make_node("AveragePool", ["x"], ["y"], name="avg", kernel_shape=[2, 2],
                          pads=[0, 0, 1, 1], count_include_pad=0)], []),
    # A product of two graph tensors (gconv multiplies by constants).
    "errors-mul-tensors": model(
        [conv("c"), helper.make_node("Mul", ["c", "c"], ["y"], name="square")], [w]),
    # Two graph outputs.
    "errors-two-outputs": model(
        [conv("y"), helper.make_node("Relu", ["y"], ["z"], name="relu")], [w], outputs=("y", "z")
    ),
}
for name, m in cases.items():
    onnx.save(m, os.path.join(HERE, f"{name}.onnx"))

# Weights in an external data file that is not there.
m = model([conv("y")], [w])
onnx.save(m, os.path.join(HERE, "errors-external.onnx"), save_as_external_data=True,
          all_tensors_to_one_file=True, location="errors-external.weights", size_threshold=0)
os.remove(os.path.join(HERE, "errors-external.weights"))
