"""Corruption benchmarks on disk, read as they are distributed: MNIST-C and CIFAR-10-C.

Both are published as uint8 .npy arrays, and both are read in place rather than converted:
a converted copy would be one more thing to keep in step with the published one, and memory
maps (np.load(mmap_mode="r")) let a scoring read one condition's images and no more (one
severity of a CIFAR-10-C file is a fifth of its 150 MB).

- MNIST-C (Mu & Gilmer 2019, zenodo mnist_c.zip): `<folder>/<corruption>/test_images.npy`
  (N, 28, 28, 1) and `test_labels.npy` (N,). One level per corruption: severity 0.
  `identity/` is the clean test set and is skipped: the clean test set is always scored
  apart, from the dataset itself. The train files, if there, are not read.
- CIFAR-10-C (Hendrycks & Dietterich 2019, zenodo CIFAR-10-C.tar): `<folder>/<corruption>.npy`
  (5N, 32, 32, 3), severities 1 to 5 in order, N images each, and `labels.npy` (5N,), the
  labels of every file (N labels repeated five times). Every `<name>.npy` but labels.npy
  is a corruption, the published ones and any added of one's own.

A condition is (corruption, severity). Names starting with "." are not read (macOS leaves
`._<name>.npy` files in archives it packs). `check` validates a folder before anything runs,
so a bad file stops a sweep at its start, not after hours of training.
"""

from __future__ import annotations

import os

import numpy as np

LAYOUTS = ("mnist_c", "cifar10_c")

# The published corruptions, in the order their papers list them: conditions() keeps it,
# then lists any others by name.
MNIST_C = ("shot_noise", "impulse_noise", "glass_blur", "motion_blur", "shear", "scale", "rotate",
           "brightness", "translate", "stripe", "fog", "spatter", "dotted_line", "zigzag", "canny_edges")
MNIST_C_CLEAN = "identity"
MNIST_C_SEVERITY = 0
CIFAR10_C = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
             "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
             "elastic_transform", "pixelate", "jpeg_compression")
CIFAR10_C_EXTRA = ("speckle_noise", "gaussian_blur", "spatter", "saturate")
SEVERITIES = (1, 2, 3, 4, 5)

TEST_IMAGES, TEST_LABELS = "test_images.npy", "test_labels.npy"
LABELS = "labels.npy"
_EXPECTED = ("expected <corruption>/test_images.npy and test_labels.npy (MNIST-C) "
             "or <corruption>.npy and labels.npy (CIFAR-10-C)")
_NPY_MAGIC = b"\x93NUMPY"


class BenchmarkError(ValueError):
    """A benchmark folder or file that cannot be scored: one line naming the folder, the file,
    what is wrong and the value."""


def _visible(folder: str) -> list[str]:
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def _is_folder(folder: str) -> None:
    if not os.path.exists(folder):
        raise BenchmarkError(f"{folder}: no such folder")
    if not os.path.isdir(folder):
        raise BenchmarkError(f"{folder}: not a folder")
    try:
        os.listdir(folder)
    except OSError as e:
        raise BenchmarkError(f"{folder}: cannot be listed ({_one_line(e)})") from None


def _holds_npy(folder: str) -> bool:
    return any(n.endswith(".npy") for n in _visible(folder))


def _mnist_c_like(folder: str, name: str) -> bool:
    path = os.path.join(folder, name)
    return os.path.isdir(path) and any(os.path.isfile(os.path.join(path, f)) for f in (TEST_IMAGES, TEST_LABELS))


def _npy_files(folder: str) -> list[str]:
    return [n for n in _visible(folder) if n.endswith(".npy") and os.path.isfile(os.path.join(folder, n))]


def _guess(folder: str) -> str | None:
    nested = [n for n in _visible(folder) if _mnist_c_like(folder, n)]
    flat = _npy_files(folder)
    if nested and flat:
        raise BenchmarkError(f"{folder}: holds both layouts, {flat[0]} (CIFAR-10-C) and {nested[0]}/ "
                             "(MNIST-C): keep one benchmark per folder")
    return "mnist_c" if nested else "cifar10_c" if flat else None


