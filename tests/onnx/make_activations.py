"""Writes activations.onnx and activations.expected.safetensors (this directory): LeakyReLU and
Sigmoid between convolutions, as PyTorch 2.15 exports them (opset 17, dynamic batch).

    pip install torch onnx safetensors
    python3 tests/onnx/make_activations.py
"""

import os

import torch
import torch.nn as nn
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))

torch.manual_seed(1)
model = nn.Sequential(
    nn.Conv2d(3, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(8, 8, 3), nn.Sigmoid(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
).eval()
x = torch.randn(3, 3, 12, 12) * 2
with torch.no_grad():
    y = model(x)
torch.onnx.export(model, x, os.path.join(HERE, "activations.onnx"), opset_version=17,
                  dynamo=False, input_names=["input"], output_names=["output"],
                  dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
save_file({"input": x.contiguous(), "output": y.contiguous()},
          os.path.join(HERE, "activations.expected.safetensors"))
