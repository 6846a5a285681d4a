"""Generates tests/fixtures/attr_<model>.safetensors: Captum's attributions on the fixture
models (run tools/make_fixtures.py and tools/make_resnet_fixtures.py first). Computed in
float64.

Keys: input.bN, target.bN (float), noise.bN / ig_mean_baseline.bN (what the methods were
given), and <method>.bN for each method (see METHODS below). SmoothGrad is the mean of
Captum Saliency(abs=False) over the given noisy copies: NoiseTunnel's definition with its
random draw replaced by the saved noise.
"""
import os
import sys

import torch
from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients,
                         LayerAttribution, LayerGradCam, Occlusion, Saliency)
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_fixtures import REDUCED_VGG11, SmallNet  # noqa: E402
from vgg_like import TorchvisionVGG  # noqa: E402
from make_resnet_fixtures import SmallResNet  # noqa: E402
from torchvision.models.resnet import BasicBlock  # noqa: E402

FIX = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures")


def load(model, name):
    sd = load_file(os.path.join(FIX, f"{name}.safetensors"))
    model.load_state_dict(sd)
    return model.double().eval()


def attributions(model, x, target, layer, other_layer, occ):
    out = {}
    out["gradient"] = Saliency(model).attribute(x, target=target, abs=False)
    out["saliency"] = Saliency(model).attribute(x, target=target, abs=True).amax(dim=1, keepdim=True)
    out["input_x_gradient"] = InputXGradient(model).attribute(x, target=target)
    g = torch.Generator().manual_seed(5)
    samples = 4
    noise = torch.randn((x.shape[0] * samples,) + x.shape[1:], generator=g, dtype=torch.float64) * 0.3
    noisy = x.repeat_interleave(samples, dim=0) + noise
    sal = Saliency(model).attribute(noisy, target=target.repeat_interleave(samples), abs=False)
    out["noise"] = noise
    out["smoothgrad"] = sal.view(x.shape[0], samples, *x.shape[1:]).mean(1)
    ig = IntegratedGradients(model)
    out["ig_gausslegendre_zero"] = ig.attribute(x, target=target, n_steps=8)
    # what netlens's "mean" baseline must build (a constant image: max-pool ties make IG
    # from it ill-conditioned in float32, so the IG run below uses a random baseline)
    out["ig_mean_baseline"] = x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
    given = 0.25 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    out["ig_given_baseline"] = given
    out["ig_trapezoid_given"] = ig.attribute(x, baselines=given, target=target, n_steps=6, method="riemann_trapezoid")
    out["ig_left_zero"] = ig.attribute(x, target=target, n_steps=5, method="riemann_left")
    out["guided_backprop"] = GuidedBackprop(model).attribute(x, target=target)
    out["deconvnet"] = Deconvolution(model).attribute(x, target=target)
    size = x.shape[2:]
    cam = LayerGradCam(model, layer).attribute(x, target=target)
    out["grad_cam"] = LayerAttribution.interpolate(cam, size)
    cam = LayerGradCam(model, other_layer).attribute(x, target=target, relu_attributions=True)
    out["grad_cam_other_relu_bilinear"] = LayerAttribution.interpolate(cam, size, interpolate_mode="bilinear")
    out["guided_grad_cam"] = GuidedGradCam(model, layer).attribute(x, target=target)
    win, stride = occ
    out["occlusion"] = Occlusion(model).attribute(
        x, target=target, sliding_window_shapes=(x.shape[1], win, win), strides=(x.shape[1], stride, stride), baselines=0)
    return out


def build(name, model, layer, other_layer, shape, occ, targets, seed):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for b, t in targets.items():
        x = torch.randn((b,) + shape, generator=g, dtype=torch.float64)
        if t is None:
            with torch.no_grad():
                target = model(x).argmax(1)
        else:
            target = torch.tensor(t)
        tensors[f"input.b{b}"] = x
        tensors[f"target.b{b}"] = target.double()
        for k, v in attributions(model, x, target, layer, other_layer, occ).items():
            tensors[f"{k}.b{b}"] = v.detach()
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(FIX, f"attr_{name}.safetensors"))


def main():
    small = load(SmallNet(), "small")
    build("small", small, small.body[6], small.body[2], (3, 17, 15), (5, 3), {1: None, 3: [1, 3, 0]}, seed=10)
    tv = load(TorchvisionVGG(REDUCED_VGG11, hidden=32, classes=5), "vgg11_tiny")
    build("vgg11_tiny", tv, tv.features[19], tv.features[13], (3, 40, 40), (8, 4), {1: None, 2: [4, 2]}, seed=11)
    rn = load(SmallResNet(BasicBlock, [2, 2, 1, 1], classes=6), "resnet_basic")
    for m in rn.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False  # Captum's ReLU hooks cannot wrap an in-place ReLU
    build("resnet_basic", rn, rn.layer4, rn.layer3, (3, 40, 37), (8, 4), {1: None, 2: [5, 1]}, seed=12)
    print("wrote attr fixtures")


if __name__ == "__main__":
    main()
