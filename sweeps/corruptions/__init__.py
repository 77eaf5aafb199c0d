"""Common corruptions made here: MNIST-C's fifteen and CIFAR-10-C's nineteen, for any image size.

`corrupt(images, name, severity, seed=...)` takes a whole split of uint8 images, (N, H, W)
grey or (N, H, W, C) with C = 1 or 3, and returns it corrupted, uint8 of the same shape, as
MNIST-C (Mu & Gilmer 2019, google-research/mnist-c, corruptions.py) and CIFAR-10-C
(Hendrycks & Dietterich 2019, hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py)
are distributed; sweeps.benchmarks reads the published files.

CORRUPTIONS holds one function per corruption, f(x, severity, rng) -> float images, where x is
the split as float32 (N, H, W, C) in [0, 1]; `corrupt` clips and rounds the result (the
published scripts truncate with np.uint8: their images are half a grey level darker on
average, except where a step itself truncates, as ImageMagick's output does). A
corruption in both papers is one function with CIFAR-10-C's five severities. Each docstring
gives the published constants, with the file they come from, and says where this version
departs from them.

Severity 0 (MNIST_C_LEVEL) is MNIST-C's own level: MNIST-C has one level per corruption,
and sweeps.benchmarks reads its distributed folders as severity 0, so generated and
distributed MNIST-C are the same conditions in an analysis. Each of MNIST-C's fifteen takes
severity 0 and applies MNIST-C's published constants and procedure (corruptions.py, the
default severity of each of its functions): for the seven it shares with CIFAR-10-C, its
own constants, which lie outside CIFAR-10-C's five (shot noise's c = 3, impulse 0.17, glass
blur's (0.7, 1, 2) with its coin-flip swap and one-axis blur, motion blur (10, 3),
brightness + 0.5, fog (3, 1.4) on a 256 map, mud of area 14 %); for its eight own, the level
MNIST-C uses, which is one step of the table those functions extend to five (MNIST_C_STEP).
The other corruptions refuse severity 0. Severities 1-5 are what a user lists.

SUITES gives each benchmark's (corruption, severity) conditions: `mnist_c` is MNIST-C's
fifteen at severity 0, in its order (sweeps.benchmarks.MNIST_C), MNIST-C as published;
`cifar10_c` CIFAR-10-C's fifteen at 1-5 and `cifar10_c_extra` its four extra ones.

Random numbers: a corruption's generator is a function of (seed, corruption, severity) alone
(corruption_rng), so every trial scored with the same seed sees byte-identical corrupted
images (common random numbers across the trials compared) and a rerun sees the same. Each
random corruption draws one kind of number, an array whose first axis is the image (in one
call, or image block after image block, which is the same stream), so image i's draws are
the stream's i-th block: its corruption does not depend on how many images come with it, and
`corrupt` works through a large split in chunks without changing a byte.

The package: _common (shared helpers: the generator, grey/colour, blur, kernels, warps and
sampling, zoom, the plasma fractal, Canny and the OpenCV steps), noise, blur, weather,
digital, and mnist (MNIST-C's own eight); this module holds the registry, the suites and
`corrupt`; each corruption's function is importable from here too.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sweeps.benchmarks import CIFAR10_C, CIFAR10_C_EXTRA, MNIST_C, SEVERITIES
from sweeps.corruptions._common import MNIST_C_LEVEL, corruption_rng
from sweeps.corruptions.blur import defocus_blur, gaussian_blur, glass_blur, motion_blur, zoom_blur
from sweeps.corruptions.digital import brightness, contrast, elastic_transform, jpeg_compression, pixelate, saturate
from sweeps.corruptions.mnist import canny_edges, dotted_line, rotate, scale, shear, stripe, translate, zigzag
from sweeps.corruptions.noise import gaussian_noise, impulse_noise, shot_noise, speckle_noise
from sweeps.corruptions.weather import fog, frost, snow, spatter

# Images per step of `corrupt`: bounds the float copies (a 4096-image chunk of 32x32 colour
# is 50 MB as float32) without changing the result (see the module docstring).
CHUNK = 4096




# --------------------------------------------------------------------------------------
# The registry and the entry point
# --------------------------------------------------------------------------------------

CORRUPTIONS: dict[str, Callable] = {f.__name__: f for f in (
    gaussian_noise, shot_noise, impulse_noise, speckle_noise,
    defocus_blur, glass_blur, motion_blur, zoom_blur, gaussian_blur,
    snow, frost, fog, spatter,
    brightness, contrast, saturate, elastic_transform, pixelate, jpeg_compression,
    shear, scale, rotate, translate, stripe, dotted_line, zigzag, canny_edges)}

# Corruptions that draw nothing: the seed does not change them.
DETERMINISTIC = frozenset({"gaussian_blur", "defocus_blur", "zoom_blur", "brightness", "contrast", "saturate",
                           "pixelate", "jpeg_compression", "scale", "stripe", "canny_edges"})

SUITES: dict[str, tuple[tuple[str, int], ...]] = {
    "mnist_c": tuple((name, MNIST_C_LEVEL) for name in MNIST_C),
    "cifar10_c": tuple((name, s) for name in CIFAR10_C for s in SEVERITIES),
    "cifar10_c_extra": tuple((name, s) for name in CIFAR10_C_EXTRA for s in SEVERITIES),
}


def corrupt(images: np.ndarray, name: str, severity: int, *, seed: int) -> np.ndarray:
    """A split of uint8 images, (N, H, W) or (N, H, W, C) with C 1 or 3, corrupted by `name`
    at `severity` (1-5, or 0, MNIST-C's own level, for MNIST-C's fifteen): uint8 of the same
    shape, rounded from the corruption's floats. The same (images, name, severity, seed)
    gives the same bytes (module docstring)."""
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(sorted(CORRUPTIONS))}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or severity not in (MNIST_C_LEVEL, *SEVERITIES):
        raise ValueError(f"severity must be an integer from 1 to 5 (or {MNIST_C_LEVEL}, MNIST-C's own level, "
                         f"for MNIST-C's corruptions), not {severity!r}")
    if severity == MNIST_C_LEVEL and name not in MNIST_C:
        raise ValueError(f"severity {MNIST_C_LEVEL} is MNIST-C's own level; {name} is not an MNIST-C corruption: 1-5")
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (0-255), not {images.dtype}")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] in (1, 3))):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C) with C 1 or 3, not {images.shape}")
    x = images.reshape(images.shape[:3] + (images.shape[3] if images.ndim == 4 else 1,))
    if min(x.shape[1:3]) < 2:
        raise ValueError(f"images must be at least 2x2 pixels, not {x.shape[1]}x{x.shape[2]}")
    f = CORRUPTIONS[name]
    rng = corruption_rng(seed, name, int(severity))
    out = np.empty_like(x)
    for start in range(0, len(x), CHUNK):
        y = f(x[start:start + CHUNK].astype(np.float32) / np.float32(255), int(severity), rng)
        out[start:start + CHUNK] = np.rint(np.clip(y, 0, 1) * 255)
    return out.reshape(images.shape)
