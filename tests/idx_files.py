"""Small IDX files written byte by byte, independent of the reader under test."""

import gzip
import os
import struct

import numpy as np

CODES = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype("int16"): 0x0B,
         np.dtype("int32"): 0x0C, np.dtype("float32"): 0x0D, np.dtype("float64"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, CODES[array.dtype], array.ndim)
    header += b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_dataset_folder(folder, n_train=12, n_test=5, gz=True, seed=0):
    """The four files of an MNIST-like dataset, named as Keras and Debian name them."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    os.makedirs(folder, exist_ok=True)
    for stem, array in arrays.items():
        raw = idx_bytes(array)
        path = os.path.join(folder, stem + (".gz" if gz else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(raw) if gz else raw)
    return arrays
