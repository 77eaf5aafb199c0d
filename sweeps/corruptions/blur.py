"""Blur: gaussian, glass, defocus, motion and zoom blur (make_cifar_c.py; MNIST-C's at severity 0)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from sweeps.corruptions._common import (
    MNIST_C_LEVEL, _blur, _disk, _imagemagick_8bit, _motion_blur, _zoom_hwm)


def gaussian_blur(x, severity, rng):
    """Gaussian blur, sigma = 0.4, 0.6, 0.7, 0.8, 1 pixels (make_cifar_c.py gaussian_blur;
    skimage's gaussian: 'nearest' border, truncated at 4 sigma). Deterministic."""
    sigma = (0.4, 0.6, 0.7, 0.8, 1.0)[severity - 1]
    return _blur(x, sigma)


def glass_blur(x, severity, rng):
    """Blur, shuffle pixels locally, blur again: (sigma, max_delta, iterations) =
    (0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2) (make_cifar_c.py
    glass_blur). After the first blur the image is truncated to uint8 as the source's
    np.uint8 does; then, each iteration, every pixel (h, w) from the bottom right to
    (delta + 1, delta + 1) swaps with (h + dy, w + dx), dx and dy drawn from
    randint(-delta, delta), i.e. -delta..delta-1, in that order (swaps chain: a pixel can
    travel). The loop runs over pixel positions, each step on all images at once. Draws:
    (N, iterations, positions, 2) uniforms, (dx, dy) last.

    Severity 0, MNIST-C's (corruptions.py glass_blur, its default severity 1): (0.7, 1, 2),
    each swap made only on a coin flip (np.random.choice([True, False]), drawn before the
    swap's (dx, dy)), and both blurs skimage's gaussian(..., multichannel=True) of MNIST-C's
    2-D (28, 28) arrays: skimage takes the last axis for the channels and gives it sigma 0
    (skimage/filters/_gaussian.py of 2018-19), so MNIST-C's glass blur is vertical, sigma 0.7
    down each column and none along the rows. Every channel is treated as MNIST-C's grey image.
    Draws: (N, 2, positions, 3) uniforms, (swap?, dx, dy) last."""
    mnist_c = severity == MNIST_C_LEVEL
    sigma, delta, iterations = (((0.7, 0), 1, 2), (0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2),
                                (0.4, 1, 2))[severity]  # MNIST-C's, then severities 1-5
    n, h, w, c = x.shape
    y = np.floor(_blur(x, sigma) * 255).reshape(n, h * w, c)
    positions = [(r, q) for r in range(h - delta, delta, -1) for q in range(w - delta, delta, -1)]
    u = rng.random((n, iterations, len(positions), 3 if mnist_c else 2))
    d = np.floor(u[..., -2:] * (2 * delta)).astype(np.intp) - delta
    flat = np.array([r * w + q for r, q in positions], np.intp)
    targets = flat[None, None, :] + d[..., 1] * w + d[..., 0]  # (N, iterations, positions)
    if mnist_c:  # tails: no swap (a pixel swapped with itself)
        targets = np.where(u[..., 0] < 0.5, targets, flat[None, None, :])
    images = np.arange(n)
    for it in range(iterations):
        for k, p in enumerate(flat):
            q = targets[:, it, k]
            held = y[:, p].copy()
            y[:, p] = y[images, q]
            y[images, q] = held
    return _blur(y.reshape(n, h, w, c) / 255, sigma)


def defocus_blur(x, severity, rng):
    """Convolution with an antialiased disk (the sources' `disk`) of (radius, alias_blur) =
    (0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1) (make_cifar_c.py defocus_blur;
    cv2.filter2D, reflect-101 border). Deterministic."""
    radius, alias = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1))[severity - 1]
    kernel = _disk(radius, alias)
    return ndi.correlate(x, kernel[None, :, :, None], mode="mirror")


def motion_blur(x, severity, rng):
    """ImageMagick's motion blur (see _motion_blur) of (radius, sigma) = (6, 1), (6, 1.5),
    (6, 2), (8, 2), (9, 2.5) at an angle uniform in (-45, 45) degrees per image
    (make_cifar_c.py motion_blur). The source ran ImageMagick through Wand on a PNG; this is
    its kernel in numpy, its 8-bit output truncated as ImageMagick's (_imagemagick_8bit):
    equal to ImageMagick 6.9.11's output, checked on grey and colour images. Draws: (N,)
    uniforms.

    Severity 0, MNIST-C's: (10, 3) (corruptions.py motion_blur, its default severity 1 of
    (10, 3), (15, 5), (15, 8), (15, 12), (20, 15)), the same angles and ImageMagick call."""
    radius, sigma = ((10, 3), (6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5))[severity]  # MNIST-C's, then 1-5
    angles = rng.random(len(x)) * 90 - 45
    return _imagemagick_8bit(_motion_blur(x, radius, sigma, angles))


def zoom_blur(x, severity, rng):
    """The mean of the image and its clipped zooms by 1, 1.01, ... (np.arange(1, top, 0.01),
    top = 1.06, 1.11, 1.16, 1.21, 1.26) (make_cifar_c.py zoom_blur). Deterministic."""
    top = (1.06, 1.11, 1.16, 1.21, 1.26)[severity - 1]
    factors = np.arange(1, top, 0.01)
    n, h, w, c = x.shape
    y = x.transpose(1, 2, 0, 3).reshape(h, w, n * c)
    out = y.copy()
    for f in factors:
        out += _zoom_hwm(y, f)
    out /= len(factors) + 1
    return out.reshape(h, w, n, c).transpose(2, 0, 1, 3)
