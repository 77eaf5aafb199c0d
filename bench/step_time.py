"""Benchmark: milliseconds per training step of one pack, in this process, no Ray.

One pack of K members (own seeds, Gaussian noise 0.1, batch 128, the first `--subset`
images), on one thread; after a few compiling steps, 100 steps are timed `--repeats`
times and the median printed, then the median time to score the 10,000 test images.
Meant for comparing two trees of the engine side by side, run one after the other on one
core (`taskset -c 0`), alternating:

    taskset -c 0 python bench/step_time.py mlp64 8
    (cd OTHER_TREE && PYTHONPATH=. taskset -c 0 python /path/to/bench/step_time.py mlp64 8)
"""

from __future__ import annotations

import argparse
import functools
import inspect
import statistics
import time

STEPS = 100
WARMUP = 5


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("arch")
    p.add_argument("k", type=int)
    p.add_argument("--subset", type=int, default=20000)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import numpy as np

    from sweeps.quiet import import_tensorflow

    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from sweeps.data import load_dataset
    from sweeps.grids import trial_config
    try:
        from sweeps.tasks.base import unjudged
    except ImportError:  # an older tree, whose denoisers did not train in the engine
        unjudged = dict
    try:  # a tree from before sweeps/training/ (tried first: an editable install of a newer
        # tree would answer for a package the older one lacks)
        from sweeps.pack_trainer import Pack
    except ImportError:
        from sweeps.training.pack import Pack

    arrays = load_dataset("mnist", log=lambda line: None).arrays()
    members = [trial_config({"arch": args.arch, "seed": i, "noise_type": "gaussian", "noise_scale": 0.1,
                             "batch_size": 128, "train_subset": args.subset}, {}) for i in range(args.k)]
    members = [unjudged(m) for m in members]  # a denoiser's judge is not timed here
    pack = Pack(members, arrays)
    idx = [tf.constant(np.tile(np.arange(s * 128, (s + 1) * 128, dtype=np.int32), (args.k, 1)))
           for s in range(STEPS)]
    size = tf.constant(128, tf.int32)
    # A tree from before the pack had one owner (sweeps.training.spec/ledger) held its step and
    # its scoring on the pack itself.
    train_step = getattr(pack, "_train_step", None) or pack.engine.train_step
    if "feed" in inspect.signature(getattr(pack.engine, "_step", lambda: None)).parameters:
        train_step = functools.partial(train_step, pack.engine.train)  # the step takes its feed first
    score = (lambda: pack.evaluate(pack.val, *pack.val_rows)) if hasattr(pack, "val_rows") else pack.validation_scores
    for s in range(WARMUP):
        train_step(idx[s], size, tf.constant(s, tf.int32))
    pack.engine.loss_sum.numpy()
    steps, scoring = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        for s in range(STEPS):
            train_step(idx[s], size, tf.constant(s, tf.int32))
        pack.engine.loss_sum.numpy()  # the steps have run
        steps.append((time.perf_counter() - t) * 1000 / STEPS)
        t = time.perf_counter()
        score()
        scoring.append(time.perf_counter() - t)
    print(f"{args.arch} K={args.k}: {statistics.median(steps):.2f} ms a step (median of {args.repeats}; "
          f"{min(steps):.2f}-{max(steps):.2f}), scoring the test split {statistics.median(scoring):.3f} s")


if __name__ == "__main__":
    main()
