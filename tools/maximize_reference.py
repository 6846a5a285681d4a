"""Activation maximisation in PyTorch on the demo model, beside netlens's benches/maximize.rs
(same machine, same run, torch on the CPU with as many threads as the machine has cores).

    python3 tools/maximize_reference.py [--steps N] [--lucent-steps N]

prints, for the eight class models (log-probability objectives, batch 8, 64 x 64):
  - a bare forward + backward of the batch (the bench's denominator),
  - netlens's default step written in PyTorch (pixel image in input space, Adam 0.05 with
    weight decay 2e-4 = λ 1e-4, pixel range clamped per channel),
  - Lucent's own loop (torch-lucent 0.1.8 render_vis: Fourier-space image, decorrelated
    colour, its standard transforms, Adam 0.05, fixed_image_size 64; needs
    `pip install --no-deps torch-lucent kornia==0.5.11`: Lucent calls kornia's pre-0.6 names), per step and with p(class) at the end.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(__file__))
from mask_reference import model  # noqa: E402
from train_demo import MEAN, SHAPES, STD  # noqa: E402


def per_step(fn, steps):
    fn()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - t) / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lucent-steps", type=int, default=512)
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    net = model(torch.float32)
    k = torch.arange(8)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    lo, hi = (0 - mean) / std, (1 - mean) / std

    x = torch.full((8, 3, 64, 64), 0.1, requires_grad=True)

    def bare():
        x.grad = None
        z = net(x)
        z.backward(torch.nn.functional.one_hot(k, 8).float())

    img = torch.zeros(8, 3, 64, 64, requires_grad=True)
    opt = torch.optim.Adam([img], lr=0.05, weight_decay=2e-4, maximize=True)

    def step():
        opt.zero_grad()
        torch.log_softmax(net(img), 1)[k, k].sum().backward()
        opt.step()
        with torch.no_grad():
            img.copy_(torch.max(torch.min(img, hi), lo))

    t_bare = per_step(bare, a.steps)
    t_step = per_step(step, a.steps)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 8, 64x64")
    print(f"forward + backward: {1e3 * t_bare:.1f} ms")
    print(f"netlens's step in PyTorch: {1e3 * t_step:.1f} ms ({t_step / t_bare:.2f}x forward + backward)")
    try:
        from lucent.optvis import objectives, param, render, transform
    except ImportError as e:
        print(f"Lucent not installed ({e}); skipped")
        return

    @objectives.wrap_objective()
    def logprob(layer, c, batch=None):
        @objectives.handle_batch(batch)
        def inner(hook):
            return -torch.log_softmax(hook(layer), 1)[:, c].mean()
        return inner

    obj = sum(logprob("classifier_6", c, batch=c) for c in range(8))
    norm = lambda t: (t - mean) / std  # noqa: E731
    holder = {}

    def param_f():
        p, f = param.image(64, batch=8)
        holder["f"] = f
        return p, f

    t = time.perf_counter()
    render.render_vis(net, obj, param_f, transforms=transform.standard_transforms + [norm],
                      thresholds=(a.lucent_steps,), preprocess=False, progress=False,
                      show_image=False, fixed_image_size=64)
    t_lucent = (time.perf_counter() - t) / a.lucent_steps
    with torch.no_grad():
        p = torch.softmax(net(norm(holder["f"]())), 1)[k, k]
    print(f"Lucent render_vis step: {1e3 * t_lucent:.1f} ms ({t_lucent / t_bare:.2f}x forward + backward)")
    print("Lucent p(class) after", a.lucent_steps, "steps:",
          ", ".join(f"{s} {v:.3f}" for s, v in zip(SHAPES, p.tolist())))


if __name__ == "__main__":
    main()
