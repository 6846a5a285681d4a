"""Exports a torchvision VGG or ResNet to the safetensors file netlens loads.

  python3 tools/export_vgg.py --arch vgg16 --weights vgg16.pth --out vgg16.safetensors
  python3 tools/export_vgg.py --arch vgg11_bn --random --out vgg11_bn.safetensors
  python3 tools/export_vgg.py --arch resnet50 --weights resnet50.pth --out resnet50.safetensors

--weights takes a state_dict saved with torch.save(model.state_dict(), path) (for example
torchvision's pretrained weights, downloaded wherever you can reach them). Tensor names stay
torchvision's (features.N.* and classifier.N.*; conv1, bn1, layer1.N.* ... fc), so netlens
infers the layers; the metadata adds preprocessing and class names. --dtype f16/bf16 halves
the file. --random gives random weights and, for ResNets, random batch-norm statistics, so
that the folded network is not the identity a fresh batch norm would make it.
"""
import argparse
import json

import torch
import torchvision
from safetensors.torch import save_file

DTYPES = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    vggs = [f"vgg{d}{s}" for d in (11, 13, 16, 19) for s in ("", "_bn")]
    resnets = [f"resnet{d}" for d in (18, 34, 50, 101, 152)] + ["wide_resnet50_2", "wide_resnet101_2"]
    ap.add_argument("--arch", required=True, choices=vggs + resnets)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--weights", help="state_dict file (.pth)")
    src.add_argument("--random", action="store_true", help="random weights (for tests and benchmarks)")
    ap.add_argument("--num-classes", type=int, default=1000)
    ap.add_argument("--classes", help="text file with one class name per line")
    ap.add_argument("--input-size", type=int, default=224)
    ap.add_argument("--mean", type=float, nargs=3, default=[0.485, 0.456, 0.406])
    ap.add_argument("--std", type=float, nargs=3, default=[0.229, 0.224, 0.225])
    ap.add_argument("--dtype", choices=DTYPES, default="f32")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    model = getattr(torchvision.models, a.arch)(weights=None, num_classes=a.num_classes)
    if a.weights:
        model.load_state_dict(torch.load(a.weights, map_location="cpu", weights_only=True))
    elif a.arch.startswith(("resnet", "wide")):
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    n = m.num_features
                    m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=g))
                    m.bias.copy_(0.1 * torch.randn(n, generator=g))
                    m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                    m.running_var.copy_(0.5 + torch.rand(n, generator=g))
    state = {k: v.contiguous() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    state = {k: v.to(DTYPES[a.dtype]) for k, v in state.items()}
    meta = {"format": 1, "arch": a.arch, "input_size": [a.input_size, a.input_size],
            "resize": a.input_size * 256 // 224, "mean": a.mean, "std": a.std}
    if a.classes:
        with open(a.classes) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != a.num_classes:
            raise SystemExit(f"{a.classes} has {len(names)} names for {a.num_classes} classes")
        meta["classes"] = names
    save_file(state, a.out, metadata={"netlens": json.dumps(meta)})
    print(f"wrote {a.out}: {a.arch}, {sum(v.numel() for v in state.values())} parameters")


if __name__ == "__main__":
    main()
