"""Digital: brightness, contrast, saturate, elastic transform, pixelate and JPEG compression
(make_cifar_c.py; MNIST-C's at severity 0)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

from sweeps.corruptions._common import REC709, _sample, _warp


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
