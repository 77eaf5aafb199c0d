"""Benchmark: a pack's member-epochs per second against its size K on one GPU, through the
pack engine on Keras's JAX backend (sweeps.training.engine; no Ray, no TensorFlow).

For each architecture and K it builds a pack of K members (own seeds, own Gaussian noise
0.1) in the engine the trials train in, on generated images of MNIST's shape, compiles
its step, times STEPS steps of batch 128 and prints the member-epochs per second a
60,000-image epoch would take at that speed, and each K's gain over K=1. It stops an
architecture's Ks once a K is slower than the best so far, and the whole run at the
deadline (what was left is printed).

    KERAS_BACKEND=jax python bench/gpu.py                  # mlp64, mlp500_300, cnn; < 5 min
    KERAS_BACKEND=jax python bench/gpu.py --archs mlp64 --sizes 1,2 --steps 5   # on a CPU: a look

Without TensorFlow installed Keras must be told its backend (KERAS_BACKEND=jax); this
script sets it to JAX where it is unset.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("KERAS_BACKEND", "jax")

EPOCH_IMAGES = 60_000  # one MNIST epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default="mlp64,mlp500_300,cnn")
    parser.add_argument("--sizes", default="1,2,4,8,16,32,64", help="the Ks, in order")
    parser.add_argument("--steps", type=int, default=50, help="timed steps per pack (after 2 compiling ones)")
    parser.add_argument("--deadline", type=float, default=270.0, help="seconds for the whole run")
    args = parser.parse_args(argv)

    import keras

    from sweeps.grids import trial_config
    from sweeps.pack_speed import _rate
    from models import backends

    print(f"backend: {backends.version()}, keras {keras.__version__}, GPU: {backends.has_gpu()}", flush=True)
    t0 = time.perf_counter()
    results: dict = {}
    left: list = []
    for arch in args.archs.split(","):
        config = trial_config({"arch": arch, "noise_type": "gaussian", "noise_scale": 0.1, "seed": 0}, {})
        rates: dict = {}
        for k in (int(v) for v in args.sizes.split(",")):
            if time.perf_counter() - t0 > args.deadline:
                left.append(f"{arch} K={k}")
                continue
            try:
                steps_per_s = _rate(config, k, args.steps)
            except Exception as e:  # out of memory at a large K: the Ks below stand
                print(f"{arch} K={k}: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
                break
            rates[k] = steps_per_s * config["batch_size"] / EPOCH_IMAGES
            print(f"{arch:>11} K={k:<3} {rates[k]:8.2f} member-epochs/s  ({rates[k] / rates[min(rates)]:.2f}x K=1)"
                  f"  [{time.perf_counter() - t0:.0f} s]", flush=True)
            if rates[k] < max(rates.values()):
                break  # past the best
        results[arch] = rates
    if left:
        print(f"deadline ({args.deadline:.0f} s) reached; not measured: {', '.join(left)}")
    print(json.dumps({"backend": backends.version(), "gpu": backends.has_gpu(), "member_epochs_per_s": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
