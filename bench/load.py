"""Benchmark: a load run, many tiny configs through the runner; configs per minute, the
driver's peak memory and how many configs were lost.

Writes a grid of N configs (mlp64, 256 training and 256 test images, 1 epoch, Gaussian
noise 0.1; replicate seeds x 20 L2 factors), runs `sweeps/run.py` on it as a user would
for each `--pack` value asked for, and reads the experiment back with `analysis.load`:
a config is lost unless its trial folder holds its finished epoch.

    python bench/load.py                          # 2,000 configs, --pack auto then --pack 1
    python bench/load.py --configs 200 --packs 1  # the solo path only, fewer configs
    python bench/load.py --configs 200 --packs 1 --reuse-actors 1,0   # Tune's reuse_actors on / off
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
sys.path.insert(0, ROOT)

L2_FACTORS = 20


def write_grid(folder: str, configs: int) -> str:
    seeds = -(-configs // L2_FACTORS)
    l2 = [round(1e-6 * (i + 1), 9) for i in range(min(configs, L2_FACTORS))]
    path = os.path.join(folder, f"load{configs}.yaml")
    with open(path, "w") as f:
        f.write(f"arch: mlp64\ndataset: mnist\nnoise_type: gaussian\nnoise_scale: 0.1\nepochs: 1\n"
                f"train_subset: 256\ntest_subset: 256\nl2: {l2}\nseed: {list(range(seeds))}\n")
    return path


def run(grid: str, folder: str, pack: str, reuse: str) -> dict:
    name = f"p{pack}r{reuse}"
    storage = os.path.join(folder, "runs")
    cmd = [sys.executable, "sweeps/run.py", "--grid", grid, "--name", name, "--storage-path", storage,
           "--pack", pack]
    env = {**os.environ, "NOISESWEEP_REUSE_ACTORS": reuse}
    log = open(os.path.join(folder, f"{name}.log"), "w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    driver = psutil.Process(proc.pid)
    peak = 0
    try:
        while proc.poll() is None:
            try:
                peak = max(peak, driver.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.5)
    finally:
        if proc.poll() is None:  # interrupted: leave no sweep running behind us
            proc.terminate()
            proc.wait()
    wall = time.perf_counter() - t0
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"sweep {name} failed ({proc.returncode}); see {log.name}")
    from analysis.load import load_experiment

    df = load_experiment(os.path.join(storage, name))
    done = df[(df["status"] == "finished") & (df["epoch"] == 1)]["trial"].nunique()
    return {"wall": wall, "peak": peak / 2**20, "finished": done}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", type=int, default=2000)
    p.add_argument("--packs", default="auto,1", help="--pack values to run, in order")
    p.add_argument("--reuse-actors", default="1", help="Tune's reuse_actors values to run (1, 0 or both)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="noisesweep-load-") as tmp:
        grid = write_grid(tmp, args.configs)
        from sweeps.grids import load_grid

        n = len(load_grid(grid).trials)
        print(f"{n} configs: mlp64, 256 training images, 1 epoch; {os.cpu_count()} CPUs")
        print(f"{'--pack':>6} {'reuse':>5} {'wall s':>8} {'configs/min':>11} {'driver peak MiB':>15} "
              f"{'finished':>8} {'lost':>5}")
        for pack in args.packs.split(","):
            for reuse in args.reuse_actors.split(","):
                r = run(grid, tmp, pack, reuse)
                print(f"{pack:>6} {reuse:>5} {r['wall']:8.1f} {60 * n / r['wall']:11.1f} {r['peak']:15.0f} "
                      f"{r['finished']:>8} {n - r['finished']:>5}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
