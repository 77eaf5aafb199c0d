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
"""

from __future__ import annotations

import io
import math
import zlib
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage as ndi
from scipy import special

from sweeps.benchmarks import CIFAR10_C, CIFAR10_C_EXTRA, MNIST_C, MNIST_C_SEVERITY, SEVERITIES

# Images per step of `corrupt`: bounds the float copies (a 4096-image chunk of 32x32 colour
# is 50 MB as float32) without changing the result (see the module docstring).
CHUNK = 4096
# Values of plasma map made at once: fog's maps are made this many values' worth of images
# at a time (MNIST-C's 256x256 map is 64 K values an image; CIFAR-10-C's 32x32 one, 1 K),
# which bounds the memory without changing a byte.
PLASMA_VALUES = 1 << 20

# MNIST-C's own level of its fifteen corruptions (module docstring): the severity that
# sweeps.benchmarks gives MNIST-C's distributed conditions.
MNIST_C_LEVEL = MNIST_C_SEVERITY

# The luminance skimage.color.rgb2gray uses (ITU-R BT.709), through which MNIST-C turned its
# colour corruptions back to grey; here, a grey image's version of a colour step.
REC709 = np.array([0.2125, 0.7154, 0.0721], np.float32)
# cv2.cvtColor(RGB2GRAY)'s weights (BT.601), which CIFAR-10-C's snow uses.
BT601 = np.array([0.299, 0.587, 0.114], np.float32)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------

def corruption_rng(seed: int, name: str, severity: int) -> np.random.Generator:
    """The generator of one condition: a function of (seed, name, severity) alone. The name
    enters as its CRC-32, which, unlike Python's hash(), is the same in every process."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(name.encode()), int(severity)]))


def _grey(x: np.ndarray, weights: np.ndarray = REC709) -> np.ndarray:
    """(N, H, W, C) -> (N, H, W): a colour image's luminance; a grey image as it is."""
    return x[..., 0] if x.shape[-1] == 1 else x @ weights


def _colour(x: np.ndarray, rgb) -> np.ndarray:
    """A published RGB colour (0-255) as a pixel of x's kind: the colour, or its luminance."""
    rgb = np.asarray(rgb, np.float32) / 255
    return rgb if x.shape[-1] == 3 else np.array([rgb @ REC709], np.float32)


