"""Lucid's image parametrisation and transformation robustness, from Lucent (torch-lucent
0.1.8, kornia 0.5.11: `pip install --no-deps torch-lucent kornia==0.5.11`), for netlens's
`fft` parametrisation and `standard` transforms:

  - fft: lucent.optvis.param.spectrum.fft_image + color.to_valid_rgb(decorrelate=True) on a
    seeded spectrum, for an even and an odd size (Lucent's odd-width spectrum has one more
    column than irfftn reads; netlens keeps the w // 2 + 1 it reads);
  - transforms: Lucent's standard_transforms (pad 12 with 0.5, jitter 8, random scale,
    random rotate, jitter 4) with numpy's random choices fixed by seeds, recorded.

    python3 tools/lucid_reference.py   # writes tests/fixtures/lucid.safetensors
"""
import numpy as np
import torch
from lucent.optvis import transform
from lucent.optvis.param.color import to_valid_rgb
from lucent.optvis.param.spatial import fft_image
from safetensors.torch import save_file

out = {}
for name, (n, h, w) in {"even": (2, 16, 16), "odd": (1, 15, 13)}.items():
    torch.manual_seed(3)
    params, image_f = fft_image((n, 3, h, w), sd=0.5)
    spectrum = params[0].detach()
    pix = to_valid_rgb(image_f, decorrelate=True)().detach()
    out[f"{name}.spectrum"] = spectrum[:, :, :, : w // 2 + 1].contiguous()
    out[f"{name}.pixels"] = pix.contiguous()

# the standard transforms on a random picture, with numpy's choices recorded
torch.manual_seed(4)
x = torch.rand(2, 3, 20, 20)
for seed in [0, 3, 6, 8, 11]:
    np.random.seed(seed)
    y = x
    for t in transform.standard_transforms:
        y = t(y)
    np.random.seed(seed)
    # replay the draws exactly as the transforms make them
    j8 = [int(np.random.choice(8)), int(np.random.choice(8))]
    scale = float(np.random.choice([1 + (i - 5) / 50.0 for i in range(11)]))
    angle = float(np.random.choice(list(range(-10, 11)) + 5 * [0]))
    j4 = [int(np.random.choice(4)), int(np.random.choice(4))]
    out[f"t{seed}.output"] = y.contiguous()
    out[f"t{seed}.choices"] = torch.tensor(j8 + [scale, angle] + j4, dtype=torch.float32)
out["t.input"] = x
save_file(out, "tests/fixtures/lucid.safetensors")
print({k: tuple(v.shape) for k, v in out.items()})
print({k: v.tolist() for k, v in out.items() if k.endswith("choices")})
