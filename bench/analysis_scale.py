"""Benchmark: `analysis.report` on a synthetic experiment of 10,000 trials x 40 epochs.

Writes the experiment in Ray Tune's layout (params.json, result.json,
progress.csv per trial) under a temporary folder, then times load,
aggregation, tables and figures. Target: under 30 s in all on 2 cores.

    python bench/analysis_scale.py [--trials 10000] [--epochs 40] [--keep DIR]
"""

import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from analysis import report  # noqa: E402

ARCHS = ("mlp64", "mlp500_300", "cnn", "cnn_keras")
SCALES = (0, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 4)
L2S = (0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def write_experiment(root: str, trials: int, epochs: int) -> str:
    exp = os.path.join(root, "scale")
    seeds = max(1, trials // (len(ARCHS) * len(SCALES) * len(L2S)))
    combos = itertools.islice(itertools.product(ARCHS, SCALES, L2S, range(seeds)), trials)
    for i, (arch, scale, l2, seed) in enumerate(combos):
        config = {"arch": arch, "dataset": "mnist", "noise_type": "gaussian", "noise_scale": scale,
                  "noise_target": "both", "l2": l2, "optimizer": "sgd", "lr": 0.1, "batch_size": 128,
                  "epochs": epochs, "seed": seed}
        path = os.path.join(exp, f"{arch}_gaussian{scale}_l2-{l2}_s{seed}_{i:05d}")
        os.makedirs(path)
        with open(os.path.join(path, "params.json"), "w") as f:
            json.dump(config, f)
        final = 0.98 - 0.1 * scale - 5 * l2 - 0.002 * seed
        lines, csv = [], ["epoch,loss,accuracy,val_loss,val_accuracy,epoch_time_s,training_iteration"]
        for e in range(1, epochs + 1):
            acc = final * (1 - 0.5 ** e)
            row = {"loss": 1 - acc, "accuracy": acc, "val_loss": 1.05 - acc, "val_accuracy": acc - 0.01,
                   "epoch": e, "epoch_time_s": 2.4, "diverged": False, "node_id": "n0", "hostname": "h",
                   "pid": 1000 + i, "training_iteration": e, "trial_id": f"x_{i:05d}", "done": e == epochs,
                   "config": config}
            lines.append(json.dumps(row))
            csv.append(f"{e},{1 - acc},{acc},{1.05 - acc},{acc - 0.01},2.4,{e}")
        with open(os.path.join(path, "result.json"), "w") as f:
            f.write("\n".join(lines) + "\n")
        with open(os.path.join(path, "progress.csv"), "w") as f:
            f.write("\n".join(csv) + "\n")
    return exp


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--keep", default=None, help="write here and keep it (default: a temporary folder)")
    args = p.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="noisesweep-bench-")
    try:
        t0 = time.perf_counter()
        exp = write_experiment(root, args.trials, args.epochs)
        print(f"wrote {args.trials:,} trials x {args.epochs} epochs in {time.perf_counter() - t0:.1f} s: {exp}")
        timings = {}
        t0 = time.perf_counter()
        written = report.build([exp], os.path.join(root, "report"), log=lambda line: None, timings=timings)
        total = time.perf_counter() - t0
        print(" ".join(f"{k} {v:.1f} s," for k, v in timings.items()) + f" total {total:.1f} s "
              f"({len(written)} files; target < 30 s)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
