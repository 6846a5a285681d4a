"""Generates the residual-network fixtures: a small CNN with skip connections (two
residual sums, one through a 1x1 projection, a folded batch norm inside a block),
described to netlens by its metadata's `inputs`, and PyTorch's and Zennit's answers on it.

tests/fixtures/residual.safetensors: the model (float32, netlens metadata).
tests/fixtures/residual_io.safetensors (float32, computed in float64):
  input.bN, target.bN, logits.bN, act_<layer>.bN (a layer's output),
  gradient.bN (d logit[target] / d input, PyTorch autograd),
  grad_cam.bN (Grad-CAM at b2_out, the last residual block's ReLU: channel weights the
  spatial means of the gradient there, no ReLU, nearest up-sampling to the input size),
  <composite>.bN (Zennit's input relevance from one-hot(target) * logits; epsilon_plus,
  epsilon_alpha2_beta1, epsilon_gamma_box (-3, 3), rule_epsilon with epsilon 0.25 on every
  conv and linear, rule_zplus, rule_gamma with gamma 0.25; sums get Zennit's default Norm rule,
  batch norms are merged by SequentialMergeBatchNorm). The sums pass relevance to conv
  outputs below zero, which the gamma rule treats apart: in a plain VGG they get none.
"""
import os
import sys

import torch
from safetensors.torch import save_file
from torch import nn
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, LayerMapComposite
from zennit.layer import Sum
from zennit.rules import Epsilon, Gamma, Norm, Pass, ZPlus
from zennit.types import Activation, AvgPool, Convolution

sys.path.insert(0, os.path.dirname(__file__))
from vgg_like import metadata, randomize, state_dict_f32  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


class ResidualNet(nn.Module):
    """stem -> block(identity skip, BN inside) -> pool -> block(1x1 projection skip) -> head."""

    def __init__(self, classes=5):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_relu = nn.ReLU()
        self.b1 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8))
        self.b1_relu = nn.ReLU()
        self.b1_conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.b1_add = Sum()
        self.b1_out = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.b2_conv1 = nn.Conv2d(8, 12, 3, padding=1)
        self.b2_relu = nn.ReLU()
        self.b2_conv2 = nn.Conv2d(12, 12, 3, padding=1)
        self.b2_proj = nn.Conv2d(8, 12, 1)
        self.b2_add = Sum()
        self.b2_out = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.fc = nn.Linear(48, classes)

    def forward(self, x, acts=None):
        acts = {} if acts is None else acts
        s = self.stem_relu(self.stem(x))
        h = self.b1_conv2(self.b1_relu(self.b1(s)))
        acts["b1_add"] = a1 = self.b1_add(torch.stack([h, s], dim=-1))
        p = self.pool(self.b1_out(a1))
        h = self.b2_conv2(self.b2_relu(self.b2_conv1(p)))
        acts["b2_add"] = a2 = self.b2_add(torch.stack([h, self.b2_proj(p)], dim=-1))
        acts["b2_out"] = o = self.b2_out(a2)
        return self.fc(torch.flatten(self.avgpool(o), 1))


# The same network as netlens metadata: each layer reads the one before it unless it names
# its inputs.
LAYERS = [
    {"type": "conv2d", "name": "stem", "kernel": 3, "padding": 1},
    {"type": "relu", "name": "stem_relu"},
    {"type": "conv2d", "name": "b1.0", "kernel": 3, "padding": 1},
    {"type": "batchnorm2d", "name": "b1.1"},
    {"type": "relu", "name": "b1_relu"},
    {"type": "conv2d", "name": "b1_conv2", "kernel": 3, "padding": 1},
    {"type": "add", "name": "b1_add", "inputs": ["b1_conv2", "stem_relu"]},
    {"type": "relu", "name": "b1_out"},
    {"type": "maxpool2d", "name": "pool", "kernel": 2},
    {"type": "conv2d", "name": "b2_conv1", "kernel": 3, "padding": 1},
    {"type": "relu", "name": "b2_relu"},
    {"type": "conv2d", "name": "b2_conv2", "kernel": 3, "padding": 1},
    {"type": "conv2d", "name": "b2_proj", "kernel": 1, "inputs": ["pool"]},
    {"type": "add", "name": "b2_add", "inputs": ["b2_conv2", "b2_proj"]},
    {"type": "relu", "name": "b2_out"},
    {"type": "adaptive_avgpool2d", "name": "avgpool", "output": 2},
    {"type": "flatten", "name": "flatten"},
    {"type": "linear", "name": "fc"},
]


def composites():
    canon = [SequentialMergeBatchNorm()]

    def single(rule):
        return LayerMapComposite(
            layer_map=[(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()),
                       (Convolution, rule()), (torch.nn.Linear, rule())],
            canonizers=[SequentialMergeBatchNorm()])

    return {
        "epsilon_plus": EpsilonPlus(canonizers=canon),
        "epsilon_alpha2_beta1": EpsilonAlpha2Beta1(canonizers=[SequentialMergeBatchNorm()]),
        "rule_epsilon": single(lambda: Epsilon(epsilon=0.25)),
        "rule_zplus": single(ZPlus),
        "epsilon_gamma_box": EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[SequentialMergeBatchNorm()]),
        "rule_gamma": single(lambda: Gamma(gamma=0.25)),
    }


def main():
    model = randomize(ResidualNet(), seed=31)
    save_file(state_dict_f32(model), os.path.join(FIX, "residual.safetensors"),
              metadata=metadata(arch="residual-test", layers=LAYERS, input_size=[16, 16],
                                mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0]))
    model = model.double()
    g = torch.Generator().manual_seed(32)
    out = {}
    for b, t in {1: None, 3: [4, 0, 2]}.items():
        x = torch.randn((b, 3, 16, 15), generator=g, dtype=torch.float64)
        acts = {}
        with torch.no_grad():
            logits = model(x, acts)
        target = logits.argmax(1) if t is None else torch.tensor(t)
        out[f"input.b{b}"] = x
        out[f"target.b{b}"] = target.double()
        out[f"logits.b{b}"] = logits
        for k, v in acts.items():
            out[f"act_{k}.b{b}"] = v
        xg = x.clone().requires_grad_(True)
        acts = {}
        score = model(xg, acts).gather(1, target[:, None]).sum()
        act = acts["b2_out"]
        act.retain_grad()
        score.backward()
        out[f"gradient.b{b}"] = xg.grad
        w = act.grad.mean(dim=(2, 3), keepdim=True)
        cam = (w * act).sum(1, keepdim=True).detach()
        out[f"grad_cam.b{b}"] = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="nearest")
        start = torch.eye(logits.shape[1], dtype=x.dtype)[target] * logits
        for k, comp in composites().items():
            with Gradient(model=model, composite=comp) as attributor:
                _, rel = attributor(x, lambda _: start)
            out[f"{k}.b{b}"] = rel.detach()
    save_file({k: v.float().contiguous() for k, v in out.items()},
              os.path.join(FIX, "residual_io.safetensors"))
    print("wrote residual fixtures:", len(out), "tensors")


if __name__ == "__main__":
    main()
