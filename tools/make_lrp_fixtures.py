"""Generates tests/fixtures/lrp_<model>.safetensors: Zennit's input relevance on the
fixture models (run tools/make_fixtures.py first), in float64.

Keys: input.bN, target.bN, and <method>.bN where method is a single rule on every conv and
linear layer (rule_epsilon, rule_epsilon_small, rule_zplus, rule_alpha_beta, rule_gamma,
rule_flat, rule_wsquare) or a composite (epsilon_plus, epsilon_plus_flat,
epsilon_gamma_box, epsilon_alpha2_beta1, epsilon_alpha2_beta1_flat); the walk starts from
one-hot(target) * logits, except epsilon_plus_onehot (plain one-hot). Batch norms are
merged by Zennit's SequentialMergeBatchNorm canonizer.
"""
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from zennit.attribution import Gradient
from zennit.canonizers import SequentialMergeBatchNorm
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat, EpsilonGammaBox, EpsilonPlus,
                               EpsilonPlusFlat, LayerMapComposite)
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZPlus
from zennit.types import Activation, AvgPool, Convolution

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import REDUCED_VGG11, SmallNet  # noqa: E402
from vgg_like import TorchvisionVGG  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def single(rule_factory, canonizers):
    return LayerMapComposite(
        layer_map=[(Activation, Pass()), (AvgPool, Norm()), (Convolution, rule_factory()), (torch.nn.Linear, rule_factory())],
        canonizers=canonizers)


def composites(canonizers):
    c = canonizers
    return {
        "rule_epsilon": single(lambda: Epsilon(epsilon=0.25), c()),
        "rule_epsilon_small": single(lambda: Epsilon(epsilon=1e-6), c()),
        "rule_zplus": single(ZPlus, c()),
        "rule_alpha_beta": single(lambda: AlphaBeta(alpha=2.0, beta=1.0), c()),
        "rule_gamma": single(lambda: Gamma(gamma=0.25), c()),
        "rule_flat": single(Flat, c()),
        "rule_wsquare": single(WSquare, c()),
        "epsilon_plus": EpsilonPlus(canonizers=c()),
        "epsilon_plus_flat": EpsilonPlusFlat(canonizers=c()),
        "epsilon_gamma_box": EpsilonGammaBox(low=-3.0, high=3.0, canonizers=c()),
        "epsilon_alpha2_beta1": EpsilonAlpha2Beta1(canonizers=c()),
        "epsilon_alpha2_beta1_flat": EpsilonAlpha2Beta1Flat(canonizers=c()),
    }


def relevance(model, composite, x, target, onehot_only=False):
    # The start uses the model's own logits, taken before the composite is applied:
    # Zennit's SequentialMergeBatchNorm leaves each merged BN as x / sqrt(1 + eps), which
    # scales the logits seen inside the attributor by about (1 - 5e-6) per BN layer.
    with torch.no_grad():
        logits = model(x)
    eye = torch.eye(logits.shape[1], dtype=x.dtype)[target]
    start = eye if onehot_only else eye * logits
    with Gradient(model=model, composite=composite) as attributor:
        _, rel = attributor(x, lambda out: start)
    return rel.detach()


def build(name, model, shape, targets, seed, bn=False):
    canon = (lambda: [SequentialMergeBatchNorm()]) if bn else (lambda: [])
    g = torch.Generator().manual_seed(seed)
    out = {}
    for b, t in targets.items():
        x = torch.randn((b,) + shape, generator=g, dtype=torch.float64)
        with torch.no_grad():
            target = model(x).argmax(1) if t is None else torch.tensor(t)
        out[f"input.b{b}"] = x
        out[f"target.b{b}"] = target.double()
        for k, comp in composites(canon).items():
            out[f"{k}.b{b}"] = relevance(model, comp, x, target)
        out[f"epsilon_plus_onehot.b{b}"] = relevance(model, EpsilonPlus(canonizers=canon()), x, target, onehot_only=True)
    save_file({k: v.float().contiguous() for k, v in out.items()}, os.path.join(FIX, f"lrp_{name}.safetensors"))


def load(model, name):
    model.load_state_dict(load_file(os.path.join(FIX, f"{name}.safetensors")))
    return model.double().eval()


def main():
    build("small", load(SmallNet(), "small"), (3, 17, 15), {1: None, 3: [1, 3, 0]}, seed=20)
    tv = load(TorchvisionVGG(REDUCED_VGG11, hidden=32, classes=5), "vgg11_tiny")
    build("vgg11_tiny", tv, (3, 40, 40), {1: None, 2: [4, 2]}, seed=21)
    bn = load(TorchvisionVGG(REDUCED_VGG11, hidden=24, classes=6, batch_norm=True), "vgg11_bn_tiny")
    build("vgg11_bn_tiny", bn, (3, 40, 40), {1: None, 2: [5, 1]}, seed=22, bn=True)
    print("wrote lrp fixtures")


if __name__ == "__main__":
    main()
