"""A Keras model as the bytes of its .keras file: stored (reference classifiers), shipped
through Ray, and told apart by a short hash."""

from __future__ import annotations

import hashlib
import os
import tempfile


def model_to_bytes(model) -> bytes:
    """A Keras model as the bytes of its .keras file (to store, or to ship through Ray)."""
    with tempfile.TemporaryDirectory(prefix="noisesweep-model-") as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            return f.read()


def model_from_bytes(blob: bytes):
    """The inverse of model_to_bytes."""
    import keras

    with tempfile.TemporaryDirectory(prefix="noisesweep-model-") as d:
        path = os.path.join(d, "model.keras")
        with open(path, "wb") as f:
            f.write(blob)
        return keras.models.load_model(path)


def fingerprint(blob: bytes) -> str:
    """A short sha256 of a file's bytes: which weights a trial used."""
    return hashlib.sha256(blob).hexdigest()[:16]
