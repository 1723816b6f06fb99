"""Makes the branching-model test data in this directory (see README.md). Not run by CI or the
tests: the files it writes are committed.

    pip install torch torchvision safetensors numpy
    python3 tests/checkpoints/make_branches.py

Writes
- branches.spec: gconv's model file of SPEC (the same model, one block per line);
- branches.safetensors: the state dict of SPEC below (residual and concatenation blocks),
  trained two epochs on the bundled digits, saved with safetensors.torch.save_file;
- branches-expected.safetensors: `x` (the first 32 test digits, normalised), `logits`;
- torchvision-expected.safetensors: `x` (2, 3, 64, 64) and the eval-mode logits of
  torchvision's resnet18 and mobilenet_v2 whose every state-dict tensor is `pattern(k, shape)`
  (k: the tensor's index among the sorted names), so the 58 MB of weights need not be
  committed; the metadata lists each model's state-dict names, shapes and dtypes.
"""

import gzip
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torchvision
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ASSETS = os.path.join(HERE, "..", "..", "assets", "mnist-10k")

# gconv's spec of the same model (tests/suite/torchvision.rs, crates/gconv-cli/tests/cli.rs).
SPEC = (
    "conv(1,16,k=3,p=1) bn relu res(conv(16,16,k=3,p=1) bn relu conv(16,16,k=3,p=1) bn) relu "
    "maxpool(2) cat(conv(16,16,k=1) relu6 | conv(16,8,k=3,p=1) relu | ) "
    "res(conv(40,32,k=3,s=2,p=1) bn relu, shortcut=conv(40,32,k=1,s=2) bn) "
    "gap flatten dropout(0.2) linear(10)"
)


class Res(nn.Module):
    """res(body) / res(body, shortcut=...): body(x) + x or body(x) + shortcut(x)."""

    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = nn.Sequential(*body)
        self.shortcut = nn.Sequential(*shortcut) if shortcut else None

    def forward(self, x):
        return self.body(x) + (self.shortcut(x) if self.shortcut is not None else x)


class Cat(nn.Module):
    """cat(a | b | ...): the branches' outputs along the channels (an empty branch is x)."""

    def __init__(self, *branches):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*b) for b in branches)

    def forward(self, x):
        return torch.cat([b(x) for b in self.branches], 1)


def branches_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        Res([nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
             nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16)]),
        nn.ReLU(),
        nn.MaxPool2d(2),
        Cat([nn.Conv2d(16, 16, 1), nn.ReLU6()], [nn.Conv2d(16, 8, 3, padding=1), nn.ReLU()], []),
        Res([nn.Conv2d(40, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU()],
            shortcut=[nn.Conv2d(40, 32, 1, stride=2), nn.BatchNorm2d(32)]),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32, 10),
    )


def idx(name):
    with gzip.open(os.path.join(ASSETS, name)) as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def digits(split):
    images = idx(f"{split}-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = idx(f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    x = (images - 0.1307) / 0.3081
    return torch.from_numpy(x[:, None]), torch.from_numpy(labels)


MODEL_FILE = """\
# A small residual + concatenation model for 1x28x28 digits (make_branches.py).
conv(1,16,k=3,p=1) bn relu
res(conv(16,16,k=3,p=1) bn relu conv(16,16,k=3,p=1) bn) relu   # 16 x 28 x 28
maxpool(2)
cat(conv(16,16,k=1) relu6 | conv(16,8,k=3,p=1) relu | )      # 16 + 8 + 16 channels
res(conv(40,32,k=3,s=2,p=1) bn relu, shortcut=conv(40,32,k=1,s=2) bn)
gap flatten dropout(0.2) linear(10)
"""


def make_branches():
    with open(os.path.join(HERE, "branches.spec"), "w") as f:
        f.write(MODEL_FILE)
    torch.manual_seed(0)
    model = branches_model()
    x, y = digits("train")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    for _ in range(2):
        for i in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    model.eval()
    tx, ty = digits("t10k")
    with torch.no_grad():
        accuracy = (model(tx).argmax(1) == ty).float().mean().item()
        logits = model(tx[:32])
    print(f"branches: test accuracy {100 * accuracy:.2f}% after two epochs")
    save_file(model.state_dict(), os.path.join(HERE, "branches.safetensors"))
    save_file({"x": tx[:32].contiguous(), "logits": logits.contiguous()},
              os.path.join(HERE, "branches-expected.safetensors"), {"spec": SPEC})


def pattern(k, shape):
    """Values in [-1, 1) from a 32-bit hash of (k, element index): gconv's tests compute the
    same ones (tests/suite/torchvision.rs)."""
    i = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64((k + 1) * 40503)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(15)
    h = (h * np.uint64(2246822519)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    return ((h >> np.uint64(8)).astype(np.float64) / 2.0 ** 24 * 2.0 - 1.0).reshape(shape)


def patterned(name, k, t):
    """The value of state-dict tensor `name` (index k, like t): He-uniform weights, batch
    norm's affine parameters and running statistics near their usual values."""
    s = pattern(k, tuple(t.shape))
    if name.endswith("num_batches_tracked"):
        return torch.zeros_like(t)
    if name.endswith("running_var"):
        v = 1.0 + 0.25 * (s + 1.0)
    elif name.endswith("running_mean") or name.endswith("bias"):
        v = 0.1 * s
    elif t.dim() == 1:
        v = 1.0 + 0.25 * s
    else:
        fan_in = int(np.prod(t.shape[1:]))
        v = s * np.sqrt(6.0 / fan_in)
    return torch.from_numpy(v.astype(np.float32))


def make_torchvision():
    x = torch.from_numpy(pattern(1000, (2, 3, 64, 64)).astype(np.float32))
    out = {"x": x}
    meta = {}
    for name in ["resnet18", "mobilenet_v2"]:
        model = getattr(torchvision.models, name)()
        state = model.state_dict()
        names = sorted(state)
        model.load_state_dict({n: patterned(n, k, state[n]) for k, n in enumerate(names)})
        model.eval()
        with torch.no_grad():
            out[f"{name}_logits"] = model(x).contiguous()
        meta[name] = json.dumps(
            [[n, list(state[n].shape), str(state[n].dtype).replace("torch.", "")] for n in names])
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters")
    save_file(out, os.path.join(HERE, "torchvision-expected.safetensors"), meta)


if __name__ == "__main__":
    make_branches()
    make_torchvision()
