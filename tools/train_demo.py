"""Trains the demo model shipped in models/: a small torchvision-named VGG on netlens's
procedural shapes dataset, then exports it with metadata and writes the sample images.

Run from the repo root: python3 tools/train_demo.py  (needs torch, safetensors, numpy, Pillow;
builds netlens with cargo to generate the data). Deterministic up to PyTorch's CPU kernels.
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from vgg_like import TorchvisionVGG  # noqa: E402

CFG = [32, "M", 64, "M", 96, 96, "M", 128, "M", 128, "M"]
HIDDEN = 64
SHAPES = ["circle", "triangle", "square", "star", "cross", "ring", "arrow", "crescent"]
SIZE = 64
MEAN = [0.5, 0.5, 0.5]
STD = [0.25, 0.25, 0.25]
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


NETLENS = ["cargo", "run", "--release", "-q", "--"]


def synth(out, count, seed):
    subprocess.run(NETLENS + ["synth", "--out", out, "--count", str(count), "--size", str(SIZE), "--seed", str(seed)],
                   check=True, cwd=ROOT)


def load(dirname):
    rows = list(csv.DictReader(open(os.path.join(dirname, "labels.csv"))))
    x = np.stack([np.asarray(Image.open(os.path.join(dirname, "images", r["image"])).convert("RGB")) for r in rows])
    x = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255.0)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return x, torch.tensor([int(r["class"]) for r in rows])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", type=int, default=60000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--netlens", help="a built netlens binary (default: cargo run --release)")
    ap.add_argument("--samples-only", action="store_true", help="only (re)write models/samples")
    ap.add_argument("--no-samples", action="store_true")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "shapes-vgg.safetensors"))
    a = ap.parse_args()
    if a.netlens:
        NETLENS[:] = [a.netlens]
    if a.samples_only:
        write_samples(os.path.join(os.path.dirname(a.out), "samples"))
        return
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    synth(os.path.join(tmp, "train"), a.train, seed=1)
    synth(os.path.join(tmp, "val"), 1000, seed=2)
    xtr, ytr = load(os.path.join(tmp, "train"))
    xva, yva = load(os.path.join(tmp, "val"))
    # Trained with batch norm, exported BN-free: each BN is folded into its conv.
    model = TorchvisionVGG(CFG, hidden=HIDDEN, classes=len(SHAPES), batch_norm=True).to(dev)
    xtr, ytr, xva, yva = xtr.to(dev), ytr.to(dev), xva.to(dev), yva.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = a.epochs * ((len(xtr) + 127) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(xtr), device=dev)
        t, loss_sum = time.time(), 0.0
        for i in range(0, len(xtr), 128):
            idx = perm[i:i + 128]
            xb = xtr[idx]
            if torch.rand(()) < 0.5:  # mirror: every class is mirror-symmetric as a set
                xb = xb.flip(3)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = (model(xva).argmax(1) == yva).float().mean().item()
        print(f"epoch {epoch + 1}: loss {loss_sum / len(xtr):.4f} val acc {acc:.4f} ({time.time() - t:.0f}s)", flush=True)
    meta = {"format": 1, "arch": "shapes-vgg", "input_size": [SIZE, SIZE], "resize": SIZE,
            "mean": MEAN, "std": STD, "classes": SHAPES}
    model = fold_batchnorm(model.cpu())
    xva, yva = xva.cpu(), yva.cpu()
    with torch.no_grad():
        acc = (model(xva).argmax(1) == yva).float().mean().item()
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    save_file(state, a.out, metadata={"netlens": json.dumps(meta)})
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1e6:.1f} MB), val acc {acc:.4f}")
    if not a.no_samples:
        write_samples(os.path.join(os.path.dirname(a.out), "samples"))
    shutil.rmtree(tmp)


def fold_batchnorm(bn_model):
    """The same network without batch norm: W' = W s, b' = (b - mean) s + beta, s = gamma / sqrt(var + eps)."""
    plain = TorchvisionVGG(CFG, hidden=HIDDEN, classes=len(SHAPES)).eval()
    convs = [m for m in bn_model.features if isinstance(m, torch.nn.Conv2d)]
    bns = [m for m in bn_model.features if isinstance(m, torch.nn.BatchNorm2d)]
    targets = [m for m in plain.features if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        for c, bn, t in zip(convs, bns, targets):
            s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            t.weight.copy_(c.weight * s.view(-1, 1, 1, 1))
            t.bias.copy_((c.bias - bn.running_mean) * s + bn.bias)
        plain.classifier.load_state_dict(bn_model.classifier.state_dict())
    return plain


def write_samples(dest):
    """One image per class, with its concept masks, from a seed used nowhere else (7)."""
    tmp = tempfile.mkdtemp()
    synth(tmp, 64, seed=7)
    rows = list(csv.DictReader(open(os.path.join(tmp, "labels.csv"))))
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    for k, name in enumerate(SHAPES):
        r = next(r for r in rows if int(r["class"]) == k)
        stem = r["image"][:-4]
        for suffix in ["", "_color", "_object", "_part", "_texture"]:
            src = os.path.join(tmp, "images", stem + suffix + ".png")
            if os.path.exists(src):
                shutil.copy(src, os.path.join(dest, f"{name}{suffix}.png"))
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
