"""What every task shares: what a task hands the pack engine (Training), and the small
helpers it is made of (subsets, optimizers, a model as bytes).

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
class Training:
    """A task's trial as the pack engine (sweeps.training.pack) trains it, for the members of
    one pack (a solo trial is a pack of one).

    `build(i)`: member i's uncompiled Keras model (the engine calls it under the member's
    seed, so it starts from its solo trial's weights). In the compiled step, on a batch
    flattened to `[N, ...]`: `targets(clean, labels)` is what the model learns (`labels`
    `[N]` int32; `clean()` gives the clean images `[N, H, W, 1]` in [0, 1], for a task that
    learns them), `loss(y, outputs)` Keras's per-image loss, and `score(y, outputs)` the
    per-image value of the epoch metric `metric` (None: the loss alone), each averaged over
    any axes beyond the image's. These three may depend only on what a pack's members share
    (sweeps.packing.group_key): a worker's compiled step serves the next pack of its shape.
    `noise_everywhere`: the noise is on both splits whatever `noise_target` says (a
    denoiser learns noisy -> clean and is validated so). `finish(i, model)`: member i's
    Outcome after its last epoch, from its trained Keras model (None: with a hold-out, the
    test split's loss and metric).
    """

    build: Callable[[int], object]
    targets: Callable
    loss: Callable
    metric: str | None = None
    score: Callable | None = None
    noise_everywhere: bool = False
    finish: Callable[[int, object], Outcome] | None = None

    def metric_names(self) -> tuple[str, ...]:
        """The keys of a member's epoch row, in the words Keras's fit logs use."""
        names = ("loss", self.metric) if self.metric else ("loss",)
        return (*names, *(f"val_{n}" for n in names))

    def feed_members(self, members: list[dict]) -> list[dict]:
        """The members as the batches see them (sweeps.training.batches): noise on both splits where
        the task asks for it."""
        return [{**m, "noise_target": "both"} for m in members] if self.noise_everywhere else members


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


def input_shape_of(arrays: dict) -> tuple:
    """The models' input for a dataset: (H, W, 1) for grey images, (H, W, C) for colour."""
    shape = arrays["x_train"].shape[1:]
    return (*shape, 1) if len(shape) == 2 else tuple(shape)


def num_classes_of(arrays: dict) -> int:
    """The classes a dataset's labels name (both splits)."""
    return int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1


def unjudged(config: dict) -> dict:
    """`config` without the reference classifier its task would judge it with at its end (a
    denoiser's `classifier`): a model timed or checked on its own needs no reference."""
    return {**config, "classifier": None} if "classifier" in config else config


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
