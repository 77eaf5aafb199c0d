"""Scoring a pack under test-time conditions against training it: one epoch of a pack on
MNIST's 60,000 training images, then the pack scored on a suite (clean + mnist_c's fifteen
corruptions of the 10,000 test images: 160,000 images), side by side in one process.

    taskset -c 0 .venv/bin/python bench/scoring.py mlp64 8
    .venv/bin/python bench/scoring.py cnn 2

Prints the seconds to make the suite's images (once per experiment, before the trials), a
training epoch (its first: compiling included), the scoring (its first, compiling
included, and again), and the scoring's time as a share of the epoch's.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("arch")
    p.add_argument("k", type=int)
    p.add_argument("--suite", default="mnist_c")
    args = p.parse_args()

    from sweeps.quiet import import_tensorflow

    tf = import_tensorflow()
    tf.config.experimental.enable_op_determinism()
    from sweeps.data import load_dataset
    from sweeps.grids import trial_config
    from sweeps.preflight import scoring_images
    from sweeps.training.pack import Pack

    arrays = load_dataset("mnist", log=lambda line: None).arrays()
    members = [trial_config({"arch": args.arch, "seed": i, "noise_type": "gaussian", "noise_scale": 0.1,
                             "standardize": True, "epochs": 1, "evaluate": {"suites": [args.suite]}}, {})
               for i in range(args.k)]
    t = time.perf_counter()
    made = scoring_images(members, {"mnist": arrays}, "bench", log=lambda *a, **k: None)["mnist"]
    making = time.perf_counter() - t
    pack = Pack(members, arrays, validate=False, scoring=made)
    t = time.perf_counter()
    pack.ledger.record(pack.train_epoch(), {})  # the loop's epoch short of its scoring
    epoch = time.perf_counter() - t
    images = sum(len(pack.spec.condition_feed(c).images) for c in pack.spec.conditions)
    t = time.perf_counter()
    pack.score_conditions(list(range(pack.k)))
    first = time.perf_counter() - t
    t = time.perf_counter()
    pack.score_conditions(list(range(pack.k)))
    again = time.perf_counter() - t
    print(f"{args.arch} K={args.k}: {args.suite} made in {making:.1f} s; a training epoch (60,000 images) "
          f"{epoch:.1f} s; scoring {len(pack.spec.conditions)} conditions ({images:,} images) {first:.1f} s "
          f"(again {again:.1f} s): {first / epoch:.2f} of the epoch")


if __name__ == "__main__":
    main()
