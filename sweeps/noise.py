"""Where noise is added to images.

Every function works on a whole split at once (vectorised numpy) and draws
from a generator seeded by (trial seed, split) alone: replicate seeds see
different noise, a rerun sees the same, and trials that differ only in the
noise scale share the same underlying draws (common random numbers), so a
curve over scales is not jittered by resampling.
"""

from __future__ import annotations

import numpy as np

NOISE_TARGETS = ("train", "test", "both")
SPLITS = {"train": 0, "test": 1}


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The generator for one split's noise: a function of (seed, split) only."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS[split]]))


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels -> float32 in [0, 1] (x / 255, as every seed does)."""
    return images.astype(np.float32) / np.float32(255.0)


def with_channels(x: np.ndarray) -> np.ndarray:
    """Images as a model takes them: (N, H, W) grey gains its channel axis, (N, H, W, C)
    colour is as it is."""
    return x[..., np.newaxis] if x.ndim == 3 else x


def moments(x: np.ndarray):
    """The split's mean and std per channel (one pair for grey images), float32 arrays."""
    axes = tuple(range(x.ndim - 1)) if x.ndim == 4 else None
    return (np.asarray(x.mean(axis=axes, dtype=np.float64), np.float32),
            np.asarray(x.std(axis=axes, dtype=np.float64), np.float32))


def standardize(x: np.ndarray) -> np.ndarray:
    """Seed 000's preprocessing, in place: subtract the split's mean and divide by its std,
    per channel for colour images."""
    mean, std = moments(x)
    x -= mean
    x /= std
    return x


# The draws a split's noise is made of are kept in the smallest exact form the trainer can
# add in its compiled step (sweeps.training.feeds): Gaussian draws as float16 standard normals
# (half the memory of float32, so a pack of 16 members' noise fits beside one dataset; the
# rounding, 2**-11 of a draw, is far below any noise scale studied), salt and pepper as
# one uint8 code per pixel. Every trial, solo or packed, numpy or in-step, adds the same draws.
KEEP, PEPPER, SALT = 0, 1, 2


def gaussian_draws(shape, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Standard normal draws for N(0, scale) noise, as float16; the scale is applied when
    added, so trials that differ only in scale share their draws."""
    return rng.standard_normal(shape, dtype=np.float32).astype(np.float16)


def salt_and_pepper_masks(shape, level: float, rng: np.random.Generator):
    """Seed 001's two Bernoulli masks: `keep` ~ B(1 - level), `salt` ~ B(0.5).

    Both come from one draw with the pair last, so image i's masks are the same whatever the
    number of images drawn (two draws in turn would make the salt of image i depend on it)."""
    u = rng.random((*shape, 2), dtype=np.float32)
    return u[..., 0] >= np.float32(level), u[..., 1] < np.float32(0.5)


def salt_and_pepper_draws(shape, level: float, rng: np.random.Generator) -> np.ndarray:
    """Seed 001's salt and pepper as one code per pixel: KEEP with probability 1 - level,
    else PEPPER (0) or SALT (1) with equal odds."""
    keep, salt = salt_and_pepper_masks(shape, level, rng)
    return np.where(keep, KEEP, np.where(salt, SALT, PEPPER)).astype(np.uint8)


def add_gaussian(x, scale, drawn, clip, xp=np):
    """x + scale * draws; `clip` keeps the result in [0, 1] (seed 003). `xp` is numpy, or
    keras.ops inside a compiled step (sweeps.training.feeds maps the names) (scale and clip may then be per member)."""
    x = x + scale * xp.asarray(drawn, dtype=xp.float32)
    return xp.where(clip, xp.minimum(xp.maximum(x, 0.0), 1.0), x)


def add_salt_and_pepper(x, level, drawn, clip, xp=np):
    """Seed 001's x*a + (1-a)*b: a kept pixel stays, the others become 0 or 1 (nothing to clip)."""
    return xp.where(drawn == KEEP, x, xp.asarray(drawn, dtype=xp.float32) - float(PEPPER))


# noise type -> (draws(shape, scale, rng), add(x, scale, draws, clip, xp)). A new type is two
# functions and one entry here; the grid accepts exactly these names (and "none").
NOISES = {
    "gaussian": (gaussian_draws, add_gaussian),
    "salt_and_pepper": (salt_and_pepper_draws, add_salt_and_pepper),
}
NOISE_TYPES = ("none", *NOISES)


def targets(noise_type: str, noise_target: str, split: str) -> bool:
    """Whether a trial's noise applies to `split`."""
    return noise_type != "none" and noise_target in (split, "both")


def split_draws(n: int, shape, split: str, *, seed: int, noise_type: str, noise_scale: float):
    """The draws of a split's first `n` images (the same values whatever the subset's size
    would be drawn in one go: they are a function of (seed, split) alone)."""
    draw = NOISES[noise_type][0]
    return draw((n, *shape), noise_scale, split_rng(seed, split))


def noisy_split(
    images: np.ndarray,
    split: str,
    *,
    seed: int,
    noise_type: str = "none",
    noise_scale: float = 0.0,
    noise_target: str = "both",
    noise_clip: bool = False,
    standardize_first: bool = False,
) -> np.ndarray:
    """uint8 images of one split -> the float32 inputs a trial trains or evaluates on.

    Pixels go to [0, 1]; with `standardize_first` the split is standardised
    (seed 000); then noise is added if `noise_target` covers `split`.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {NOISE_TYPES}, not {noise_type!r}")
    x = to_unit_float(images)
    if standardize_first:
        standardize(x)
    if not targets(noise_type, noise_target, split):
        return x
    drawn = split_draws(len(images), images.shape[1:], split, seed=seed, noise_type=noise_type,
                        noise_scale=noise_scale)
    return NOISES[noise_type][1](x, np.float32(noise_scale), drawn, noise_clip).astype(np.float32, copy=False)
