"""The README's speed table: netlens and its peers (PyTorch, Captum, Zennit) on the same
inputs, on the same machine, in one run, with the ratio of their times.

Run: python3 tools/speed_table.py [--device cpu|cuda] [--reps N] [--quick] [--json out.json]
(needs torch, torchvision, captum, zennit, safetensors, Pillow; builds and runs
`cargo run --release --example speed`, which prints netlens's side, or runs the binary
`--speed-bin` names where the machine has no cargo: tools/device_check.sh).

netlens runs on the machine's wgpu adapter (NETLENS_BACKEND / NETLENS_GEMM choose it);
the peers on --device with its threads as PyTorch sets them. On a GPU each peer row is
timed twice: with PyTorch's default precision (cuDNN may use TF32 tensor cores) and in
strict FP32 (TF32 off), which is what netlens computes. The ratio column is netlens's time
over the peer's: below 1 netlens is faster.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from captum.attr import IntegratedGradients, Occlusion, Saliency
from PIL import Image
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat
from zennit.torchvision import ResNetCanonizer

sys.path.insert(0, os.path.dirname(__file__))
from timing import precisions, timeit  # noqa: E402
from train_demo import CFG, HIDDEN, MEAN, SHAPES, STD  # noqa: E402
from vgg_like import TorchvisionVGG  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
# Keep in step with examples/speed.rs.
CONVS = [("conv1_1", 3, 224, 64), ("conv1_2", 64, 224, 64), ("conv2_1", 64, 112, 128), ("conv2_2", 128, 112, 128),
         ("conv3_1", 128, 56, 256), ("conv3_2", 256, 56, 256), ("conv4_1", 256, 28, 512), ("conv4_2", 512, 28, 512),
         ("conv5_1", 512, 14, 512)]
LINEARS = [("fc6", 25088, 4096), ("fc7", 4096, 4096), ("fc8", 4096, 1000)]
RESNET_COMPOSITES = [("EpsilonPlus", EpsilonPlus), ("EpsilonAlpha2Beta1", EpsilonAlpha2Beta1)]
COMPOSITES = [("EpsilonPlus", EpsilonPlus), ("EpsilonPlusFlat", EpsilonPlusFlat),
              ("EpsilonGammaBox", lambda: EpsilonGammaBox(low=-3.0, high=3.0)), ("EpsilonAlpha2Beta1", EpsilonAlpha2Beta1),
              ("EpsilonAlpha2Beta1Flat", EpsilonAlpha2Beta1Flat)]


def fill(shape, dev):
    n = int(np.prod(shape))
    v = ((np.arange(n, dtype=np.int64) * 7919) % 1000).astype(np.float32) / 1000 - 0.5
    return torch.from_numpy(v.reshape(shape)).to(dev)


def netlens_rows(reps, quick, binary=None):
    tail = ["--reps", str(reps)] + (["--quick"] if quick else [])
    cmd = [binary] + tail if binary else ["cargo", "run", "--release", "--quiet", "--example", "speed", "--"] + tail
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return {r["name"]: r for r in map(json.loads, filter(None, out.splitlines()))}


def peer_rows(dev, reps, quick):
    """(name -> (peer, seconds)) under the current precision setting."""
    rows = {}
    with torch.inference_mode():
        for name, cin, hw, cout in CONVS:
            x, w, b = fill((1, cin, hw, hw), dev), fill((cout, cin, 3, 3), dev), fill((cout,), dev)
            rows[f"conv {name} b1"] = ("PyTorch", timeit(lambda: F.relu(F.conv2d(x, w, b, padding=1)), dev, reps, 1))
        for name, k, out in LINEARS:
            x, w, b = fill((1, k), dev), fill((out, k), dev), fill((out,), dev)
            rows[f"linear {name} b1"] = ("PyTorch", timeit(lambda: F.linear(x, w, b), dev, reps, 1))
    vgg = torchvision.models.vgg16(weights=None).eval().to(dev)
    sal = Saliency(vgg)
    for n in [1] if quick else [1, 8]:
        x = fill((n, 3, 224, 224), dev)
        with torch.inference_mode():
            rows[f"vgg16 forward b{n}"] = ("PyTorch", timeit(lambda: vgg(x), dev, reps, 1))
        rows[f"vgg16 gradient b{n}"] = ("Captum Saliency", timeit(lambda: sal.attribute(x, target=3, abs=False), dev, reps, 1))
    x = fill((1, 3, 224, 224), dev)
    eye = torch.eye(1000, device=dev)[[3]]
    for name, make in COMPOSITES:
        with Gradient(model=vgg, composite=make()) as attributor:
            rows[f"vgg16 lrp {name} b1"] = ("Zennit", timeit(lambda: attributor(x, lambda out: eye * out), dev, reps, 1))
    resnet = torchvision.models.resnet50(weights=None).eval().to(dev)
    with torch.inference_mode():
        rows["resnet50 forward b1"] = ("PyTorch", timeit(lambda: resnet(x), dev, reps, 1))
    resnet_sal = Saliency(resnet)
    rows["resnet50 gradient b1"] = ("Captum Saliency", timeit(
        lambda: resnet_sal.attribute(x, target=3, abs=False), dev, reps, 1))
    for name, make in RESNET_COMPOSITES:
        with Gradient(model=resnet, composite=make(canonizers=[ResNetCanonizer()])) as attributor:
            rows[f"resnet50 lrp {name} b1"] = ("Zennit", timeit(lambda: attributor(x, lambda out: eye * out), dev, reps, 1))
    demo = TorchvisionVGG(CFG, hidden=HIDDEN, classes=len(SHAPES)).eval()
    demo.load_state_dict(load_file(os.path.join(ROOT, "models", "shapes-vgg.safetensors")))
    demo = demo.to(dev)
    img = np.asarray(Image.open(os.path.join(ROOT, "models", "samples", "star.png")).convert("RGB"), dtype=np.float32) / 255
    xi = ((torch.from_numpy(img).permute(2, 0, 1) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None].to(dev)
    ig = IntegratedGradients(demo)
    rows["demo integrated-gradients 50 steps"] = (
        "Captum", timeit(lambda: ig.attribute(xi, target=3, n_steps=50, method="gausslegendre"), dev, reps, 1))
    occ = Occlusion(demo)
    for w, s in [(16, 8), (8, 4)]:
        rows[f"demo occlusion w{w} s{s}"] = ("Captum", timeit(
            lambda: occ.attribute(xi, target=3, sliding_window_shapes=(3, w, w), strides=(3, s, s), baselines=0), dev, reps, 1))
    return rows


def ms(s):
    return f"{s * 1e3:,.0f} ms" if s >= 0.1 else f"{s * 1e3:.1f} ms"


def ratio_rows(ours):
    """(label, numerator, denominator): gradient over forward at each batch, each LRP
    composite over the gradient at batch 1."""
    rows = []
    for n in (1, 8):
        if f"vgg16 gradient b{n}" in ours:
            rows.append((f"VGG16 gradient / forward, batch {n}", f"vgg16 gradient b{n}", f"vgg16 forward b{n}"))
    for name, _ in COMPOSITES:
        if f"vgg16 lrp {name} b1" in ours:
            rows.append((f"LRP {name} / gradient, batch 1", f"vgg16 lrp {name} b1", "vgg16 gradient b1"))
    if "resnet50 gradient b1" in ours:
        rows.append(("ResNet-50 gradient / forward, batch 1", "resnet50 gradient b1", "resnet50 forward b1"))
    for name, _ in RESNET_COMPOSITES:
        if f"resnet50 lrp {name} b1" in ours:
            rows.append((f"ResNet-50 LRP {name} / gradient, batch 1", f"resnet50 lrp {name} b1", "resnet50 gradient b1"))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="batch 1 only")
    ap.add_argument("--json")
    ap.add_argument("--speed-bin", help="a built examples/speed binary, for machines without cargo")
    a = ap.parse_args()
    dev = torch.device(a.device)
    ours = netlens_rows(a.reps, a.quick, a.speed_bin)
    peers = {}
    for setting, apply in precisions(dev):
        apply()
        peers[setting] = peer_rows(dev, a.reps, a.quick)
    settings = list(peers)
    head = "| task | netlens | " + " | ".join(f"peer ({s}) | netlens / peer" for s in settings) + " |"
    print(f"netlens: {os.environ.get('NETLENS_BACKEND', 'auto')} backend; peers: torch {torch.__version__} on {dev}, "
          f"{torch.get_num_threads()} threads\n")
    print(head)
    print("|" + "---|" * (2 + 2 * len(settings)))
    for name, r in ours.items():
        cells = [name, ms(r["seconds"]) + (f" ({r['gflops']:.1f} GFLOP/s)" if r.get("gflops") else "")]
        for s in settings:
            peer, t = peers[s].get(name, ("-", None))
            cells += [f"{peer} {ms(t)}" if t else "-", f"{r['seconds'] / t:.2f}x" if t else "-"]
        print("| " + " | ".join(cells) + " |")
    print("\nwithin each tool (issue 9's lines on a GPU: gradient <= 2.5x forward, every LRP composite <= 1.5x gradient):\n")
    print("| ratio | netlens | " + " | ".join(f"peer ({s})" for s in settings) + " |")
    print("|" + "---|" * (2 + len(settings)))
    for name, num, den in ratio_rows(ours):
        cells = [name, f"{ours[num]['seconds'] / ours[den]['seconds']:.2f}x"]
        for s in settings:
            p = peers[s]
            cells.append(f"{p[num][1] / p[den][1]:.2f}x" if num in p and den in p else "-")
        print("| " + " | ".join(cells) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"netlens": ours, "peers": {s: {k: {"peer": p, "seconds": t} for k, (p, t) in v.items()} for s, v in peers.items()},
                       "torch": torch.__version__, "threads": torch.get_num_threads(), "device": str(dev)}, f, indent=1)


if __name__ == "__main__":
    main()
