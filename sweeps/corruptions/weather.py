"""Weather: snow, frost, fog and spatter (make_cifar_c.py; MNIST-C's at severity 0)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from scipy import special

from sweeps.corruptions._common import (
    BT601, MNIST_C_LEVEL, REC709, _blur, _box3, _canny_cv2, _chamfer5, _clipped_zoom, _colour, _equalize, _grey,
    _imagemagick_8bit, _motion_blur, _plasma, _pow2)

# Values of plasma map made at once: fog's maps are made this many values' worth of images
# at a time (MNIST-C's 256x256 map is 64 K values an image; CIFAR-10-C's 32x32 one, 1 K),
# which bounds the memory without changing a byte.
PLASMA_VALUES = 1 << 20


def snow(x, severity, rng):
    """Snow (make_cifar_c.py snow), (loc, scale, zoom, threshold, radius, sigma, blend) =
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9), (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8): a N(loc, scale) layer, clipped-zoomed, zero under
    the threshold, truncated to uint8, motion-blurred at an angle uniform in (-135, -45)
    degrees (the source's ImageMagick through Wand: here _motion_blur, to uint8 as
    _imagemagick_8bit), added with its 180-degree turn to blend * x + (1 - blend) *
    max(x, 1.5 * grey(x) + 0.5), grey by cv2's BT.601 weights (the image itself if grey).
    Draws: (N, H*W + 1) standard normals: the layer, then the angle through the normal CDF."""
    loc, scale, zoom, threshold, radius, sigma, blend = (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95), (0.1, 0.2, 1, 0.5, 10, 4, 0.9), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8))[severity - 1]
    n, h, w, c = x.shape
    z = rng.standard_normal((n, h * w + 1))
    layer = (loc + scale * z[:, :-1]).reshape(n, h, w, 1)
    layer = _clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255) / 255
    angles = special.ndtr(z[:, -1]) * 90 - 135
    flakes = _imagemagick_8bit(_motion_blur(layer.astype(np.float32), radius, sigma, angles))
    grey = _grey(x, BT601)[..., None]
    x = blend * x + (1 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    return x + flakes + flakes[:, ::-1, ::-1]


def _frost_texture(u: np.ndarray, h: int, w: int, c: int) -> np.ndarray:
    """A procedural stand-in for the frost photographs (0-1, (N, H, W, C)): a rough plasma
    cloud (the fog's fractal, decay 1.6) for the frosted haze, plus ice needles: sparse
    seeds (6 % of pixels) streaked by two motion blurs at random angles; weighted so the mean
    is about 0.5 and tinted pale blue (grey images: its luminance)."""
    n = len(u)
    size = _pow2(max(h, w))
    k = size * size - 1
    haze = _plasma(u[:, :k], size, 1.6, h, w)[..., None].astype(np.float32)
    seeds = (u[:, k:k + h * w] < 0.06).reshape(n, h, w, 1).astype(np.float32)
    angles = u[:, k + h * w:k + h * w + 2] * 360
    needles = _motion_blur(seeds, 3, 2, angles[:, 0]) + _motion_blur(seeds, 3, 2, angles[:, 1])
    needles /= np.maximum(needles.max(axis=(1, 2, 3), keepdims=True), 1e-6)
    t = np.clip(0.2 + 0.45 * haze + 0.6 * needles, 0, 1)
    tint = np.array([0.86, 0.93, 1.0], np.float32)
    return t * (tint if c == 3 else tint @ REC709)


def frost(x, severity, rng):
    """c0 * x + c1 * frost, (c0, c1) = (1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4),
    (0.75, 0.45) (make_cifar_c.py frost). The source blends a random 32x32 crop of one of six
    frost photographs (frost1.png ... frost6.jpg, shrunk to a fifth), which are not
    available here: the frost is _frost_texture, procedural, so the blend's constants are
    the published ones but the frost is not theirs, and scores are not comparable with
    published CIFAR-10-C frost. Draws: (N, size**2 - 1 + H*W + 2) uniforms (size: the
    power of two at or above the image's side)."""
    c0, c1 = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))[severity - 1]
    n, h, w, c = x.shape
    size = _pow2(max(h, w))
    u = rng.random((n, size * size - 1 + h * w + 2))
    return c0 * x + c1 * _frost_texture(u, h, w, c)


