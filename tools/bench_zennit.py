"""Times Zennit's composites and a plain gradient on VGG16 at 224 (batch 1), as
benches/attribution.rs times netlens's, on the same machine; on a GPU both with PyTorch's
default precision (TF32 convolutions) and in strict FP32.

Run: python3 tools/bench_zennit.py [cpu|cuda]   (needs torch, torchvision, zennit)
"""
import json
import os
import sys

import torch
import torchvision
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat

sys.path.insert(0, os.path.dirname(__file__))
from timing import precisions, timeit  # noqa: E402

DEV = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu")


def main():
    out = {}
    for setting, apply in precisions(DEV):
        apply()
        print(f"-- {setting}")
        out[setting] = run()
    print(json.dumps({"device": str(DEV), "torch": torch.__version__, "seconds": out}))


def run():
    model = torchvision.models.vgg16(weights=None).eval().to(DEV)
    x = torch.full((1, 3, 224, 224), 0.1, device=DEV)
    eye = torch.eye(1000, device=DEV)[[3]]
    rows = {}
    with Gradient(model=model) as attributor:
        rows["gradient"] = timeit(lambda: attributor(x, lambda out: eye * out), DEV, 5)
    for name, comp in [("EpsilonPlus", EpsilonPlus()), ("EpsilonPlusFlat", EpsilonPlusFlat()),
                       ("EpsilonGammaBox", EpsilonGammaBox(low=-3.0, high=3.0)), ("EpsilonAlpha2Beta1", EpsilonAlpha2Beta1()),
                       ("EpsilonAlpha2Beta1Flat", EpsilonAlpha2Beta1Flat())]:
        with Gradient(model=model, composite=comp) as attributor:
            rows[name] = timeit(lambda: attributor(x, lambda out: eye * out), DEV, 5)
    for k, v in rows.items():
        print(f"{k:<24} {v * 1e3:9.1f} ms  {v / rows['gradient']:.2f}x gradient")
    return rows


if __name__ == "__main__":
    main()
