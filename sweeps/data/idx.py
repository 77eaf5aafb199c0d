"""Reader for the IDX format of MNIST-like datasets (plain or gzip-compressed).

Format: two zero bytes, a type code, the number of dimensions, then one
big-endian uint32 per dimension, then the values, big-endian.
"""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np

_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IdxError(ValueError):
    """A file that is not a well-formed IDX file."""


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode the bytes of one IDX file (already decompressed) into an array."""
    if len(raw) < 4:
        raise IdxError(f"{name}: {len(raw)} bytes, too short for an IDX header")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or code not in _TYPES:
        raise IdxError(f"{name}: bad IDX magic {raw[:4].hex()} (want 0000 + type code + ndim)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{name}: header declares {ndim} dimensions but the file ends first")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _TYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise IdxError(f"{name}: shape {shape} needs {expected} bytes, file has {len(raw)}")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file; gzip compression is detected from the content, not the name."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise IdxError(f"{path}: corrupt gzip stream ({e})") from None
    return parse_idx(raw, str(path))
