"""Generates the torchvision-ResNet fixtures: two ResNets built from torchvision's own
BasicBlock and Bottleneck modules, with torchvision's tensor names, strides and shortcuts
but an eighth of its widths (so that the files stay small), saved as bare state dicts (no
netlens metadata: netlens must infer the network from the names), and PyTorch's, Captum's
and Zennit's answers on them.

tests/fixtures/resnet_basic.safetensors: BasicBlocks, [2, 2, 1, 1] blocks, widths 8..64.
tests/fixtures/resnet_bottleneck.safetensors: Bottlenecks, [1, 1, 2, 1], widths 8..64 (x4 out).
tests/fixtures/resnet_<kind>_io.safetensors (float32, computed in float64):
  input.bN, target.bN, logits.bN,
  gradient.bN (d logit[target] / d input, autograd),
  grad_cam.bN (Captum's LayerGradCam at layer4, the last block's output: channel weights
  the spatial means of the gradient there, no ReLU, nearest up-sampling to the input),
  <composite>.bN (Zennit's input relevance from one-hot(target) * logits with the
  ResNetCanonizer, each residual sum a Sum module under Norm): epsilon_plus,
  epsilon_alpha2_beta1, epsilon_gamma_box (-3, 3), and one rule on every conv and linear
  layer (ReLUs pass, sums and the average pool norm): rule_epsilon (0.25), rule_zplus,
  rule_alpha_beta (2, 1), rule_gamma (0.25), rule_flat, rule_wsquare. The batch norms are folded into their
  convs here, exactly, in float64, before Zennit sees the model: its own merge leaves each
  BN as x / sqrt(1 + eps), and where a residual sum's two inputs nearly cancel that 5e-6
  grows (here to 4e-4 of an EpsilonAlpha2Beta1 map).
"""
import copy
import os
import sys

import torch
from safetensors.torch import save_file
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet
from zennit.attribution import Gradient
from zennit.composites import EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, LayerMapComposite
from zennit.layer import Sum
from zennit.rules import AlphaBeta, Epsilon, Flat, Gamma, Norm, Pass, WSquare, ZPlus
from zennit.torchvision import ResNetCanonizer
from zennit.types import Activation, AvgPool, Convolution

sys.path.insert(0, os.path.dirname(__file__))
from vgg_like import randomize  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


class SmallResNet(ResNet):
    """torchvision's ResNet with stage widths base, 2 base, 4 base, 8 base (torchvision's:
    64 .. 512); the modules, names, strides and shortcuts are torchvision's."""

    def __init__(self, block, layers, classes, base=8):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = base
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, base, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, base, layers[0])
        self.layer2 = self._make_layer(block, 2 * base, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * base, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * base, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * base * block.expansion, classes)


def fold_batch_norms(model):
    """Each conv followed by a batch norm becomes one conv computing both (float64, exact
    up to rounding); the batch norm becomes an identity."""
    def fold(conv, bn):
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight = nn.Parameter(conv.weight * scale[:, None, None, None])
        conv.bias = nn.Parameter(bn.bias + (bias - bn.running_mean) * scale)
    with torch.no_grad():
        fold(model.conv1, model.bn1)
        model.bn1 = nn.Identity()
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in stage:
                for i in (1, 2, 3):
                    if hasattr(block, f"conv{i}"):
                        fold(getattr(block, f"conv{i}"), getattr(block, f"bn{i}"))
                        setattr(block, f"bn{i}", nn.Identity())
                if block.downsample is not None:
                    fold(block.downsample[0], block.downsample[1])
                    block.downsample[1] = nn.Identity()
    return model


def composites():
    def single(rule):
        return LayerMapComposite(
            layer_map=[(Activation, Pass()), (Sum, Norm()), (AvgPool, Norm()),
                       (Convolution, rule()), (torch.nn.Linear, rule())],
            canonizers=[ResNetCanonizer()])

    return {
        "epsilon_plus": EpsilonPlus(canonizers=[ResNetCanonizer()]),
        "epsilon_alpha2_beta1": EpsilonAlpha2Beta1(canonizers=[ResNetCanonizer()]),
        "epsilon_gamma_box": EpsilonGammaBox(low=-3.0, high=3.0, canonizers=[ResNetCanonizer()]),
        "rule_epsilon": single(lambda: Epsilon(epsilon=0.25)),
        "rule_zplus": single(ZPlus),
        "rule_alpha_beta": single(lambda: AlphaBeta(alpha=2.0, beta=1.0)),
        "rule_gamma": single(lambda: Gamma(gamma=0.25)),
        "rule_flat": single(Flat),
        "rule_wsquare": single(WSquare),
    }


def build(kind, block, layers, seed):
    model = randomize(SmallResNet(block, layers, classes=6), seed)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    # a bare state dict, num_batches_tracked included, as torch saves one
    save_file(state, os.path.join(FIX, f"resnet_{kind}.safetensors"))
    model = model.double()
    folded = fold_batch_norms(copy.deepcopy(model))
    g = torch.Generator().manual_seed(seed + 1)
    out = {}
    for b, t in {1: None, 3: [4, 0, 2]}.items():
        x = torch.randn((b, 3, 40, 37), generator=g, dtype=torch.float64)
        with torch.no_grad():
            logits = model(x)
        target = logits.argmax(1) if t is None else torch.tensor(t)
        out[f"input.b{b}"] = x
        out[f"target.b{b}"] = target.double()
        out[f"logits.b{b}"] = logits
        xg = x.clone().requires_grad_(True)
        acts = {}
        hook = model.layer4.register_forward_hook(lambda m, i, o: acts.update(out=o))
        score = model(xg).gather(1, target[:, None]).sum()
        hook.remove()
        act = acts["out"]
        (ga,) = torch.autograd.grad(score, [act], retain_graph=True)
        score.backward()
        out[f"gradient.b{b}"] = xg.grad
        w = ga.mean(dim=(2, 3), keepdim=True)
        cam = (w * act).sum(1, keepdim=True).detach()
        out[f"grad_cam.b{b}"] = torch.nn.functional.interpolate(cam, size=x.shape[2:], mode="nearest")
        start = torch.eye(logits.shape[1], dtype=x.dtype)[target] * logits
        with torch.no_grad():
            assert torch.allclose(folded(x), logits, rtol=1e-12, atol=1e-12)
        for k, comp in composites().items():
            with Gradient(model=folded, composite=comp) as attributor:
                _, rel = attributor(x, lambda _: start)
            out[f"{k}.b{b}"] = rel.detach()
    save_file({k: v.float().contiguous() for k, v in out.items()},
              os.path.join(FIX, f"resnet_{kind}_io.safetensors"))
    print(f"wrote resnet_{kind} fixtures: {sum(v.numel() for v in state.values())} parameters")


def main():
    build("basic", BasicBlock, [2, 2, 1, 1], seed=41)
    build("bottleneck", Bottleneck, [1, 1, 2, 1], seed=43)


if __name__ == "__main__":
    main()
