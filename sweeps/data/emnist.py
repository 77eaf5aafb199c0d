"""EMNIST letters as seed 004 used them: the `balanced` split, capital letters only.

The balanced split's 47 classes are the digits (0-9), the capitals A-Z (10-35)
and 11 lower-case letters (36-46). Keeping 10-35 and shifting them to 0-25
gives 62,400 training and 10,400 test images. EMNIST stores each image
transposed against MNIST's orientation; the reader turns them upright.
"""

from __future__ import annotations

import gzip
import io
import os
import zipfile

import numpy as np

from sweeps.data.idx import parse_idx

SPLIT = "balanced"
CAPITALS = (10, 36)  # balanced labels of A..Z, end exclusive
FILES = {
    "x_train": f"emnist-{SPLIT}-train-images-idx3-ubyte",
    "y_train": f"emnist-{SPLIT}-train-labels-idx1-ubyte",
    "x_test": f"emnist-{SPLIT}-test-images-idx3-ubyte",
    "y_test": f"emnist-{SPLIT}-test-labels-idx1-ubyte",
}
# NIST's archive of every EMNIST split as gzipped IDX files (about 560 MB).
NIST_ZIP = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip"


def capitals(balanced: dict) -> dict:
    """The balanced split's arrays -> capital letters only, labels 0-25, images upright."""
    out = {}
    for split in ("train", "test"):
        x, y = balanced[f"x_{split}"], np.asarray(balanced[f"y_{split}"])
        keep = (y >= CAPITALS[0]) & (y < CAPITALS[1])
        out[f"x_{split}"] = np.ascontiguousarray(x[keep].transpose(0, 2, 1))
        out[f"y_{split}"] = (y[keep] - CAPITALS[0]).astype(np.uint8)
    return out


def read_zip(path: str) -> dict:
    """Capital letters from NIST's gzip.zip (members gzip/emnist-balanced-*.gz)."""
    with zipfile.ZipFile(path) as z:
        members = {os.path.basename(n): n for n in z.namelist()}
        arrays = {}
        for key, stem in FILES.items():
            if stem + ".gz" not in members:
                raise FileNotFoundError(f"{path}: no member {stem}.gz")
            raw = gzip.GzipFile(fileobj=io.BytesIO(z.read(members[stem + ".gz"]))).read()
            arrays[key] = parse_idx(raw, f"{path}:{stem}.gz")
    return capitals(arrays)


def download(cache_dir: str) -> tuple[dict, str]:
    """NIST's archive through Keras's downloader into the cache folder -> (arrays, path)."""
    from sweeps.quiet import import_tensorflow  # only here: the cache hit must not pay for TensorFlow

    import_tensorflow()
    import keras

    path = keras.utils.get_file("emnist-gzip.zip", NIST_ZIP, cache_dir=cache_dir, cache_subdir=".")
    return read_zip(path), path
