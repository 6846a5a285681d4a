"""Shared helpers: torchvision-named VGG modules of any width, and netlens metadata."""
import json

import torch
from torch import nn


class TorchvisionVGG(nn.Module):
    """torchvision.models.VGG with free widths: features -> avgpool(7,7) -> flatten -> classifier."""

    def __init__(self, cfg, hidden=4096, classes=1000, batch_norm=False, in_ch=3):
        super().__init__()
        layers, c = [], in_ch
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.Conv2d(c, v, 3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(v))
                layers.append(nn.ReLU(inplace=False))
                c = v
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(c * 49, hidden), nn.ReLU(False), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(False), nn.Dropout(),
            nn.Linear(hidden, classes),
        )

    def forward(self, x):
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def randomize(model, seed, bias_std=0.1):
    """Kaiming-like weights, non-zero biases and non-trivial BN statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:  # torchvision's ResNet convs have none
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * bias_std)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(1.0 + 0.2 * torch.randn(n, generator=g))
                m.bias.copy_(0.1 * torch.randn(n, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(n, generator=g))
                m.running_var.copy_(0.5 + torch.rand(n, generator=g))
                m.num_batches_tracked.fill_(7)
    return model.eval()


def metadata(**fields):
    """The safetensors __metadata__ netlens reads: one JSON document under 'netlens'."""
    return {"netlens": json.dumps({"format": 1, **fields})}


def state_dict_f32(model):
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}
