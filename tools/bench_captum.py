"""Times PyTorch + Captum on what benches/attribution.rs times, on the same machine:
VGG16 at 224 (forward, gradient) and occlusion on the demo model (window 8, stride 4); on a
GPU both with PyTorch's default precision (TF32 convolutions) and in strict FP32.

Run: python3 tools/bench_captum.py [cpu|cuda]   (needs torch, torchvision, captum, safetensors, Pillow)
"""
import json
import os
import sys

import numpy as np
import torch
import torchvision
from captum.attr import Occlusion, Saliency
from PIL import Image
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(__file__))
from timing import precisions, timeit  # noqa: E402
from train_demo import CFG, HIDDEN, MEAN, SHAPES, STD  # noqa: E402
from vgg_like import TorchvisionVGG  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


DEV = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu")


def main():
    out = {}
    for setting, apply in precisions(DEV):
        apply()
        print(f"-- {setting}")
        out[setting] = run()
    print(json.dumps({"device": str(DEV), "torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": out}))


def run():
    rows = {}
    vgg = torchvision.models.vgg16(weights=None).eval().to(DEV)
    x = torch.full((1, 3, 224, 224), 0.1, device=DEV)
    with torch.no_grad():
        rows["vgg16 forward"] = timeit(lambda: vgg(x), DEV, 5)
    sal = Saliency(vgg)
    rows["vgg16 gradient (Saliency)"] = timeit(lambda: sal.attribute(x, target=3, abs=False), DEV, 5)
    demo = TorchvisionVGG(CFG, hidden=HIDDEN, classes=len(SHAPES)).eval()
    demo.load_state_dict(load_file(os.path.join(ROOT, "models", "shapes-vgg.safetensors")))
    demo = demo.to(DEV)
    img = np.asarray(Image.open(os.path.join(ROOT, "models", "samples", "star.png")).convert("RGB"), dtype=np.float32) / 255
    xi = ((torch.from_numpy(img).permute(2, 0, 1) - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None].to(DEV)
    occ = Occlusion(demo)
    rows["demo occlusion w8 s4"] = timeit(
        lambda: occ.attribute(xi, target=3, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0), DEV, 5)
    for k, v in rows.items():
        print(f"{k:<28} {v * 1e3:10.1f} ms")
    print(f"gradient / forward: {rows['vgg16 gradient (Saliency)'] / rows['vgg16 forward']:.2f}x")
    return rows


if __name__ == "__main__":
    main()
