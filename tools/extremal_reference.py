"""TorchRay's extremal perturbations on the demo model, as netlens's fixture and timing
reference (pip install torchray; it runs with --no-deps beside torch and matplotlib).

  python3 tools/extremal_reference.py          writes tests/fixtures/extremal.safetensors:
      the masks (cropped, [areas, 1, 64, 64]) and energies after ITERS iterations of each
      variant on the star sample, areas 0.05/0.1/0.2, step 2, σ 6, TorchRay's other defaults
      (8 blur levels up to σ 20, SGD lr 0.01 momentum 0.9, area weight 300 growing 0.35%
      per step, a horizontal flip every other step), in float32 (TorchRay's only type),
      with its sort made stable (below)
  python3 tools/extremal_reference.py --time   times 800 iterations of the preserve
      variant on the star in float32 (what `netlens mask models/shapes-vgg.safetensors
      models/samples/star.png --game extremal --area 0.05,0.1,0.2 --step 2 --sigma 6
      --blur-sigma 20` runs)
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import save_file
from torchray.attribution.extremal_perturbation import extremal_perturbation

sys.path.insert(0, os.path.dirname(__file__))
from mask_reference import ROOT, inputs, model  # noqa: E402

AREAS = [0.05, 0.1, 0.2]

# The area regulariser sorts the mask, which starts with wide plateaus of equal values;
# torch.sort's default order among equal values is implementation-defined, and it decides
# which of them the gradient pushes up. netlens ranks ties by index, as a stable sort does:
# make TorchRay's sort stable so the reference is well defined.
_sort = torch.Tensor.sort
torch.Tensor.sort = lambda self, dim=-1, descending=False: _sort(self, dim=dim, descending=descending, stable=True)
STEP, SIGMA, ITERS = 2, 6.0, int(os.environ.get("ITERS", 5))


def run(net, x, target, variant, iters):
    mask, hist = extremal_perturbation(net, x, target, areas=AREAS, max_iter=iters, step=STEP, sigma=SIGMA,
                                       variant=variant)
    return mask, hist


def fixture():
    net = model(torch.float32)  # TorchRay's blur filters are float32
    x, targets = inputs(torch.float32)
    x, target = x[:1], int(targets[0])
    out = {"target": torch.tensor([float(target)])}
    for variant in ["preserve", "delete", "dual"]:
        mask, hist = run(net, x, target, variant, ITERS)
        out[f"{variant}.mask"] = mask
        out[f"{variant}.energy"] = hist.sum(dim=1)  # reward + regul per area and step
    path = os.path.join(ROOT, "tests", "fixtures", "extremal.safetensors")
    save_file({k: v.float().contiguous() for k, v in out.items()}, path,
              metadata={"areas": json.dumps(AREAS), "step": str(STEP), "sigma": str(SIGMA), "iterations": str(ITERS)})
    print("wrote", path)


def timing():
    net = model(torch.float32)
    x, targets = inputs(torch.float32)
    rows = {}
    for i in range(1):  # the star: what `netlens mask ... star.png --game extremal` runs
        run(net, x[i:i + 1], int(targets[i]), "preserve", 5)
        t = time.perf_counter()
        run(net, x[i:i + 1], int(targets[i]), "preserve", 800)
        rows[f"item {i}"] = time.perf_counter() - t
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "areas": AREAS,
                      "iterations": 800, "seconds": rows}))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--time", action="store_true")
    timing() if ap.parse_args().time else fixture()
