"""Writes optimizers-expected.safetensors (this directory): PyTorch's parameters after three
training steps of a small nn.Sequential(Linear(6, 5), ReLU(), Linear(5, 3)) with each of
Adam (weight_decay 0.1), AdamW (weight_decay 0.1) and SGD (momentum 0.9, weight_decay 0.01),
the learning rate scaled per step by 1, 0.5, 0.25 (LambdaLR) and cross_entropy with
label_smoothing 0.1. Holds `x`, `labels`, the initial `init.*` parameters and `<optimizer>.*`
after the steps. Not run by CI or the tests: the file is committed.

    pip install torch safetensors
    python3 tests/checkpoints/make_optimizers.py
"""

import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(11)
init = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
x = torch.randn(8, 6)
labels = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1])
factors = [1.0, 0.5, 0.25]
out = {"x": x, "labels": labels}
out.update({f"init.{k}": v.detach().clone() for k, v in init.state_dict().items()})
for name, make in [
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01, weight_decay=0.1)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.1)),
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
]:
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    model.load_state_dict(init.state_dict())
    opt = make(model.parameters())
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: factors[min(step, 2)])
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), labels, label_smoothing=0.1).backward()
        opt.step()
        sched.step()
    out.update({f"{name}.{k}": v.detach().clone() for k, v in model.state_dict().items()})
save_file({k: v.contiguous() for k, v in out.items()},
          os.path.join(HERE, "optimizers-expected.safetensors"))