def _blur(x: np.ndarray, sigma, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """skimage.filters.gaussian over each image's rows and columns, never across images or
    channels; its defaults, mode 'nearest' and truncate 4, are the sources' blur. `sigma`
    one number, or (down the rows, along the columns)."""
    rows, cols = (sigma, sigma) if np.ndim(sigma) == 0 else sigma
    return ndi.gaussian_filter(x, (0, rows, cols) + (0,) * (x.ndim - 3), mode=mode, truncate=truncate)


def _disk(radius: float, alias_blur: float) -> np.ndarray:
    """Both sources' `disk`: the pixels within `radius` of the centre of a 17x17 grid (wider
    past radius 8), normalised, then smoothed by cv2.GaussianBlur (3x3, 5x5 past radius 8,
    reflect-101 border) to antialias. Cropped to its nonzero support, which changes nothing."""
    half = 8 if radius <= 8 else int(radius)
    grid = np.arange(-half, half + 1)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    kernel = (xx ** 2 + yy ** 2 <= radius ** 2).astype(np.float64)
    kernel /= kernel.sum()
    size = 3 if radius <= 8 else 5
    g = np.exp(-(np.arange(size) - (size - 1) / 2) ** 2 / (2 * alias_blur ** 2))
    g /= g.sum()
    kernel = ndi.correlate1d(ndi.correlate1d(kernel, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")
    rows, cols = np.nonzero(kernel)
    return kernel[rows.min():rows.max() + 1, cols.min():cols.max() + 1].astype(np.float32)


def _motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's MotionBlurImage (what the sources call through Wand), per image angle in
    degrees: 2*ceil(radius)+1 taps weighted exp(-i^2 / 2 sigma^2), normalised, the i-th
    sampling the pixel (round(i cos a), round(i sin a)) away (columns, rows; rounding half
    down, as its ceil(v - 0.5)), beyond the border the edge pixel (its default virtual pixel).
    One-sided, as ImageMagick's is: each pixel averages those ahead of it along the angle,
    so a bright dot smears backwards, away from the angle's direction."""
    n, h, w, c = x.shape
    width = 2 * math.ceil(radius) + 1
    taps = np.arange(width)
    weights = np.exp(-(taps * taps) / (2.0 * max(sigma, 1e-12) ** 2))
    weights /= weights.sum()
    rad = np.deg2rad(np.asarray(angles, np.float64))
    dx = np.ceil(np.cos(rad)[:, None] * taps - 0.5).astype(np.intp)
    dy = np.ceil(np.sin(rad)[:, None] * taps - 0.5).astype(np.intp)
    p = width - 1
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), mode="edge")
    # Every image's window at every offset, as a view: picking one per image is a block copy.
    windows = sliding_window_view(padded, (h, w), axis=(1, 2))  # (N, 2p+1, 2p+1, C, H, W)
    images = np.arange(n)
    out = np.zeros((n, c, h, w), np.float32)
    for t in range(width):
        out += np.float32(weights[t]) * windows[images, p + dy[:, t], p + dx[:, t]]
    return out.transpose(0, 2, 3, 1)


def _imagemagick_8bit(x: np.ndarray) -> np.ndarray:
    """A blurred image as ImageMagick writes it to an 8-bit PNG: measured on 6.9.11 (Q16)
    through Wand, it truncates (floor) rather than rounds; the 1e-3 absorbs float32 error."""
    return np.floor(x * 255 + 1e-3) / 255


def _fold(i: np.ndarray, n: int, mode: str):
    """Indices beyond [0, n) folded back as `mode` extends an image; and which were inside.
    'constant': zero beyond the edge, interpolated towards (skimage.transform.warp, scipy's
    'grid-constant'); 'reflect': d c b a | a b c d | d c b a (scipy's, skimage's 'reflect');
    'mirror': d c b | a b c d | c b a (scipy's 'mirror', OpenCV's BORDER_REFLECT_101)."""
    inside = (i >= 0) & (i < n)
    if mode == "constant" or n == 1:
        return np.clip(i, 0, n - 1), inside
    if mode == "reflect":
        i = np.mod(i, 2 * n)
        return np.where(i >= n, 2 * n - 1 - i, i), inside
    i = np.mod(i, 2 * n - 2)
    return np.where(i >= n, 2 * n - 2 - i, i), inside


def _sample(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear interpolation of each image at its own (rows, cols), arrays (N, H', W'), with
    the border `mode` of _fold: order 1 of scipy.ndimage.map_coordinates and of
    skimage.transform.warp, for all images at once."""
    n, h, w, c = x.shape
    r0, c0 = np.floor(rows), np.floor(cols)
    fr = (rows - r0).astype(np.float32)[..., None]
    fc = (cols - c0).astype(np.float32)[..., None]
    r0, c0 = r0.astype(np.intp), c0.astype(np.intp)
    flat = x.reshape(n * h * w, c)
    base = (np.arange(n) * (h * w)).reshape((n,) + (1,) * (rows.ndim - 1))
    out = 0
    for dr, wr in ((0, 1 - fr), (1, fr)):
        ri, in_r = _fold(r0 + dr, h, mode)
        for dc, wc in ((0, 1 - fc), (1, fc)):
            ci, in_c = _fold(c0 + dc, w, mode)
            weight = wr * wc
            if mode == "constant":
                weight = weight * (in_r & in_c)[..., None]
            out = out + weight * flat[base + ri * w + ci]
    return out


def _warp(x: np.ndarray, matrices: np.ndarray, mode: str = "constant") -> np.ndarray:
    """skimage.transform.warp(x, inverse_map=M) per image: output pixel (column, row) takes
    the input at M @ (column, row, 1); `matrices` is (N, 2, 3), x first as skimage's."""
    n, h, w, _ = x.shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    m = matrices[:, :, :, None, None]
    src_c = m[:, 0, 0] * cols + m[:, 0, 1] * rows + m[:, 0, 2]
    src_r = m[:, 1, 0] * cols + m[:, 1, 1] * rows + m[:, 1, 2]
    return _sample(x, src_r, src_c, mode)


def _about_centre(linear: np.ndarray, h: int, w: int) -> np.ndarray:
    """(N, 2, 2) linear maps -> (N, 2, 3) affine ones that keep the image centre fixed, as
    MNIST-C's translation 13.5 * (1 - a1 - a2) does for 28x28 ((W-1)/2, (H-1)/2 in general)."""
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    return np.concatenate([linear, (centre - linear @ centre)[:, :, None]], axis=2)


def _zoom_matrix(n: int, factor: float) -> np.ndarray:
    """One axis of the sources' clipped_zoom as an (n, n) matrix: the central ceil(n / factor)
    pixels, scipy.ndimage.zoom'ed (order 1) to round(that * factor), the central n kept."""
    crop = math.ceil(n / factor)
    top = (n - crop) // 2
    zoomed = int(round(crop * factor))
    trim = (zoomed - n) // 2
    pos = (trim + np.arange(n)) * ((crop - 1) / (zoomed - 1) if zoomed > 1 else 0.0)
    i0 = np.minimum(np.floor(pos).astype(np.intp), crop - 1)
    frac = pos - i0
    i1 = np.minimum(i0 + 1, crop - 1)
    m = np.zeros((n, n))
    np.add.at(m, (np.arange(n), top + i0), 1 - frac)
    np.add.at(m, (np.arange(n), top + i1), frac)
    return m.astype(np.float32)


def _zoom_hwm(y: np.ndarray, factor: float) -> np.ndarray:
    """clipped_zoom of images laid out (H, W, M), M = images x channels: two matrix products."""
    rows, cols = _zoom_matrix(y.shape[0], factor), _zoom_matrix(y.shape[1], factor)
    out = (rows @ y.reshape(y.shape[0], -1)).reshape(y.shape)
    return np.matmul(cols, out)


def _clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """The sources' clipped_zoom of (N, H, W, C) images, per axis (they took the height for both)."""
    n, h, w, c = x.shape
    y = x.transpose(1, 2, 0, 3).reshape(h, w, n * c)
    return _zoom_hwm(y, factor).reshape(h, w, n, c).transpose(2, 0, 1, 3)


def _pow2(n: int) -> int:
    return 1 << max(1, (n - 1).bit_length())


def _rolled_add(t: np.ndarray, v: np.ndarray, shift: int, axis: int) -> None:
    """t += np.roll(v, shift, axis) for shift +-1, without the rolled copy."""
    def at(i):
        return (slice(None),) * axis + (i,)
    if shift == 1:
        t[at(slice(1, None))] += v[at(slice(None, -1))]
        t[at(0)] += v[at(-1)]
    else:
        t[at(slice(None, -1))] += v[at(slice(1, None))]
        t[at(-1)] += v[at(0)]


def _diamonds(mids: np.ndarray, corners: np.ndarray, axis: int, noise: np.ndarray) -> np.ndarray:
    """One diamond set of the plasma's level: the mean of a point's two square centres and two
    corners (along `axis` and the other), plus its noise, summed in the source's order."""
    t = mids.copy()
    _rolled_add(t, mids, 1, axis)
    t += corners
    _rolled_add(t, corners, -1, 3 - axis)
    t /= 4
    t += noise
    return t


def _plasma(u: np.ndarray, size: int, decay: float, h: int | None = None, w: int | None = None) -> np.ndarray:
    """The sources' plasma_fractal (diamond-square on a torus, after FLHerne/mapgen), one
    (size, size) map per row of u, scaled to [0, 1] per map, its top-left (h, w) corner
    returned (the whole map by default). u holds size**2 - 1 uniforms per image, used level
    by level as the source draws them (squares, then the two diamond sets): wibble *
    uniform(-wibble, wibble), wibble from 100, divided by `decay` each level. Computed in u's
    float type, in place, each sum in the source's order."""
    n = len(u)
    a = np.zeros((n, size, size), u.dtype)
    step, wibble, used = size, 100.0, 0
    while step >= 2:
        k = size // step
        noise = u[:, used:used + 3 * k * k].reshape(n, 3, k, k) * 2
        used += 3 * k * k
        noise -= 1
        noise *= wibble
        noise *= wibble
        half = step // 2
        corners = a[:, 0::step, 0::step]
        squares = corners.copy()
        _rolled_add(squares, corners, -1, 1)
        t = squares.copy()
        _rolled_add(t, squares, -1, 2)
        t /= 4
        t += noise[:, 0]
        a[:, half::step, half::step] = t
        mids = a[:, half::step, half::step]
        a[:, 0::step, half::step] = _diamonds(mids, corners, 1, noise[:, 1])
        a[:, half::step, 0::step] = _diamonds(mids, corners, 2, noise[:, 2])
        step //= 2
        wibble /= decay
    low = a.min(axis=(1, 2), keepdims=True)
    # (x - low) / (max - low): byte for byte the source's (x - low) / max(x - low)
    return (a[:, :h, :w] - low) / (a.max(axis=(1, 2), keepdims=True) - low)


def _sobel(s: np.ndarray, axis: int) -> np.ndarray:
    """scipy.ndimage.sobel along image axis 1 (rows) or 2 (columns), smoothing along the other
    image axis only (scipy's own would smooth across the images too)."""
    d = ndi.correlate1d(s, [-1.0, 0.0, 1.0], axis=axis, mode="reflect")
    return ndi.correlate1d(d, [1.0, 2.0, 1.0], axis=3 - axis, mode="reflect")


def _canny(g: np.ndarray, sigma: float, low: float, high: float) -> np.ndarray:
    """skimage.feature.canny (as MNIST-C ran it) of grey images (N, H, W), all at once: a
    Gaussian smoothing (zero beyond the border, divided by the smoothed all-ones mask; none for
    sigma 0), Sobel gradients, non-maximum suppression interpolated between the two
    neighbours in the gradient's octant, the outer pixel ring dropped, then hysteresis:
    8-connected runs of magnitude >= low kept where they reach >= high."""
    if sigma > 0:
        bleed = ndi.gaussian_filter(np.ones(g.shape[1:]), sigma, mode="constant") + np.finfo(float).eps
        g = ndi.gaussian_filter(g.astype(np.float64), (0, sigma, sigma), mode="constant") / bleed
    gi, gj = _sobel(g, 1), _sobel(g, 2)
    mag = np.hypot(gi, gj)
    ai, aj = np.abs(gi), np.abs(gj)
    padded = np.pad(mag, ((0, 0), (1, 1), (1, 1)))
    h, w = mag.shape[1:]

    def at(dr, dc):
        return padded[:, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]

    same = ((gi >= 0) & (gj >= 0)) | ((gi <= 0) & (gj <= 0))
    opposite = ((gi <= 0) & (gj >= 0)) | ((gi >= 0) & (gj <= 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        wj, wi = aj / ai, ai / aj

    def peak(wt, plus1, plus2, minus1, minus2):
        # Where the weight is undefined (0 / 0) the pixel is in no octant: no matter.
        with np.errstate(invalid="ignore"):
            return ((at(*plus2) * wt + at(*plus1) * (1 - wt) <= mag)
                    & (at(*minus2) * wt + at(*minus1) * (1 - wt) <= mag))

    # The octants in skimage's order; where two apply (|gi| == |gj|, a zero component)
    # they agree, so the order of the overwrites does not matter.
    local = np.zeros(mag.shape, bool)
    for where, wt, p1, p2, m1, m2 in (
            (same & (ai >= aj), wj, (1, 0), (1, 1), (-1, 0), (-1, -1)),
            (same & (ai <= aj), wi, (0, 1), (1, 1), (0, -1), (-1, -1)),
            (opposite & (ai <= aj), wi, (0, 1), (-1, 1), (0, -1), (1, -1)),
            (opposite & (ai >= aj), wj, (-1, 0), (-1, 1), (1, 0), (1, -1))):
        local = np.where(where, peak(wt, p1, p2, m1, m2), local)
    inner = np.zeros((h, w), bool)
    inner[1:-1, 1:-1] = True
    local &= inner & (mag > 0)
    return _hysteresis(local & (mag >= low), mag >= high)


def _hysteresis(weak: np.ndarray, strong: np.ndarray) -> np.ndarray:
    """Canny's last step: the 8-connected runs of `weak` pixels that hold a `strong` one,
    labelled within each image (N, H, W), never across images."""
    within_image = np.zeros((3, 3, 3), bool)
    within_image[1] = True
    labels, count = ndi.label(weak, within_image)
    good = np.zeros(count + 1, bool)
    good[np.unique(labels[weak & strong])] = True
    good[0] = False
    return good[labels]


def _canny_cv2(v: np.ndarray, low: int, high: int) -> np.ndarray:
    """cv2.Canny(v, low, high) of uint8-valued images (N, H, W), all at once: 3x3 Sobel
    (replicated border), L1 magnitude |dx| + |dy|, the gradient's direction in four bins by
    OpenCV's fixed-point tan(22.5) (15 bits), a pixel kept if above its two neighbours
    across the edge (>= on one side, as OpenCV, zero beyond the border) and > low; then
    hysteresis from the pixels > high."""
    v = v.astype(np.int64)
    dx = ndi.correlate1d(ndi.correlate1d(v, [-1, 0, 1], axis=2, mode="nearest"), [1, 2, 1], axis=1, mode="nearest")
    dy = ndi.correlate1d(ndi.correlate1d(v, [-1, 0, 1], axis=1, mode="nearest"), [1, 2, 1], axis=2, mode="nearest")
    mag = np.abs(dx) + np.abs(dy)
    padded = np.pad(mag, ((0, 0), (1, 1), (1, 1)))
    h, w = mag.shape[1:]

    def at(dr, dc):
        return padded[:, 1 + dr:1 + dr + h, 1 + dc:1 + dc + w]

    tg22x = np.abs(dx) * 13573  # round(tan(22.5 deg) * 2**15)
    ay = np.abs(dy) << 15
    horizontal = ay < tg22x
    vertical = ay > tg22x + (np.abs(dx) << 16)
    peak = np.where(horizontal, (mag > at(0, -1)) & (mag >= at(0, 1)),
                    np.where(vertical, (mag > at(-1, 0)) & (mag >= at(1, 0)),
                             np.where((dx ^ dy) < 0, (mag > at(-1, 1)) & (mag > at(1, -1)),
                                      (mag > at(-1, -1)) & (mag > at(1, 1)))))
    weak = peak & (mag > low)
    return _hysteresis(weak, mag > high)


def _chamfer5(zero: np.ndarray) -> np.ndarray:
    """cv2.distanceTransform(DIST_L2, 5) of (N, H, W): the distance to the nearest `zero`
    pixel by OpenCV's 5x5 chamfer, steps 1, 1.4 and 2.1969 in 16-bit fixed point, its two
    raster passes done a row at a time for all images (the run along a row is a running
    minimum). Pixels with no zero pixel in their image get a huge distance."""
    a, b, c = 65536, 91750, 143976  # cvRound(65536 * (1, 1.4f, 2.1969f))
    n, h, w = zero.shape
    d = np.full((n, h + 4, w + 4), 1 << 40, np.int64)
    d[:, 2:-2, 2:-2] = np.where(zero, 0, 1 << 40)
    ramp = a * np.arange(w)
    for r in range(2, h + 2):
        up1, up2 = d[:, r - 1], d[:, r - 2]
        best = np.minimum.reduce([d[:, r, 2:-2], up2[:, 1:-3] + c, up2[:, 3:-1] + c, up1[:, :-4] + c,
                                  up1[:, 1:-3] + b, up1[:, 2:-2] + a, up1[:, 3:-1] + b, up1[:, 4:] + c])
        d[:, r, 2:-2] = ramp + np.minimum.accumulate(best - ramp, axis=1)
    for r in range(h + 1, 1, -1):
        down1, down2 = d[:, r + 1], d[:, r + 2]
        best = np.minimum.reduce([d[:, r, 2:-2], down2[:, 3:-1] + c, down2[:, 1:-3] + c, down1[:, 4:] + c,
                                  down1[:, 3:-1] + b, down1[:, 2:-2] + a, down1[:, 1:-3] + b, down1[:, :-4] + c])
        d[:, r, 2:-2] = (ramp + np.minimum.accumulate(best[:, ::-1] - ramp, axis=1))[:, ::-1]
    return (d[:, 2:-2, 2:-2] * np.float32(1 / 65536)).astype(np.float32)


def _equalize(v: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist per image of integer-valued (N, H, W): the cumulative histogram past
    the lowest grey level, scaled to 255 and rounded (an image of one level stays that level)."""
    n = len(v)
    vi = v.reshape(n, -1).astype(np.intp)
    total = vi.shape[1]
    hist = np.bincount((vi + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n).reshape(n, 256)
    first = np.argmax(hist > 0, axis=1)
    h0 = hist[np.arange(n), first]
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.float32(255) / (total - h0).astype(np.float32)
        lut = np.rint((np.cumsum(hist, axis=1) - h0[:, None]).astype(np.float32) * scale[:, None])
    lut = np.where((total == h0)[:, None], first[:, None], np.clip(lut, 0, 255))
    return np.take_along_axis(lut, vi, axis=1).reshape(v.shape).astype(np.float32)


def _box3(v: np.ndarray) -> np.ndarray:
    """cv2.blur(v, (3, 3)): the 3x3 mean, reflect-101 border."""
    return ndi.uniform_filter(v, (0, 3, 3), mode="mirror")


def _line(cc, rr, c0, r0, c1, r1, width):
    """MNIST-C's line_from_points for each image's segment (c0, r0)-(c1, r1), coordinates (N,)
    in its 28-pixel units on the grid (cc columns, rr rows): intensity log(1 - d/width) + 1
    clipped to [0, 1], d the vertical distance to the line through the points (capped just
    under `width`), kept on the columns floor(c0) <= c < ceil(c1); nothing if c0 == c1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (r1 - r0) / (c1 - c0)
    f = slope[:, None] * (cc[None, :] - c0[:, None]) + r0[:, None]
    dist = np.minimum(np.abs(rr[None, :, None] - f[:, None, :]), width - 1e-10)
    with np.errstate(invalid="ignore"):
        line = np.clip(np.log1p(-dist / width) + 1, 0, 1)
    keep = (cc[None, :] >= np.floor(c0)[:, None]) & (cc[None, :] < np.ceil(c1)[:, None]) & (c1 != c0)[:, None]
    return np.where(keep[:, None, :], line, 0.0).astype(np.float32)


def _grid28(h: int, w: int):
    """Pixel centres in MNIST-C's 28-pixel units (columns, rows): 0..27 on a 28x28 image, the
    same span on any other size, so its line patterns keep their place and proportions."""
    return np.arange(w) * (27 / max(w - 1, 1)), np.arange(h) * (27 / max(h - 1, 1))


def _step(name: str, severity: int) -> int:
    """The step of an MNIST-C-only corruption's table that `severity` takes: itself for 1-5,
    MNIST_C_STEP[name] (MNIST-C's own level) for 0."""
    return MNIST_C_STEP[name] if severity == MNIST_C_LEVEL else severity


def _signs(u: np.ndarray) -> np.ndarray:
    """np.random.choice([-1, 1]) from uniforms: each sign with probability 1/2."""
    return np.where(u < 0.5, -1.0, 1.0)


# --------------------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Blur
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Weather
# --------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------
# Digital
# --------------------------------------------------------------------------------------

def brightness(x, severity, rng):
    """HSV value + c, clipped to 1, c = 0.05, 0.1, 0.15, 0.2, 0.3 (make_cifar_c.py
    brightness, through skimage's rgb2hsv and back). Hue and saturation kept, each pixel's
    channels scale with its value: computed directly, as v' / v times the pixel (a black
    pixel becomes grey v'). On grey images: min(x + c, 1), MNIST-C's reading. Deterministic.

    Severity 0, MNIST-C's: c = 0.5 (corruptions.py brightness, its default severity 5 of 0.1,
    0.2, 0.3, 0.4, 0.5, through gray2rgb, HSV and rgb2gray: min(x + 0.5, 1))."""
    c = np.float32((0.5, 0.05, 0.1, 0.15, 0.2, 0.3)[severity])  # MNIST-C's, then severities 1-5
    v = x.max(axis=-1, keepdims=True)
    lifted = np.minimum(v + c, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, x * (lifted / v), lifted)


def contrast(x, severity, rng):
    """(x - mean) * c + mean, the mean per image and channel, c = 0.75, 0.5, 0.4, 0.3, 0.15
    (make_cifar_c.py contrast). Deterministic."""
    c = np.float32((0.75, 0.5, 0.4, 0.3, 0.15)[severity - 1])
    mean = x.mean(axis=(1, 2), keepdims=True)
    return (x - mean) * c + mean


def _saturate_rgb(x, scale, shift):
    v = x.max(axis=-1, keepdims=True)
    spread = v - x.min(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(v > 0, spread / v, 0)
    s2 = np.clip(s * scale + shift, 0, 1)
    # For fixed hue and value, each channel is v * (1 - s * k): it moves to v - (v - x) s2 / s.
    # A grey pixel has hue 0 in skimage, red: saturating it gives (v, v(1 - s2), v(1 - s2)).
    with np.errstate(divide="ignore", invalid="ignore"):
        moved = v - (v - x) * (s2 / s)
    red = v * np.array([1, 0, 0], np.float32) + v * (1 - s2) * np.array([0, 1, 1], np.float32)
    return np.where(s > 0, moved, red)


def saturate(x, severity, rng):
    """HSV saturation * a + b, clipped to [0, 1], (a, b) = (0.3, 0), (0.1, 0), (1.5, 0),
    (2, 0.1), (2.5, 0.2) (make_cifar_c.py saturate, through skimage's rgb2hsv and back),
    computed directly (hue and value kept). A grey image is taken as RGB and brought back by
    skimage's rgb2gray, as MNIST-C turned colour corruptions to grey: severities 1-3 leave
    it as it is, 4 and 5 darken it by 8 and 16 % (its pixels, hue 0 in skimage, gain red).
    Not monotone in distance: 1 and 2 desaturate, 3-5 saturate. Deterministic."""
    scale, shift = ((0.3, 0), (0.1, 0), (1.5, 0), (2, 0.1), (2.5, 0.2))[severity - 1]
    if x.shape[-1] == 1:
        return (_saturate_rgb(np.repeat(x, 3, axis=-1), scale, shift) @ REC709)[..., None]
    return _saturate_rgb(x, scale, shift)


def elastic_transform(x, severity, rng):
    """A random affine jitter then a smooth random displacement (make_cifar_c.py
    elastic_transform, after erniejunior's gist), (alpha, sigma, jitter) times the image
    side (min(H, W); 32 in the source) = (0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05), (0.1, 0.03, 0.03). The affine moves three points about the centre by
    uniform(-jitter, jitter) (cv2.getAffineTransform, cv2.warpAffine with bilinear sampling
    and reflect-101 border: here exact bilinear, where OpenCV rounds its weights to 1/32);
    the displacement is uniform(-1, 1) noise per pixel and axis, Gaussian-blurred by sigma
    ('reflect', truncated at 3 sigma), times alpha, sampled bilinearly ('reflect'). Not
    monotone in distance: the jitter falls as the displacement grows.
    Draws: (N, 6 + 2*H*W) uniforms: the jitter, then the two noise fields."""
    alpha, sigma, jitter = ((0, 0, 0.08), (0.05, 0.2, 0.07), (0.08, 0.06, 0.06), (0.1, 0.04, 0.05),
                            (0.1, 0.03, 0.03))[severity - 1]
    n, h, w, c = x.shape
    side = min(h, w)
    alpha, sigma, jitter = alpha * side, sigma * side, jitter * side
    u = rng.random((n, 6 + 2 * h * w))
    # The source's points, (x, y) for OpenCV, built from (rows, columns) as it does.
    centre = np.array([h // 2, w // 2], np.float64)
    sq = side // 3
    pts1 = np.array([centre + sq, [centre[0] + sq, centre[1] - sq], centre - sq])
    pts2 = pts1 + (2 * u[:, :6].reshape(n, 3, 2) - 1) * jitter
    forward = np.linalg.solve(np.concatenate([pts1, np.ones((3, 1))], axis=1), pts2).transpose(0, 2, 1)
    inverse_linear = np.linalg.inv(forward[:, :, :2])
    inverse = np.concatenate([inverse_linear, -inverse_linear @ forward[:, :, 2:]], axis=2)
    x = _warp(x, inverse, mode="mirror")
    fields = 2 * u[:, 6:].reshape(n, 2, h, w) - 1
    if sigma > 0:
        fields = ndi.gaussian_filter(fields, (0, 0, sigma, sigma), mode="reflect", truncate=3.0)
    dx, dy = alpha * fields[:, 0], alpha * fields[:, 1]
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    return _sample(x, rows + dy, cols + dx, "reflect")


def _pil_box(n_in: int, n_out: int) -> np.ndarray:
    """Pillow's BOX resampling along one axis as an (n_out, n_in) matrix of its fixed-point
    weights (22 fractional bits): each output pixel averages the input pixels whose centres
    fall in its box (Pillow's precompute_coeffs and normalize_coeffs_8bpc)."""
    scale = n_in / n_out
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    k = np.zeros((n_out, n_in))
    for o in range(n_out):  # a handful of output pixels, for all images at once
        centre = (o + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        t = (np.arange(lo, hi) - centre + 0.5) / filterscale
        wts = ((t > -0.5) & (t <= 0.5)).astype(np.float64)
        if wts.sum():
            wts /= wts.sum()
        k[o, lo:hi] = np.floor(wts * (1 << 22) + 0.5)
    return k


def _pil_pass(v: np.ndarray, k: np.ndarray, axis: int) -> np.ndarray:
    """One pass of Pillow's 8-bit resampling: integer weights, + half, >> 22, clipped."""
    out = np.moveaxis(np.tensordot(v, k, axes=([axis], [1])), -1, axis)
    return np.clip(np.floor((out + (1 << 21)) / (1 << 22)), 0, 255)


def pixelate(x, severity, rng):
    """Pillow's resize to int(side * c) with BOX, then back (make_cifar_c.py pixelate),
    c = 0.95, 0.9, 0.85, 0.75, 0.65; done as Pillow does it (horizontal then vertical
    pass, 8-bit rounding after each), for all images at once. Deterministic."""
    c = (0.95, 0.9, 0.85, 0.75, 0.65)[severity - 1]
    n, h, w, _ = x.shape
    small_w, small_h = int(w * c), int(h * c)
    v = np.rint(x.astype(np.float64) * 255)
    v = _pil_pass(_pil_pass(v, _pil_box(w, small_w), 2), _pil_box(h, small_h), 1)
    v = _pil_pass(_pil_pass(v, _pil_box(small_w, w), 2), _pil_box(small_h, h), 1)
    return (v / 255).astype(np.float32)


def jpeg_compression(x, severity, rng):
    """Pillow's JPEG at quality 80, 65, 58, 50, 40, decoded back (make_cifar_c.py
    jpeg_compression). The one corruption that loops over images: JPEG is encoded one image
    at a time (about 0.1 ms a 32x32 image). Deterministic."""
    quality = (80, 65, 58, 50, 40)[severity - 1]
    u8 = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)
    grey = u8.shape[-1] == 1
    out = np.empty_like(u8)
    for i, image in enumerate(u8):
        buffer = io.BytesIO()
        Image.fromarray(image[..., 0] if grey else image).save(buffer, "JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer))
        out[i] = decoded[..., None] if grey else decoded
    return out.astype(np.float32) / 255


# --------------------------------------------------------------------------------------
# MNIST-C's own: geometry, patterns, edges
# --------------------------------------------------------------------------------------

def shear(x, severity, rng):
    """Shear about the centre by c = 0.2, 0.4, 0.6, 0.8, 1.0 radians, direction random
    (MNIST-C corruptions.py shear; severity 0, MNIST-C's, is its default severity 2: 0.4):
    skimage's AffineTransform(shear=c) of 2019, [[1, -sin c], [0, cos c]], as warp's inverse
    map, bilinear, zero beyond the border. Draws: (N,) uniforms, the direction."""
    c = (0.2, 0.4, 0.6, 0.8, 1.0)[_step("shear", severity) - 1] * _signs(rng.random(len(x)))
    n, h, w, _ = x.shape
    linear = np.zeros((n, 2, 2))
    linear[:, 0, 0], linear[:, 0, 1], linear[:, 1, 1] = 1, -np.sin(c), np.cos(c)
    return _warp(x, _about_centre(linear, h, w))


def rotate(x, severity, rng):
    """Rotation about the centre by c = 0.2, 0.4, 0.6, 0.8, 1.0 radians, direction random
    (MNIST-C corruptions.py rotate; severity 0, MNIST-C's, is its default severity 2: 0.4 rad,
    23 degrees); bilinear, zero beyond the border. Draws: (N,) uniforms, the direction."""
    c = (0.2, 0.4, 0.6, 0.8, 1.0)[_step("rotate", severity) - 1] * _signs(rng.random(len(x)))
    n, h, w, _ = x.shape
    linear = np.stack([np.stack([np.cos(c), -np.sin(c)], -1), np.stack([np.sin(c), np.cos(c)], -1)], 1)
    return _warp(x, _about_centre(linear, h, w))


def scale(x, severity, rng):
    """Shrink about the centre: the output samples the input at 1/0.9, 1/0.8, 1/0.7, 1/0.6,
    1/0.5 times its distance from the centre (MNIST-C corruptions.py scale; severity 0,
    MNIST-C's, is its default severity 3: the digit at 70 %); bilinear, zero beyond the
    border. Deterministic."""
    c = (1 / 0.9, 1 / 0.8, 1 / 0.7, 1 / 0.6, 1 / 0.5)[_step("scale", severity) - 1]
    n, h, w, _ = x.shape
    return _warp(x, _about_centre(np.broadcast_to(np.eye(2) * c, (n, 2, 2)), h, w))


def translate(x, severity, rng):
    """Shift by c = 1, 2, 3, 4, 5 pixels of a 28-pixel image along each axis, each direction
    random (MNIST-C corruptions.py translate; severity 0, MNIST-C's, is its default severity
    3: 3 pixels); on other sizes c * side / 28 rounded to whole pixels, so the shift stays
    exact. Zero fills. Draws: (N, 2) uniforms, the directions (columns, rows)."""
    c = (1, 2, 3, 4, 5)[_step("translate", severity) - 1]
    n, h, w, _ = x.shape
    signs = _signs(rng.random((n, 2)))
    matrices = np.zeros((n, 2, 3))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1
    matrices[:, 0, 2] = signs[:, 0] * max(1, round(c * w / 28))
    matrices[:, 1, 2] = signs[:, 1] * max(1, round(c * h / 28))
    return _warp(x, matrices)


def stripe(x, severity, rng):
    """Invert the outer columns on both sides: 3, 5, 7, 9, 11 of 28 each side (scaled to the
    width, rounded). MNIST-C (corruptions.py stripe) inverts 7 each side, a quarter of the
    width, and has no severities: severity 0, MNIST-C's, is severity 3; the others narrow or
    widen the bands by two columns a step. Deterministic."""
    band = round((3, 5, 7, 9, 11)[_step("stripe", severity) - 1] * x.shape[2] / 28)
    columns = np.arange(x.shape[2])
    flip = ((columns < band) | (columns >= x.shape[2] - band))[None, None, :, None]
    return np.where(flip, 1 - x, x)


# The stroke width (MNIST-C's 2.3 in line_from_points: a line about 3 pixels thick) that
# dotted_line's and zigzag's severities vary; MNIST-C's is the middle one (MNIST_C_STEP).
LINE_WIDTHS = (1.3, 1.8, 2.3, 2.8, 3.3)


def dotted_line(x, severity, rng):
    """A dashed white line across the image (MNIST-C corruptions.py dotted_line): from column
    0 to 27, rows r0, r1 = randint(0, 27) at its ends, drawn by line_from_points (see _line),
    every other pair of columns blanked, added and clipped. MNIST-C has no severities: its
    stroke width, 2.3, is severity 3, which severity 0, MNIST-C's, is; the others are
    LINE_WIDTHS, thinner and thicker by 0.5 a step. Other sizes: drawn in 28-pixel units
    (_grid28). Draws: (N, 2) uniforms, (r0, r1)."""
    width = LINE_WIDTHS[_step("dotted_line", severity) - 1]
    n, h, w, _ = x.shape
    cc, rr = _grid28(h, w)
    r = np.floor(rng.random((n, 2)) * 27)
    line = _line(cc, rr, np.zeros(n), r[:, 0], np.full(n, 27.0), r[:, 1], width)
    line[:, :, (np.floor(cc / 2) % 2) == 0] = 0
    return np.minimum(x + line[..., None], 1)


def zigzag(x, severity, rng):
    """A white zigzag (MNIST-C corruptions.py zigzag): teeth of length a = 2 and height b = 2
    along a line from (2, r0) to (25, r1), r0 = randint(0, 27), r1 = r0 + randint(-5, 5);
    corner points ((2i + 1) a, +-b) up to the line's length d, then MNIST-C's closing point
    (d, b' / (2 (d - last tooth end))), all turned to the line's angle; each segment drawn by
    line_from_points (see _line), added, clipped. MNIST-C has no severities: its stroke
    width, 2.3, is severity 3, which severity 0, MNIST-C's, is; the others are LINE_WIDTHS.
    Segments run in a loop (at most 7 on any image), each on all images. Other sizes: drawn
    in 28-pixel units (_grid28). Draws: (N, 2) uniforms, (r0, offset)."""
    width = LINE_WIDTHS[_step("zigzag", severity) - 1]
    a = b = 2.0
    c0, c1 = 2.0, 25.0
    n, h, w, _ = x.shape
    cc, rr = _grid28(h, w)
    u = rng.random((n, 2))
    r0 = np.floor(u[:, 0] * 27)
    r1 = r0 + np.floor(u[:, 1] * 10) - 5
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    teeth = ((d - a) // (2 * a)).astype(np.intp) + 1
    k = teeth.max() + 2
    cs, rs, valid = np.zeros((n, k)), np.zeros((n, k)), np.zeros((n, k), bool)
    valid[:, 0] = True
    i = np.arange(k - 2)
    tooth = i[None, :] < teeth[:, None]
    cs[:, 1:k - 1] = np.where(tooth, (2 * i + 1) * a, 0)
    rs[:, 1:k - 1] = np.where(tooth, (-1.0) ** i * b, 0)
    valid[:, 1:k - 1] = tooth
    last_end = 2 * a * (d // (2 * a))
    closing = d != last_end
    rows = np.arange(n)
    with np.errstate(divide="ignore"):
        cs[rows, teeth + 1] = d
        rs[rows, teeth + 1] = np.where(closing, (-1.0) ** (teeth - 1) * b / (2 * (d - last_end)), 0)
    valid[rows, teeth + 1] = closing
    cos, sin = np.cos(theta)[:, None], np.sin(theta)[:, None]
    cols, rows_ = cos * cs - sin * rs + c0, sin * cs + cos * rs + r0[:, None]
    total = np.zeros((n, h, w), np.float32)
    for s in range(1, k):
        segment = _line(cc, rr, cols[:, s - 1], rows_[:, s - 1], cols[:, s], rows_[:, s], width)
        total += np.where((valid[:, s] & valid[:, s - 1])[:, None, None], segment, 0)
    return np.minimum(x + total[..., None], 1)


def canny_edges(x, severity, rng):
    """The image's Canny edges, white on black (MNIST-C corruptions.py canny_edges:
    skimage.feature.canny at its defaults, sigma 1, thresholds 0.1 and 0.2; see _canny), on
    colour images of the luminance, in every channel. MNIST-C replaces the image by its
    edges and has no severities: that is severity 5, which severity 0, MNIST-C's, is, and
    severities 1-4 mix the edges into the image at 20, 40, 60 and 80 %. Deterministic."""
    t = np.float32((0.2, 0.4, 0.6, 0.8, 1.0)[_step("canny_edges", severity) - 1])
    edges = _canny(_grey(x), 1.0, 0.1, 0.2)[..., None].astype(np.float32)
    return (1 - t) * x + t * edges


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

# MNIST-C's eight own corruptions: the step of the five-step table each extends MNIST-C's one
# level to that severity 0 (MNIST-C's level) equals. The seven MNIST-C shares with CIFAR-10-C
# have their MNIST-C constants as severity 0 of their own tables instead (their docstrings).
MNIST_C_STEP = {"shear": 2, "scale": 3, "rotate": 2, "translate": 3, "stripe": 3, "dotted_line": 3, "zigzag": 3,
                "canny_edges": 5}

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
