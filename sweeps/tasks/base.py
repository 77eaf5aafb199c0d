"""What every task shares: the parts a task hands the trainable, and the small helpers
its parts are made of (subsets, optimizers, a model as bytes).

No TensorFlow at import: the driver imports the tasks to validate a grid.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from typing import Callable


class ConfigError(ValueError):
    """A trial config a task refuses: the key, and why (sweeps.grids adds file and value)."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")
        self.key, self.why = key, why


@dataclass
class Outcome:
    """What a trial's end yields: metrics for its last row, files for its folder.

    `artifacts` maps a file name (sweeps.schema) to a dict of numpy arrays (saved as
    .npz) or to a JSON-able value (saved as .json).
    """

    metrics: dict = field(default_factory=dict)
    artifacts: dict = field(default_factory=dict)


@dataclass
class Parts:
    """A trial as its task prepares it: how to build the compiled model, the training and
    validation pairs, and what to do once its last epoch is done (or None)."""

    build: Callable[[], object]
    train: tuple
    val: tuple
    finish: Callable[[object], Outcome] | None = None


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def subset(config: dict, arrays: dict, split: str):
    """(images, labels) of a split, cut to the config's `train_subset` / `test_subset`."""
    n = config[f"{split}_subset"]
    return arrays[f"x_{split}"][:n], arrays[f"y_{split}"][:n]


def make_optimizer(config: dict):
    """The config's optimizer at its learning rate; the grid's names are Keras's identifiers."""
    import keras

    return keras.optimizers.get({"class_name": config["optimizer"], "config": {"learning_rate": config["lr"]}})


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
