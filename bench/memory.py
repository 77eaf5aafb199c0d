"""Benchmark: peak memory of the runner's whole process tree for 1, 2 and 4 concurrent trials.

Runs `sweeps/run.py` on the same dataset with K trials at once (K CPUs for
the local Ray, 1 per trial) and samples the proportional set size (PSS) of
every process under it, so shared memory (Ray's object store, which holds
the dataset once per node) is counted once, not once per process.

    python bench/memory.py [--concurrency 1,2,4] [--arch mlp64] [--epochs 2]
    python bench/memory.py --pack-members 1,16     # one trial: a pack of M members, 1 CPU
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import psutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tree_pss(root: psutil.Process) -> tuple[int, int]:
    """(total PSS in bytes, process count) of `root` and its descendants."""
    total, count = 0, 0
    for p in [root, *root.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
            count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total, count


def peak_of_sweep(k: int, arch: str, epochs: int, folder: str, members: int = 1) -> tuple[float, int, float]:
    """k trials at once (k CPUs), each a pack of `members` configs (1: alone)."""
    grid = os.path.join(folder, f"mem{k}x{members}.yaml")
    with open(grid, "w") as f:
        f.write(f"arch: {arch}\ndataset: mnist\nnoise_type: gaussian\nnoise_scale: 0.1\n"
                f"epochs: {epochs}\nseed: {list(range(k * members))}\n")
    cmd = [sys.executable, "sweeps/run.py", "--grid", grid, "--name", f"m{k}x{members}",
           "--storage-path", os.path.join(folder, "runs"), "--num-cpus", str(k), "--pack", str(members)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    peak, peak_procs = 0, 0
    try:
        while proc.poll() is None:
            try:
                total, count = tree_pss(root)
            except psutil.NoSuchProcess:
                break
            if total > peak:
                peak, peak_procs = total, count
            time.sleep(0.2)
    finally:
        if proc.poll() is None:  # interrupted: do not leave a sweep running behind us
            proc.terminate()
            proc.wait()
    if proc.returncode != 0:
        raise SystemExit(f"sweep with {k} trials failed ({proc.returncode})")
    return peak / 2**20, peak_procs, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", default="1,2,4")
    p.add_argument("--arch", default="mlp64")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--pack-members", default=None, help="M values: one trial, a pack of M members")
    args = p.parse_args()
    if args.pack_members:
        print(f"{args.arch}, full MNIST, {args.epochs} epochs, one trial on 1 CPU")
        print(f"{'members':>8} {'peak PSS MiB':>13} {'x one member':>13} {'processes':>10} {'wall s':>7}")
        base = None
        with tempfile.TemporaryDirectory(prefix="noisesweep-mem-") as tmp:
            for m in (int(v) for v in args.pack_members.split(",")):
                peak, procs, wall = peak_of_sweep(1, args.arch, args.epochs, tmp, members=m)
                base = base or peak
                print(f"{m:>8} {peak:13.0f} {peak / base:13.2f} {procs:>10} {wall:7.1f}", flush=True)
        return 0
    print(f"{args.arch}, full MNIST (uint8 dataset 55 MB in the object store), {args.epochs} epochs")
    print(f"{'trials at once':>14} {'peak PSS MiB':>13} {'x one trial':>12} {'processes':>10} {'wall s':>7}")
    base = None
    with tempfile.TemporaryDirectory(prefix="noisesweep-mem-") as tmp:
        for k in (int(v) for v in args.concurrency.split(",")):
            peak, procs, wall = peak_of_sweep(k, args.arch, args.epochs, tmp)
            base = base or peak
            print(f"{k:>14} {peak:13.0f} {peak / base:12.2f} {procs:>10} {wall:7.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