def layout_of(folder: str) -> str:
    """Which of LAYOUTS a folder is in: MNIST-C's if a subfolder holds test_images.npy or
    test_labels.npy, CIFAR-10-C's if the folder holds .npy files itself."""
    folder = os.fspath(folder)
    _is_folder(folder)
    if not _visible(folder):
        raise BenchmarkError(f"{folder}: empty folder: {_EXPECTED}")
    layout = _guess(folder)
    if layout:
        return layout
    # The archives unpack into a folder of their own (mnist_c/, CIFAR-10-C/): name it if that
    # is what was given.
    inner = [n for n in _visible(folder) if os.path.isdir(os.path.join(folder, n))
             and _safe_guess(os.path.join(folder, n))]
    hint = f" (its subfolder {inner[0]}/ is one)" if inner else ""
    raise BenchmarkError(f"{folder}: not a benchmark folder in a known layout: {_EXPECTED}{hint}")


def _safe_guess(folder: str) -> str | None:
    try:
        return _guess(folder)
    except (BenchmarkError, OSError):
        return None


def _order(names, published) -> list[str]:
    rank = {n: i for i, n in enumerate(published)}
    return sorted(names, key=lambda n: (0, rank[n], "") if n in rank else (1, 0, n))


def _corruptions(folder: str, layout: str) -> list[str]:
    if layout == "mnist_c":
        # Every subfolder with .npy files is a corruption (one with train files only is
        # refused when read, not skipped); identity is the clean test set, scored apart.
        names = [n for n in _visible(folder) if n != MNIST_C_CLEAN
                 and os.path.isdir(os.path.join(folder, n)) and _holds_npy(os.path.join(folder, n))]
        return _order(names, MNIST_C)
    names = [n[:-len(".npy")] for n in _npy_files(folder) if n != LABELS]
    return _order(names, CIFAR10_C + CIFAR10_C_EXTRA)


def conditions(folder: str) -> list[tuple[str, int]]:
    """A folder's (corruption, severity) pairs: the published corruptions in their papers'
    order, then others by name; MNIST-C's one level is severity 0, CIFAR-10-C's are 1 to 5.
    Lists the folder only; `check` opens the files."""
    folder = os.fspath(folder)
    layout = layout_of(folder)
    names = _corruptions(folder, layout)
    if not names:
        if layout == "mnist_c":
            raise BenchmarkError(f"{folder}: no corruptions: only {MNIST_C_CLEAN}/, the clean test set, "
                                 "which is scored apart")
        raise BenchmarkError(f"{folder}: no corruptions: {LABELS} but no <corruption>.npy beside it")
    if layout == "mnist_c":
        return [(n, MNIST_C_SEVERITY) for n in names]
    return [(n, s) for n in names for s in SEVERITIES]


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _load(path: str) -> np.ndarray:
    """An .npy file as a read-only memory map: its header read, its data not yet."""
    try:
        with open(path, "rb") as f:
            start = f.read(len(_NPY_MAGIC))
    except OSError as e:
        raise BenchmarkError(f"{path}: cannot be read ({_one_line(e)})") from None
    if start != _NPY_MAGIC:
        # np.load would take a zip for an .npz archive and anything else for a pickle.
        what = "empty" if not start else f"starts {start.hex()}, not the .npy magic {_NPY_MAGIC.hex()}"
        raise BenchmarkError(f"{path}: not an .npy file ({what})")
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise BenchmarkError(f"{path}: does not load as an .npy array ({_one_line(e)}): "
                             "truncated or corrupt?") from None


def _images(path: str) -> np.ndarray:
    x = _load(path)
    if x.dtype != np.uint8:
        raise BenchmarkError(f"{path}: images are {x.dtype}, not uint8 pixels (0-255)")
    if x.ndim not in (3, 4):
        raise BenchmarkError(f"{path}: images of shape {x.shape}: (N, H, W) or (N, H, W, C) expected")
    if len(x) == 0:
        raise BenchmarkError(f"{path}: no images (shape {x.shape})")
    return x


def _labels(path: str) -> np.ndarray:
    y = _load(path)
    if y.dtype.kind not in "iu":
        raise BenchmarkError(f"{path}: labels are {y.dtype}, not integers")
    if y.ndim != 1:
        raise BenchmarkError(f"{path}: labels of shape {y.shape}: one label per image, (N,), expected")
    return y


def _image_shape(shape) -> tuple:
    """An image's shape without a trailing channel axis of size 1, as the project keeps grey images."""
    shape = tuple(int(d) for d in shape)
    return shape[:-1] if len(shape) == 3 and shape[-1] == 1 else shape


