"""Noise: gaussian, shot, impulse and speckle noise (make_cifar_c.py; MNIST-C's at severity 0)."""

from __future__ import annotations

import numpy as np


def gaussian_noise(x, severity, rng):
    """x + N(0, c), c = 0.04, 0.06, 0.08, 0.09, 0.10 (make_cifar_c.py gaussian_noise).
    Draws: one standard normal per value, (N, H, W, C)."""
    c = (0.04, 0.06, 0.08, 0.09, 0.10)[severity - 1]
    return x + np.float32(c) * rng.standard_normal(x.shape, dtype=np.float32)


def shot_noise(x, severity, rng):
    """poisson(x * c) / c, c = 500, 250, 100, 75, 50 photons at full intensity
    (make_cifar_c.py shot_noise). Draws: one Poisson per value, (N, H, W, C).

    Severity 0, MNIST-C's: c = 3 (corruptions.py shot_noise, its default severity 5 of 60,
    25, 12, 5, 3), far below CIFAR-10-C's scale: ~ 4x the noise of c = 50 (the noise's std
    goes as 1 / sqrt(c))."""
    c = (3, 500, 250, 100, 75, 50)[severity]  # MNIST-C's, then severities 1-5
    return rng.poisson(x.astype(np.float64) * c).astype(np.float32) / np.float32(c)


def impulse_noise(x, severity, rng):
    """Salt and pepper (skimage.util.random_noise mode 's&p'): each value, channels apart,
    replaced with probability `amount` by 0 or 1 with equal odds; amount = 0.01, 0.02, 0.03,
    0.05, 0.07 (make_cifar_c.py impulse_noise). Draws: (N, H, W, C, 2) uniforms, the pair
    (replace?, salt?) last.

    Severity 0, MNIST-C's: amount 0.17 (corruptions.py impulse_noise, its default severity 4
    of 0.03, 0.06, 0.09, 0.17, 0.27), through the same skimage call."""
    amount = (0.17, 0.01, 0.02, 0.03, 0.05, 0.07)[severity]  # MNIST-C's, then severities 1-5
    u = rng.random((*x.shape, 2), dtype=np.float32)
    return np.where(u[..., 0] < amount, (u[..., 1] < 0.5).astype(np.float32), x)


def speckle_noise(x, severity, rng):
    """x + x * N(0, c), c = 0.06, 0.1, 0.12, 0.16, 0.2 (make_cifar_c.py speckle_noise).
    Draws: one standard normal per value, (N, H, W, C)."""
    c = (0.06, 0.1, 0.12, 0.16, 0.2)[severity - 1]
    return x + x * (np.float32(c) * rng.standard_normal(x.shape, dtype=np.float32))
