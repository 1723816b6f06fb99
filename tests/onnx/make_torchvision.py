"""Exports torchvision's resnet18, mobilenet_v2 and squeezenet1_1 (random weights, seed 0,
eval mode) to ONNX at opset 17 with a dynamic batch, with an input batch and PyTorch's
logits, into tests/onnx/large/ (not committed: 5 to 45 MB each). The suite's
`torchvision_exports_reproduce_pytorchs_logits` runs them when they are there.

    pip install torch torchvision onnx safetensors
    python3 tests/onnx/make_torchvision.py
"""

import os

import torch
import torchvision
from safetensors.torch import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "large")
os.makedirs(HERE, exist_ok=True)

for name in ["resnet18", "mobilenet_v2", "squeezenet1_1"]:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    # Non-trivial batch-norm statistics, as a trained model has.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(HERE, f"{name}.onnx")
    torch.onnx.export(model, x, path, opset_version=17, dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    save_file({"input": x.contiguous(), "output": y.contiguous()},
              os.path.join(HERE, f"{name}.expected.safetensors"))
    print(name, os.path.getsize(path), "bytes")
