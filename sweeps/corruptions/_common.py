"""Shared helpers of the corruptions: the generator of a condition, grey and colour
conversion, Gaussian blur, disk and motion kernels, bilinear sampling and affine warps, the
sources' clipped zoom, the plasma fractal, and the OpenCV/skimage steps (Sobel, Canny,
distance transform, histogram equalisation, box blur) that MNIST-C's and CIFAR-10-C's
scripts call. The package docstring (sweeps.corruptions) states the rules they serve."""

from __future__ import annotations

import math
import zlib

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage as ndi

from sweeps.benchmarks import MNIST_C_SEVERITY

# MNIST-C's own level of its fifteen corruptions (module docstring): the severity that
# sweeps.benchmarks gives MNIST-C's distributed conditions.
MNIST_C_LEVEL = MNIST_C_SEVERITY

# The luminance skimage.color.rgb2gray uses (ITU-R BT.709), through which MNIST-C turned its
# colour corruptions back to grey; here, a grey image's version of a colour step.
REC709 = np.array([0.2125, 0.7154, 0.0721], np.float32)
# cv2.cvtColor(RGB2GRAY)'s weights (BT.601), which CIFAR-10-C's snow uses.
BT601 = np.array([0.299, 0.587, 0.114], np.float32)


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
