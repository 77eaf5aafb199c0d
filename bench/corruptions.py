"""Benchmark: seconds to make each corruption of sweeps.corruptions for a whole split.

MNIST-C's suite, its fifteen at severity 0 (MNIST-C's own level), on 10,000 28x28 grey
images (MNIST's test set if it is on this machine, else digit-like images drawn here), whose
total must stay under 30 s on one core, then every CIFAR-10-C corruption at severity 3 on
2,000 32x32 colour images, reported per 10,000 (--cifar 0: none). Pin it to one core yourself:

    taskset -c 0 python bench/corruptions.py [--mnist 10000] [--cifar 2000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

import numpy as np
from scipy import ndimage as ndi

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sweeps.corruptions import SUITES, corrupt  # noqa: E402

TARGET_S = 30.0


def mnist_images(n: int) -> tuple[np.ndarray, str]:
    """MNIST's first n test images if the data are here without downloading, else strokes."""
    try:
        from sweeps.data import load_dataset
        with contextlib.redirect_stdout(io.StringIO()):
            ds = load_dataset("mnist", log=lambda line: None)
        if len(ds.x_test) >= n:
            return np.ascontiguousarray(ds.x_test[:n].reshape(n, 28, 28)), "MNIST's test set"
    except Exception:  # no data here: the timing does not depend on the digits' shapes
        pass
    return drawn_images(n, 28, 28, 1)[..., 0], "digit-like strokes drawn here"


def drawn_images(n: int, h: int, w: int, c: int, seed: int = 0) -> np.ndarray:
    """Smooth random shapes on a dark ground, uint8 (n, h, w, c)."""
    rng = np.random.default_rng(seed)
    x = ndi.gaussian_filter(rng.random((n, h, w, c), dtype=np.float32), (0, 2, 2, 0))
    x -= x.min(axis=(1, 2, 3), keepdims=True)
    x /= x.max(axis=(1, 2, 3), keepdims=True)
    return np.rint(np.clip(x * 1.6 - 0.5, 0, 1) * 255).astype(np.uint8)


def timed(images: np.ndarray, name: str, severity: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        corrupt(images, name, severity, seed=0)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist", type=int, default=10_000, help="grey 28x28 images (default 10,000)")
    p.add_argument("--cifar", type=int, default=2_000, help="colour 32x32 images (default 2,000; 0: none)")
    p.add_argument("--repeat", type=int, default=1, help="runs per corruption, the best kept")
    args = p.parse_args(argv)

    grey, source = mnist_images(args.mnist)
    print(f"mnist_c suite: {args.mnist:,} images 28x28 ({source}); seconds per {args.mnist:,}")
    print("| corruption | severity | s |\n|---|---|---|")
    total = 0.0
    for name, severity in SUITES["mnist_c"]:
        s = timed(grey, name, severity, args.repeat)
        total += s
        print(f"| {name} | {severity} | {s:.2f} |", flush=True)
    verdict = "met" if total <= TARGET_S * args.mnist / 10_000 else "MISSED"
    print(f"| **total** | | **{total:.1f}** (target <= {TARGET_S:.0f} per 10,000: {verdict}) |\n")
    if args.cifar <= 0:
        return 0

    colour = drawn_images(args.cifar, 32, 32, 3, seed=1)
    print(f"cifar10_c and cifar10_c_extra at severity 3: {args.cifar:,} images 32x32x3; seconds per 10,000")
    print("| corruption | s per 10,000 |\n|---|---|")
    total = 0.0
    names = dict.fromkeys(name for suite in ("cifar10_c", "cifar10_c_extra") for name, _ in SUITES[suite])
    for name in names:
        s = timed(colour, name, 3, args.repeat) * 10_000 / args.cifar
        total += s
        print(f"| {name} | {s:.2f} |", flush=True)
    print(f"| **total** | **{total:.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
