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


# Optimizers that take a momentum (Keras's SGD and RMSprop), and the one that takes Nesterov's.
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")
LR_SCHEDULES = ("cosine", "step")
DEFAULT_DECAY_EPOCHS, DEFAULT_DECAY_FACTOR = 10, 0.1


def make_optimizer(config: dict, steps_per_epoch: int | None = None):
    """The config's optimizer (the grid's names are Keras's identifiers) at its learning rate,
    with its momentum and Nesterov where given, and its learning-rate schedule, which counts
    optimizer steps: `steps_per_epoch` is needed with one. "cosine": Keras's cosine decay from
    `lr` to 0 over the config's epochs; "step": `lr` times `lr_decay_factor` every
    `lr_decay_epochs` epochs."""
    import keras

    lr = config["lr"]
    schedule = config.get("lr_schedule")
    if schedule:
        if not steps_per_epoch:
            raise ValueError(f"lr_schedule {schedule!r} needs the training steps per epoch")
        if schedule == "cosine":
            lr = keras.optimizers.schedules.CosineDecay(lr, decay_steps=config["epochs"] * steps_per_epoch)
        else:
            every = (config.get("lr_decay_epochs") or DEFAULT_DECAY_EPOCHS) * steps_per_epoch
            factor = config.get("lr_decay_factor") or DEFAULT_DECAY_FACTOR
            lr = keras.optimizers.schedules.ExponentialDecay(lr, every, factor, staircase=True)
    options = {"learning_rate": lr}
    if config.get("momentum") is not None:
        options["momentum"] = config["momentum"]
    if config.get("nesterov") is not None:
        options["nesterov"] = config["nesterov"]
    return keras.optimizers.get({"class_name": config["optimizer"], "config": options})


def steps_per_epoch(n_train: int, config: dict) -> int:
    """Optimizer steps in one epoch of `n_train` images (the last batch may be short)."""
    return -(-n_train // config["batch_size"])


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
