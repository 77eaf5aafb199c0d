"""Benchmark: one worker training pack after pack, as a reused Ray actor does; seconds and
memory (RSS) per pack, with the worker's compiled step kept from pack to pack
(sweeps.training.engine, the default) and with a new one built for every pack.

Each pack: mlp64, one member (a `--pack 1` trial), MNIST's first 256 training and 256 test images,
Gaussian noise, 1 epoch, its own seed and L2 factor; `keras.backend.clear_session()`
between packs, as a trial does.

    python bench/worker_reuse.py              # 60 packs each way
    python bench/worker_reuse.py --packs 20
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def worker(packs: int, keep: bool) -> None:
    import time

    import psutil

    from sweeps.quiet import import_tensorflow

    import_tensorflow()
    import keras

    from sweeps.training import loop, worker
    from sweeps.grids import trial_config
    from sweeps.training.pack import Pack
    from sweeps.data import load_dataset

    arrays = load_dataset("mnist", log=lambda line: None).arrays()  # each pack takes its first 256
    process = psutil.Process()
    marks = []
    for i in range(packs):
        keras.backend.clear_session()
        if not keep:
            worker.release()
        config = trial_config({"arch": "mlp64", "epochs": 1, "train_subset": 256, "test_subset": 256,
                               "noise_type": "gaussian", "noise_scale": 0.1, "seed": i, "l2": 1e-6 * (i % 20 + 1)}, {})
        t0 = time.perf_counter()
        pack = Pack([config], arrays)
        loop.train(pack)
        del pack
        marks.append((time.perf_counter() - t0, process.memory_info().rss / 2**20))
    # The first packs compile (and warm caches) either way: steady state from the fifth on.
    settled = marks[4:]
    per_pack_s = sum(t for t, _ in settled) / len(settled)
    growth = (settled[-1][1] - settled[0][1]) / (len(settled) - 1)
    print(f"{'kept' if keep else 'new':>6} {marks[0][0]:10.2f} {per_pack_s:12.3f} {growth:15.2f} {marks[-1][1]:11.0f}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--packs", type=int, default=60)
    p.add_argument("--worker", choices=["kept", "new"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.packs, args.worker == "kept")
        return 0
    print(f"{'step':>6} {'first s':>10} {'s a pack':>12} {'MiB a pack':>15} {'RSS MiB':>11}")
    for mode in ("kept", "new"):
        # One process each: a fresh worker, as Ray starts one.
        subprocess.run([sys.executable, __file__, "--packs", str(args.packs), "--worker", mode], cwd=ROOT,
                       check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
