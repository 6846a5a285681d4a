"""The timer the peer benchmarks share: median wall time, the GPU synchronised around each run."""
import statistics
import time

import torch


def timeit(fn, device, reps=10, warmup=1):
    """Median seconds of `reps` calls of fn after `warmup` calls, on a torch.device."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        fn()
    sync()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def precisions(device):
    """The float settings a fair comparison reports, as (label, apply) pairs.

    On a GPU: PyTorch's defaults ("default": cuDNN convolutions may use TF32 tensor cores,
    matmuls do not) and strict FP32 ("fp32": TF32 off for both), which is what netlens
    computes. On a CPU there is no TF32: one "fp32" row.
    """

    def tf32(conv, matmul):
        def apply():
            torch.backends.cudnn.allow_tf32 = conv
            torch.backends.cuda.matmul.allow_tf32 = matmul

        return apply

    if device.type == "cuda":
        return [("default", tf32(True, False)), ("fp32", tf32(False, False))]
    return [("fp32", lambda: None)]