def _arrays(folder: str, layout: str, corruption: str):
    """(images, labels, images' path, labels' path) of a corruption, memory-mapped, their
    lengths checked against each other."""
    if layout == "mnist_c":
        sub = os.path.join(folder, corruption)
        ipath, lpath = os.path.join(sub, TEST_IMAGES), os.path.join(sub, TEST_LABELS)
        has_x, has_y = os.path.isfile(ipath), os.path.isfile(lpath)
        if not has_y:
            beside = f"beside {TEST_IMAGES}" if has_x else f"or {TEST_IMAGES} (only the test split is scored)"
            raise BenchmarkError(f"{sub}: no {TEST_LABELS} {beside}")
        if not has_x:
            raise BenchmarkError(f"{sub}: no {TEST_IMAGES} beside {TEST_LABELS}")
        x, y = _images(ipath), _labels(lpath)
        if len(y) != len(x):
            raise BenchmarkError(f"{lpath}: {len(y)} labels for the {len(x)} images of {TEST_IMAGES}")
        return x, y, ipath, lpath
    ipath, lpath = os.path.join(folder, corruption + ".npy"), os.path.join(folder, LABELS)
    if not os.path.isfile(lpath):
        raise BenchmarkError(f"{folder}: no {LABELS} beside {corruption}.npy")
    x, y = _images(ipath), _labels(lpath)
    if len(x) % len(SEVERITIES):
        raise BenchmarkError(f"{ipath}: {len(x)} images, not a multiple of {len(SEVERITIES)} "
                             f"(severities 1..{len(SEVERITIES)} in order, the same number each)")
    if len(x) != len(y):
        raise BenchmarkError(f"{ipath}: {len(x)} images, but {LABELS} holds {len(y)} labels")
    return x, y, ipath, lpath


def read(folder: str, corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, int64 labels) of one condition, copied out of a memory map so that only
    its own images are read: grey images as (N, H, W) (MNIST-C's channel axis of 1 dropped),
    colour as (N, H, W, C)."""
    folder = os.fspath(folder)
    layout = layout_of(folder)
    names = _corruptions(folder, layout)
    if corruption not in names:
        if layout == "mnist_c" and corruption == MNIST_C_CLEAN:
            raise BenchmarkError(f"{folder}: {MNIST_C_CLEAN} is the clean test set, scored apart, "
                                 "not a corruption")
        raise BenchmarkError(f"{folder}: no corruption {corruption!r} (it holds {', '.join(names) or 'none'})")
    if layout == "mnist_c" and severity != MNIST_C_SEVERITY:
        raise BenchmarkError(f"{folder}: severity {severity!r} of {corruption}: MNIST-C has one level, "
                             f"severity {MNIST_C_SEVERITY}")
    if layout == "cifar10_c" and severity not in SEVERITIES:
        raise BenchmarkError(f"{folder}: severity {severity!r} of {corruption}: CIFAR-10-C's are "
                             f"1..{len(SEVERITIES)}")
    x, y, _, _ = _arrays(folder, layout, corruption)
    if layout == "cifar10_c":
        n = len(x) // len(SEVERITIES)
        x, y = x[(severity - 1) * n:severity * n], y[(severity - 1) * n:severity * n]
    if x.ndim == 4 and x.shape[-1] == 1:
        x = x[..., 0]
    return np.array(x, dtype=np.uint8, order="C"), np.array(y, dtype=np.int64)


def check(folder: str, *, image_shape: tuple, num_classes: int, where: str = "") -> list[tuple[str, int]]:
    """Validate a folder before anything runs and return conditions(folder): every file loads,
    images are uint8 of the dataset's test images' shape (`image_shape`, without the N axis; a
    channel axis of 1 is ignored on either side), labels are integers from 0 to num_classes - 1,
    one per image. Reads the headers and the labels, not the images. `where` (the grid file and
    key) starts every message."""
    try:
        folder = os.fspath(folder)
        found = conditions(folder)
        layout = layout_of(folder)
        want = _image_shape(image_shape)
        ranged = set()
        for corruption in dict.fromkeys(c for c, _ in found):
            x, y, ipath, lpath = _arrays(folder, layout, corruption)
            got = _image_shape(x.shape[1:])
            if got != want:
                raise BenchmarkError(f"{ipath}: images of shape {tuple(x.shape[1:])}, but the dataset's test "
                                     f"images are {tuple(image_shape)}")
            if lpath not in ranged:
                labels = np.asarray(y)
                lo, hi = int(labels.min()), int(labels.max())
                if lo < 0 or hi >= num_classes:
                    raise BenchmarkError(f"{lpath}: labels {lo}..{hi} do not fit a dataset of {num_classes} classes")
                ranged.add(lpath)
    except BenchmarkError as e:
        if where:
            raise BenchmarkError(f"{where}: {e}") from None
        raise
    return found
