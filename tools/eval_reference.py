"""Faithfulness metrics written independently of netlens (numpy + PyTorch), with the
definitions of the README ("Faithfulness"): region perturbation with AOPC, and deletion /
insertion curves with their AUC.

  python3 tools/eval_reference.py   writes tests/fixtures/faithfulness.safetensors: on the
      demo model and the star, cross and triangle samples, for two maps per item (the
      gradient of the target logit, and a seeded random map), the AOPC curves (region 8,
      20 steps; MoRF and LeRF; constant 0, mean and blur σ 5 substrates) and the deletion
      (constant 0) and insertion (blur σ 5) curves at 1% of the pixels per step
  python3 tools/eval_reference.py --time   times the workload of `cargo bench --bench
      evaluate` (AOPC MoRF and deletion of two gradient maps on the 8 samples) in float32
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from mask_reference import ROOT, inputs, model  # noqa: E402

REGION, STEPS, SIGMA = 8, 20, 5.0


def blur(x, sigma):
    """Gaussian, border replicated, radius ceil(3σ) (netlens's blur baseline)."""
    r = max(1, math.ceil(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float64) ** 2 / (2 * sigma * sigma))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    y = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def ranks(plane, region, descending):
    """Rank of each pixel's r x r unit by the unit's sum; ties by row-major unit index."""
    h, w = plane.shape
    ny, nx = -(-h // region), -(-w // region)
    sums = np.zeros(ny * nx)
    for y in range(h):
        for x in range(w):
            sums[(y // region) * nx + x // region] += plane[y, x]
    order = np.argsort(-sums if descending else sums, kind="stable")
    unit_rank = np.empty(len(order), dtype=np.int64)
    unit_rank[order] = np.arange(len(order))
    yy, xx = np.meshgrid(np.arange(h) // region, np.arange(w) // region, indexing="ij")
    return unit_rank[yy * nx + xx], len(order)


def scores(net, copies, target, logit=False):
    with torch.no_grad():
        z = net(copies)
    return (z[:, target] if logit else F.softmax(z, 1)[:, target]).numpy()


def curve(net, x, sub, rank, thresholds, target, insert=False):
    keep = torch.from_numpy(np.stack([rank < t for t in thresholds]))[:, None]  # [K, 1, H, W]
    copies = torch.where(keep, x if insert else sub, sub if insert else x)
    return scores(net, copies, target)


def main():
    net = model(torch.float64)
    x, target = inputs(torch.float64)
    n = x.shape[0]
    xg = x.clone().requires_grad_(True)
    net(xg).gather(1, target.view(-1, 1)).sum().backward()
    maps = {"gradient": xg.grad.detach(), "random": torch.from_numpy(np.random.default_rng(3).standard_normal((n, 1, 64, 64)))}
    maps = {k: v.float().double() for k, v in maps.items()}  # ranked as netlens reads them, in float32
    subs = {"constant": torch.zeros_like(x), "mean": x.mean(dim=(2, 3), keepdim=True).expand_as(x),
            "blur": blur(x, SIGMA)}
    out = {"target": target.double()}
    for name, m in maps.items():
        out[f"map.{name}"] = m
        for i in range(n):
            plane = m[i].float().sum(0).double().numpy()  # netlens sums channels in f32
            for order, desc in [("morf", True), ("lerf", False)]:
                rank, units = ranks(plane, REGION, desc)
                th = list(range(min(STEPS, units) + 1))
                for sname, sub in subs.items():
                    out[f"aopc.{name}.{order}.{sname}.{i}"] = torch.from_numpy(curve(net, x[i:i + 1], sub[i:i + 1], rank, th, int(target[i])))
            rank, _ = ranks(plane, 1, True)
            step = math.ceil(64 * 64 / 100)
            th = [min(k * step, 4096) for k in range(-(-4096 // step) + 1)]
            out[f"deletion.{name}.{i}"] = torch.from_numpy(curve(net, x[i:i + 1], subs["constant"][i:i + 1], rank, th, int(target[i])))
            out[f"insertion.{name}.{i}"] = torch.from_numpy(curve(net, x[i:i + 1], subs["blur"][i:i + 1], rank, th, int(target[i]), insert=True))
    path = os.path.join(ROOT, "tests", "fixtures", "faithfulness.safetensors")
    save_file({k: v.float().contiguous() for k, v in out.items()}, path)
    print("wrote", path)




def timing():
    """The workload of `cargo bench --bench evaluate`, in float32: on the 8 samples, the
    gradient and input x gradient maps of each sample's class, scored by AOPC MoRF (region
    16: 16 patches, 17 forwards, constant 0) and by deletion (256 pixels a step: 17
    forwards, constant 0). Prints (images x methods x forwards) per second for each."""
    import time
    torch.set_num_threads(int(os.environ.get("THREADS", torch.get_num_threads())))
    net = model(torch.float32)
    from PIL import Image
    from train_demo import MEAN, SHAPES, STD
    xs = [np.asarray(Image.open(os.path.join(ROOT, "models", "samples", f"{s}.png")).convert("RGB"), dtype=np.float32) / 255
          for s in SHAPES]
    x = (torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2) - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    target = torch.arange(len(SHAPES))
    xg = x.clone().requires_grad_(True)
    net(xg).gather(1, target.view(-1, 1)).sum().backward()
    g = xg.grad.detach()
    maps = [g, g * x]
    zero = torch.zeros_like(x[:1])
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "images": x.shape[0],
           "methods": len(maps)}
    for metric, region in [("aopc", 16), ("deletion", 1)]:
        t = time.perf_counter()
        forwards = 0
        for m in maps:
            for i in range(x.shape[0]):
                rank, units = ranks(m[i].sum(0).double().numpy(), region, True)
                th = list(range(units + 1)) if metric == "aopc" else [min(k * 256, 4096) for k in range(17)]
                curve(net, x[i:i + 1], zero, rank, th, int(target[i]))
                forwards += len(th)
        dt = time.perf_counter() - t
        out[metric] = {"forwards": forwards, "seconds": dt, "forwards_per_second": forwards / dt}
    print(json.dumps(out))


if __name__ == "__main__":
    timing() if "--time" in sys.argv else main()
