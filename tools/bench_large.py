"""A torchvision model's gradient on one image, netlens against PyTorch on the same machine
in the same run, times and maps. Made for VGG16 on an image larger than a storage binding
holds (lavapipe's 128 MiB is passed at about 724x724), whose first layers netlens then
runs in row bands; `--arch` takes any VGG or ResNet that tools/export_vgg.py exports.

Run: python3 tools/bench_large.py MODEL.safetensors [--arch vgg16] [--size 1024] [--reps 2]
(MODEL from tools/export_vgg.py --arch ARCH, e.g. with --random; needs torch,
torchvision, safetensors and a release build: cargo build --release)
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from timing import precisions  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NETLENS = os.path.join(ROOT, "target", "release", "netlens")


def torch_gradient(vgg, x, target):
    x = x.clone().requires_grad_(True)
    vgg(x)[0, target].backward()
    return x.grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--arch", default="vgg16")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    dev = torch.device(a.device)
    vgg = getattr(torchvision.models, a.arch)(weights=None).eval()
    missing, unexpected = vgg.load_state_dict(load_file(a.model), strict=False)
    # the export leaves out batch norms' num_batches_tracked, which eval mode never reads
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{a.model} is not a torchvision {a.arch}: missing {missing}, unexpected {unexpected}")
    vgg = vgg.to(dev)
    x = torch.from_numpy(
        np.random.default_rng(0).standard_normal((1, 3, a.size, a.size)).astype(np.float32)
    )
    with torch.no_grad():
        target = int(vgg(x.to(dev)).argmax())
    out = {"size": a.size, "target": target, "threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as d:
        xp, gp = os.path.join(d, "x.npy"), os.path.join(d, "g.npy")
        np.save(xp, x.numpy())
        runs = []
        for _ in range(a.reps):
            cmd = [NETLENS, "attribute", a.model, xp, "--method", "gradient",
                   "--target", str(target), "--out", gp, "--overwrite"]
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - t0
            runs.append((json.loads(r.stdout)["maps"][0]["seconds"], wall))
        g = np.load(gp)
        out["netlens_gradient_s"] = sorted(s for s, _ in runs)
        out["netlens_command_s"] = sorted(w for _, w in runs)
    for setting, apply in precisions(dev):
        apply()
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            want = torch_gradient(vgg, x.to(dev), target)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        want = want.cpu().numpy()
        out[f"torch_gradient_s ({setting})"] = sorted(times)
        out[f"rel_l2 vs torch ({setting})"] = float(
            np.linalg.norm(g - want) / np.linalg.norm(want)
        )
    # float64 on the CPU: how far each float32 gradient is from the exact one (a random
    # network's gradient can be ill-conditioned enough that fp32 runs differ by 1e-3)
    exact = torch_gradient(vgg.cpu().double(), x.double(), target).numpy()
    scale = np.linalg.norm(exact)
    out["rel_l2 vs float64 (netlens)"] = float(np.linalg.norm(g - exact) / scale)
    for setting, apply in precisions(dev):
        apply()
        got = torch_gradient(vgg.to(dev).float(), x.to(dev), target).cpu().numpy()
        out[f"rel_l2 vs float64 (torch {setting})"] = float(np.linalg.norm(got - exact) / scale)
    best = min(out["netlens_gradient_s"])
    for k in [k for k in out if k.startswith("torch_gradient_s")]:
        out[f"netlens / {k}"] = round(best / min(out[k]), 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
