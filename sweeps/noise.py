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


def standardize(x: np.ndarray) -> np.ndarray:
    """Seed 000's preprocessing: subtract the split's mean and divide by its std, in place."""
    mean, std = x.mean(dtype=np.float64), x.std(dtype=np.float64)
    x -= np.float32(mean)
    x /= np.float32(std)
    return x


def gaussian(x: np.ndarray, scale: float, rng: np.random.Generator, clip: bool = False) -> np.ndarray:
    """Add N(0, scale) to every pixel, in place; `clip` keeps the result in [0, 1] (seed 003)."""
    x += np.float32(scale) * rng.standard_normal(x.shape, dtype=np.float32)
    if clip:
        np.clip(x, 0.0, 1.0, out=x)
    return x


def salt_and_pepper_masks(shape, level: float, rng: np.random.Generator):
    """Seed 001's two Bernoulli masks: `keep` ~ B(1 - level), `salt` ~ B(0.5)."""
    keep = rng.random(shape, dtype=np.float32) >= np.float32(level)
    salt = rng.random(shape, dtype=np.float32) < np.float32(0.5)
    return keep, salt


def salt_and_pepper(x: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Seed 001's salt and pepper: x*a + (1-a)*b, a ~ B(1 - level), b ~ B(0.5), in place.

    A pixel is kept with probability 1 - level, else set to 0 or 1 with equal odds.
    """
    keep, salt = salt_and_pepper_masks(x.shape, level, rng)
    np.copyto(x, salt.astype(x.dtype), where=~keep)
    return x


def _gaussian(x, scale, rng, clip):
    return gaussian(x, scale, rng, clip=clip)


def _salt_and_pepper(x, level, rng, clip):
    return salt_and_pepper(x, level, rng)  # its pixels are 0, 1 or kept: nothing to clip


# noise type -> adder(x, scale, rng, clip), in place. A new type is one function and one
# entry here; the grid accepts exactly these names (and "none").
ADDERS = {"gaussian": _gaussian, "salt_and_pepper": _salt_and_pepper}
NOISE_TYPES = ("none", *ADDERS)


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
    if noise_type == "none" or noise_target not in (split, "both"):
        return x
    return ADDERS[noise_type](x, noise_scale, split_rng(seed, split), noise_clip)
