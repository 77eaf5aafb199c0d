"""MNIST-C's own corruptions (google-research/mnist-c, corruptions.py), extended to five
severities: shear, scale, rotate, translate, stripe, dotted_line, zigzag and canny_edges."""

from __future__ import annotations

import numpy as np

from sweeps.corruptions._common import MNIST_C_LEVEL, _about_centre, _canny, _grey, _warp

# MNIST-C's eight own corruptions: the step of the five-step table each extends MNIST-C's one
# level to that severity 0 (MNIST-C's level) equals. The seven MNIST-C shares with CIFAR-10-C
# have their MNIST-C constants as severity 0 of their own tables instead (their docstrings).
MNIST_C_STEP = {"shear": 2, "scale": 3, "rotate": 2, "translate": 3, "stripe": 3, "dotted_line": 3, "zigzag": 3,
                "canny_edges": 5}


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
