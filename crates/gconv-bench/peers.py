"""The bench's peers: PyTorch (CPU) and ONNX Runtime (CPU) on the work gconv-bench measures,
so the ratios in its report come from one run on one machine. gconv-bench runs this when a
Python with torch, torchvision and onnxruntime is found (GCONV_BENCH_PYTHON, else python3);
nothing else needs it.

    python3 crates/gconv-bench/peers.py [--quick]

Prints one JSON object: {"torch": {"resnet18": {"infer": {"1": images/s, "16": ...},
"train": {"16": ...}}, ...}, "onnxruntime": {"resnet18": {"infer": {...}}, ...},
"threads": N, "torch_version": ..., "onnxruntime_version": ...}.
"""

import json
import os
import statistics
import sys
import tempfile
import time

import torch
import torchvision

QUICK = "--quick" in sys.argv
MODELS = ["resnet18", "mobilenet_v2"]
INFER = (32 if QUICK else 224, [1, 2] if QUICK else [1, 16])
TRAIN = (32 if QUICK else 64, 2 if QUICK else 16)
RUNS = 1 if QUICK else 5
threads = os.cpu_count() or 1
torch.set_num_threads(threads)


def median_seconds(f, runs=RUNS):
    f()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def model(name, classes):
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None, num_classes=classes)


report = {"torch": {}, "onnxruntime": {}, "threads": threads, "torch_version": torch.__version__}
for name in MODELS:
    size, batches = INFER
    net = model(name, 1000).eval()
    rows = {}
    with torch.no_grad():
        for b in batches:
            x = torch.randn(b, 3, size, size)
            rows[str(b)] = b / median_seconds(lambda: net(x))
    size, b = TRAIN
    train = model(name, 10).train()
    opt = torch.optim.Adam(train.parameters(), lr=1e-3)
    x, y = torch.randn(b, 3, size, size), torch.randint(0, 10, (b,))

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(train(x), y).backward()
        opt.step()

    report["torch"][name] = {"infer": rows, "train": {str(b): b / median_seconds(step)}}

try:
    import onnxruntime as ort

    report["onnxruntime_version"] = ort.__version__
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        for name in MODELS:
            size, batches = INFER
            path = os.path.join(tmp, f"{name}.onnx")
            torch.onnx.export(model(name, 1000).eval(), torch.randn(1, 3, size, size), path,
                              opset_version=17, dynamo=False, input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}})
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            rows = {}
            for b in batches:
                x = torch.randn(b, 3, size, size).numpy()
                rows[str(b)] = b / median_seconds(lambda: session.run(None, {"input": x}))
            report["onnxruntime"][name] = {"infer": rows}
except ImportError:
    report["onnxruntime"] = None

print(json.dumps(report))
