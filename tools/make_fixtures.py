"""Generates tests/fixtures: models and PyTorch's outputs for them.

Run: python3 tools/make_fixtures.py   (needs torch, torchvision, safetensors)
Each <name>.safetensors is a model netlens loads; <name>_io.safetensors holds inputs
('input.bN') and PyTorch's outputs, computed in float64 ('bN.<layer name>' for every
layer's output and 'bN.logits').
"""
import os
import sys

import torch
from torch import nn
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from vgg_like import TorchvisionVGG, metadata, randomize, state_dict_f32  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def named_outputs(model, x):
    """Every leaf module's output by its module name, plus 'flatten' and 'logits'."""
    outs, hooks = {}, []
    for name, m in model.named_modules():
        if len(list(m.children())) == 0:
            hooks.append(m.register_forward_hook(lambda _m, _i, o, n=name: outs.__setitem__(n, o.detach().clone())))
    logits = model(x)
    for h in hooks:
        h.remove()
    if "avgpool" in outs:
        outs["flatten"] = torch.flatten(outs["avgpool"], 1)
    outs["logits"] = logits.detach()
    return outs


def save_io(name, model, inputs, every_layer=True):
    m64 = model.double()
    tensors = {}
    for b, x in inputs.items():
        tensors[f"input.b{b}"] = x.float().contiguous()
        with torch.no_grad():
            outs = named_outputs(m64, x.double())
        for k, v in outs.items():
            if every_layer or k == "logits":
                tensors[f"b{b}.{k}"] = v.float().contiguous()
    model.float()
    save_file(tensors, os.path.join(OUT, f"{name}_io.safetensors"))


class SmallNet(nn.Module):
    """A VGG-style sequence with odd shapes, described by metadata."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 5, 3, padding=1), nn.ReLU(),
            nn.Conv2d(5, 6, (3, 5), stride=(2, 1), padding=(1, 2)), nn.ReLU(),
            nn.MaxPool2d(3, 2, padding=1),
            nn.Conv2d(6, 7, 3, padding=1), nn.ReLU(),
            nn.AvgPool2d(3, 2, padding=1, count_include_pad=False, ceil_mode=True),
            nn.AdaptiveAvgPool2d((3, 3)),
            nn.Flatten(),
            nn.Linear(63, 10), nn.ReLU(), nn.Dropout(),
            nn.Linear(10, 4),
        )

    def forward(self, x):
        return self.body(x)


SMALL_LAYERS = [
    {"type": "conv2d", "name": "body.0", "kernel": 3, "padding": 1},
    {"type": "relu", "name": "body.1"},
    {"type": "conv2d", "name": "body.2", "kernel": [3, 5], "stride": [2, 1], "padding": [1, 2]},
    {"type": "relu", "name": "body.3"},
    {"type": "maxpool2d", "name": "body.4", "kernel": 3, "stride": 2, "padding": 1},
    {"type": "conv2d", "name": "body.5", "kernel": 3, "padding": 1},
    {"type": "relu", "name": "body.6"},
    {"type": "avgpool2d", "name": "body.7", "kernel": 3, "stride": 2, "padding": 1,
     "count_include_pad": False, "ceil_mode": True},
    {"type": "adaptive_avgpool2d", "name": "body.8", "output": 3},
    {"type": "flatten", "name": "body.9"},
    {"type": "linear", "name": "body.10"},
    {"type": "relu", "name": "body.11"},
    {"type": "dropout", "name": "body.12"},
    {"type": "linear", "name": "body.13"},
]

REDUCED_VGG11 = [4, "M", 8, "M", 8, 8, "M", 16, 16, "M", 16, 16, "M"]


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(0)

    small = randomize(SmallNet(), seed=1)
    meta = metadata(arch="small", layers=SMALL_LAYERS, input_size=[17, 15], mean=[0.5, 0.4, 0.3],
                    std=[0.2, 0.25, 0.3], classes=["ant", "bee", "cat", "dog"])
    save_file(state_dict_f32(small), os.path.join(OUT, "small.safetensors"), metadata=meta)
    save_io("small", small, {1: torch.randn(1, 3, 17, 15, generator=g), 3: torch.randn(3, 3, 17, 15, generator=g)})

    # torchvision names, reduced widths; 96x96 leaves 3x3 before the adaptive pool (3 -> 7).
    tv = randomize(TorchvisionVGG(REDUCED_VGG11, hidden=32, classes=5), seed=2)
    save_file(state_dict_f32(tv), os.path.join(OUT, "vgg11_tiny.safetensors"))
    save_io("vgg11_tiny", tv, {1: torch.randn(1, 3, 96, 96, generator=g), 2: torch.randn(2, 3, 96, 96, generator=g)})

    # The same stored in half precisions: outputs of the f16/bf16-rounded weights.
    for dt, tag in [(torch.float16, "f16"), (torch.bfloat16, "bf16")]:
        sd = {k: v.to(dt) for k, v in tv.state_dict().items()}
        save_file(sd, os.path.join(OUT, f"vgg11_tiny_{tag}.safetensors"))
        rounded = TorchvisionVGG(REDUCED_VGG11, hidden=32, classes=5).eval()
        rounded.load_state_dict({k: v.float() for k, v in sd.items()})
        save_io(f"vgg11_tiny_{tag}", rounded, {2: torch.randn(2, 3, 64, 80, generator=g)}, every_layer=False)

    tvbn = randomize(TorchvisionVGG(REDUCED_VGG11, hidden=24, classes=6, batch_norm=True), seed=3)
    save_file(state_dict_f32(tvbn), os.path.join(OUT, "vgg11_bn_tiny.safetensors"))
    save_io("vgg11_bn_tiny", tvbn, {1: torch.randn(1, 3, 96, 96, generator=g), 2: torch.randn(2, 3, 80, 96, generator=g)})
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
