"""A full-size torchvision ResNet's LRP maps from netlens's command line against Zennit's
(float64, the ResNetCanonizer, batch norms folded exactly beforehand as in
tools/make_resnet_fixtures.py), one image, the model's top class: relative L2 of each map
and the sums of relevance.

Run: python3 tools/resnet_zennit_check.py MODEL.safetensors [--arch resnet50] [--input x.npy]
(MODEL from tools/export_vgg.py --arch ARCH, e.g. with --random; without --input a seeded
random 224x224 image; needs torch, torchvision, zennit, safetensors and a release build)
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision
from safetensors.torch import load_file
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus
from zennit.torchvision import ResNetCanonizer

sys.path.insert(0, os.path.dirname(__file__))
from make_resnet_fixtures import fold_batch_norms  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
NETLENS = os.path.join(ROOT, "target", "release", "netlens")
METHODS = [("lrp-epsilon-plus", EpsilonPlus), ("lrp-epsilon-alpha2-beta1", EpsilonAlpha2Beta1),
           ("lrp-epsilon-gamma-box", lambda canonizers: EpsilonGammaBox(low=-3.0, high=3.0, canonizers=canonizers))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--input")
    a = ap.parse_args()
    m = getattr(torchvision.models, a.arch)(weights=None).eval()
    missing, unexpected = m.load_state_dict(load_file(a.model), strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"{a.model} is not a torchvision {a.arch}: missing {missing}, unexpected {unexpected}")
    m = fold_batch_norms(m.double())
    with tempfile.TemporaryDirectory() as d:
        xp = a.input or os.path.join(d, "x.npy")
        if not a.input:
            np.save(xp, np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32))
        x = torch.from_numpy(np.load(xp)).double()
        with torch.no_grad():
            logits = m(x)
        t = int(logits[0].argmax())
        start = torch.eye(logits.shape[1], dtype=x.dtype)[[t]] * logits
        for name, comp in METHODS:
            with Gradient(model=m, composite=comp(canonizers=[ResNetCanonizer()])) as attributor:
                _, rel = attributor(x, lambda _: start)
            out = os.path.join(d, "map.npy")
            subprocess.run([NETLENS, "attribute", a.model, xp, "--method", name, "--target", str(t), "--out", out,
                            "--overwrite"], check=True, capture_output=True)
            got, want = np.load(out), rel.numpy()
            print(f"{name}: rel L2 {np.linalg.norm(got - want) / np.linalg.norm(want):.2e}, "
                  f"relevance {got.sum():.4f} (netlens) {want.sum():.4f} (Zennit), logit {logits[0, t]:.4f}")


if __name__ == "__main__":
    main()
