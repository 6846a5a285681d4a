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
