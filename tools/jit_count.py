"""Instructions a CPU driver's compiled kernels execute for one command: runs it under
valgrind's callgrind and sums the functions that belong to no file (lavapipe's and
llvmpipe's JIT code; the LLVM compile, the driver and netlens itself are left out).
Unlike wall time, which swings by a third between runs on a shared 2-core machine, the
count repeats to within a fraction of a percent, so two builds can be compared on one
run each. Instructions are not time: a stalled load counts once.

Run: python3 tools/jit_count.py [--top N] -- COMMAND [ARGS...]
  e.g. python3 tools/jit_count.py -- target/release/netlens attribute \\
           models/shapes-vgg.safetensors models/samples/star.png --method gradient \\
           --out /tmp/g.npy --overwrite
Needs valgrind (Debian: apt-get install valgrind). Under callgrind a command runs about
50 times slower; a warm shader cache (a first run outside valgrind) saves the compile.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=8, help="largest JIT functions to list")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("give the command after --")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--smc-check=all-non-file",
             f"--callgrind-out-file={out}"] + cmd,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if run.returncode != 0 or not os.path.exists(out):
            sys.stderr.write(run.stderr[-2000:])
            sys.exit(f"the command failed under valgrind (exit {run.returncode})")
        total = re.search(r"Collected : (\d+)", run.stderr)
        ann = subprocess.run(["callgrind_annotate", "--threshold=100", out],
                             capture_output=True, text=True, check=True).stdout
    jit = []
    for line in ann.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\?\?\?:(0x[0-9a-f]+) \[\?\?\?\]$", line)
        if m:
            jit.append((int(m.group(1).replace(",", "")), m.group(2)))
    jit.sort(reverse=True)
    s = sum(n for n, _ in jit)
    print(f"JIT code: {s / 1e9:.3f} G instructions in {len(jit)} functions"
          + (f" (whole process {int(total.group(1)) / 1e9:.3f} G)" if total else ""))
    for n, addr in jit[: a.top]:
        print(f"  {n / 1e6:10.1f} M  {addr}")


if __name__ == "__main__":
    main()
