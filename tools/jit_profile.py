"""Where a CPU driver spends a conv kernel's time: profiles `examples/conv_time` under
`perf record`, copies the driver's JIT code out of the process (NETLENS_DUMP_JIT), finds
the hottest loop of the hottest code region and prints its instruction mix with the
samples on each kind of instruction. Linux, x86-64, `perf` and `objdump` installed.

Run: python3 tools/jit_profile.py [shape] [--region N] [--reps R]
  e.g. NETLENS_GEMM=cpu-tex python3 tools/jit_profile.py conv4_1
Region 0 is the code region with the most samples (forward and input-gradient kernels
may share one; --region 1 for the next). The hottest loop is the innermost backward jump
that holds at least half the region's samples. Counts are per loop iteration (one
reduction step of the kernel); objdump's continuation lines of long instructions are
skipped.
"""
import argparse
import collections
import glob
import os
import re
import subprocess
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="conv4_1")
    ap.add_argument("--region", type=int, default=0)
    ap.add_argument("--reps", type=int, default=4)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "conv_time"], cwd=ROOT, check=True)
    tmp = tempfile.mkdtemp(prefix="jit_profile.")
    data, jit = os.path.join(tmp, "perf.data"), os.path.join(tmp, "jit")
    env = dict(os.environ, NETLENS_DUMP_JIT=jit)
    binary = os.path.join(ROOT, "target", "release", "examples", "conv_time")
    out = subprocess.run(["perf", "record", "-q", "-o", data, binary, str(a.reps), a.shape],
                         env=env, check=True, stdout=subprocess.PIPE, text=True).stdout
    print(out.strip())
    ips = subprocess.run(["perf", "script", "-i", data, "-F", "ip"], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    samples = collections.Counter(int(x, 16) for x in ips.split())
    regions = []
    for f in glob.glob(os.path.join(jit, "*.bin")):
        base, size = int(os.path.basename(f)[:-4], 16), os.path.getsize(f)
        regions.append((sum(c for ip, c in samples.items() if base <= ip < base + size), f, base))
    regions.sort(reverse=True)
    total = sum(samples.values())
    hit, path, base = regions[a.region]
    print(f"region {a.region}: {hit} of {total} samples")
    dis = subprocess.run(["objdump", "-D", "-b", "binary", "-mi386:x86-64", f"--adjust-vma={base:#x}", path],
                         check=True, stdout=subprocess.PIPE, text=True).stdout
    code = []
    for line in dis.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+((?:[0-9a-f]{2} )+)\s*([a-z]\S*)\s*(.*)", line)
        if m:
            at = int(m.group(1), 16)
            code.append((at, m.group(3), m.group(4), samples.get(at, 0)))
    loops = []
    for at, op, args, _ in code:
        if op.startswith("j") and args.startswith("0x"):
            to = int(args.split()[0], 16)
            if to < at:
                body = [c for c in code if to <= c[0] <= at]
                loops.append((sum(c[3] for c in body), len(body), to, at))
    best = max(c[0] for c in loops)
    n, lo, hi = min((c[1], c[2], c[3]) for c in loops if c[0] >= best / 2)
    body = [c for c in code if lo <= c[0] <= hi]
    print(f"hottest loop {lo:#x}-{hi:#x}: {n} instructions, {sum(c[3] for c in body)} samples")
    kinds, hits = collections.Counter(), collections.Counter()
    for _, op, args, s in body:
        k = op + (" (stack)" if ("rsp" in args or "rbp" in args) else " (memory)" if "(" in args else "")
        kinds[k] += 1
        hits[k] += s
    print(f"{'count':>6} {'samples':>8}  instruction")
    for k, v in kinds.most_common(20):
        print(f"{v:6d} {hits[k]:8d}  {k}")


if __name__ == "__main__":
    main()
