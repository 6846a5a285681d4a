"""Times PyTorch (CPU) on the shapes of benches/ so netlens can be compared on the same machine.

Run: python3 tools/bench_torch.py [--json out.json]
Shapes mirror benches/common.rs and benches/vgg16.rs; keep them in step.
Prints the median time and GFLOP/s of each, like criterion's numbers for netlens; on a GPU
once with PyTorch's default precision (TF32 convolutions) and once in strict FP32.
"""
import argparse
import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from timing import precisions, timeit  # noqa: E402

CONVS = [("conv1_2 b1", (1, 64, 224, 224), 64), ("conv3_2 b1", (1, 256, 56, 56), 256), ("conv5_2 b8", (8, 512, 14, 14), 512)]
LINEARS = [("fc6 b1", 1, 25088, 4096), ("fc6 b8", 8, 25088, 4096), ("fc7 b32", 32, 4096, 4096)]
POOLS = [("pool1 b8", (8, 64, 224, 224)), ("pool4 b8", (8, 512, 28, 28))]
VGG16_FLOPS = 30_946_000_000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    rows = []

    for setting, apply in precisions(dev):
        apply()
        run(a, dev, setting, rows)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, f, indent=1)


def run(a, dev, setting, rows):
    """Every shape once under the current precision setting."""

    def report(group, name, t, flops):
        rows.append({"group": group, "name": name, "setting": setting, "median_s": t, "gflops": flops / t / 1e9})
        print(f"{setting:<8} {group:<18} {name:<12} {t * 1e3:10.2f} ms {flops / t / 1e9:8.1f} GFLOP/s", flush=True)

    with torch.inference_mode():
        for name, d, cout in CONVS:
            x, w, b = torch.randn(d, device=dev), torch.randn(cout, d[1], 3, 3, device=dev), torch.randn(cout, device=dev)
            t = timeit(lambda: F.relu(F.conv2d(x, w, b, padding=1)), dev, a.reps, 2)
            report("conv2d", name, t, 2 * d[0] * d[2] * d[3] * cout * d[1] * 9)
        for name, n, k, out in LINEARS:
            x, w, b = torch.randn(n, k, device=dev), torch.randn(out, k, device=dev), torch.randn(out, device=dev)
            t = timeit(lambda: F.linear(x, w, b), dev, a.reps, 2)
            report("linear", name, t, 2 * n * k * out)
        for name, d in POOLS:
            x = torch.randn(d, device=dev)
            t = timeit(lambda: F.max_pool2d(x, 2, 2, return_indices=True), dev, a.reps, 2)
            report("max_pool2d", name, t, x.numel())
        model = torchvision.models.vgg16(weights=None).eval().to(dev)
        for n in (1, 8):
            x = torch.randn(n, 3, 224, 224, device=dev)
            t = timeit(lambda: model(x), dev, max(3, a.reps // 2), 1)
            report("vgg16_forward_224", f"batch {n}", t, VGG16_FLOPS * n)


if __name__ == "__main__":
    main()