def fog(x, severity, rng):
    """(x + c * plasma) * max / (max + c), max the image's brightest value, the plasma fractal
    of decay d: (c, d) = (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)
    (make_cifar_c.py fog). The map is the power of two at or above the image's side, cropped
    (CIFAR-10-C's 32 for 32x32). Draws: (N, size**2 - 1) uniforms, made PLASMA_VALUES at a
    time.

    Severity 0, MNIST-C's: (c, d) = (3, 1.4) (corruptions.py fog, its default severity 5 of
    (1.5, 2), (2, 2), (2.5, 1.7), (2.5, 1.5), (3, 1.4)) on plasma_fractal's default 256x256
    map (or the power of two at or above a larger image's side), its top-left corner kept,
    normalised over the whole map: a fog of a coarser grain than CIFAR-10-C's. Its draws are
    float32 uniforms (the map computed in float32: within 1e-6 of float64's)."""
    c, decay = ((3, 1.4), (0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))[severity]  # MNIST-C's, then 1-5
    n, h, w, _ = x.shape
    size, dtype = _pow2(max(h, w)), np.float64
    if severity == MNIST_C_LEVEL:  # 64 K values an image: in float32, twice as fast
        size, dtype = max(size, 256), np.float32
    block = max(1, PLASMA_VALUES // (size * size))
    plasma = np.empty((n, h, w, 1), np.float32)
    for start in range(0, n, block):  # the same stream as one draw of (N, size**2 - 1)
        u = rng.random((min(block, n - start), size * size - 1), dtype=dtype)
        plasma[start:start + block, :, :, 0] = _plasma(u, size, decay, h, w)
    top = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + np.float32(c) * plasma) * top / (top + np.float32(c))


def spatter(x, severity, rng):
    """Water or mud splashes (make_cifar_c.py spatter), (loc, scale, sigma, threshold, c4,
    mud) = (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0),
    (0.65, 0.3, 1, 0.69, 0.5, 0), (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1).
    A N(loc, scale) layer, blurred by sigma, zero under the threshold, is the liquid.

    Water (severities 1-3): the liquid's edges (Canny), the distance to them (capped at 20),
    box-blurred, histogram-equalised, embossed by [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
    box-blurred, times the liquid, scaled to a maximum of c4, times pale turquoise
    (175, 238, 238), added. The source's OpenCV steps are redone in numpy (_canny_cv2,
    _chamfer5, _equalize, _box3): equal, within a grey level, to OpenCV 4's, whose 5x5
    distance is in 16-bit fixed point (OpenCV 5 computes it in float: a few images then
    differ).

    Mud (4-5): where the liquid is, blurred by c4, zero under 0.8, is mixed in as mud
    brown (63, 42, 20). On grey images the colours are their luminance, except MNIST-C's own
    grey mud, 63.

    Severity 0, MNIST-C's: mud of (0.65, 0.3, 1, 0.65, 1.5) (corruptions.py spatter, its
    default severity 4), grey 63 in every channel (MNIST-C's 63 / 255 * ones_like(x)): 14 %
    of a 28x28 image under mud, against 7 % at severity 5. Draws: (N, H, W) standard
    normals."""
    loc, scale, sigma, threshold, c4, mud = (
        (0.65, 0.3, 1, 0.65, 1.5, 1),  # MNIST-C's, then severities 1-5
        (0.62, 0.1, 0.7, 0.7, 0.5, 0), (0.65, 0.1, 0.8, 0.7, 0.5, 0), (0.65, 0.3, 1, 0.69, 0.5, 0),
        (0.65, 0.1, 0.7, 0.69, 0.6, 1), (0.65, 0.1, 0.5, 0.68, 0.6, 1))[severity]
    n, h, w, c = x.shape
    liquid = _blur(loc + scale * rng.standard_normal((n, h, w)), sigma)
    liquid[liquid < threshold] = 0
    if mud:
        m = _blur((liquid > threshold).astype(np.float32), c4)
        m[m < 0.8] = 0
        grey_mud = c == 1 or severity == MNIST_C_LEVEL
        brown = np.full(c, 63 / 255, np.float32) if grey_mud else _colour(x, (63, 42, 20))
        return x * (1 - m[..., None]) + brown * m[..., None]
    # The source's (liquid * 255).astype(np.uint8): past 1 (one image in five at severity 3)
    # the cast wraps around, as numpy's does on x86, and the brightest liquid turns dark.
    l8 = np.mod(np.floor(liquid * 255), 256)
    dist = np.minimum(_chamfer5(_canny_cv2(l8, 50, 150)), np.float32(20))
    dist = np.floor(_box3(dist))
    dist = _equalize(dist)
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], np.float32)
    dist = np.clip(np.rint(ndi.correlate(dist, emboss[None], mode="mirror")), 0, 255)
    m = l8.astype(np.float32) * _box3(dist)
    top = m.max(axis=(1, 2), keepdims=True)
    m = np.where(top > 0, m / np.where(top > 0, top, 1), 0) * np.float32(c4)
    return x + m[..., None] * _colour(x, (175, 238, 238))
