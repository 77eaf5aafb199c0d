"""The task contract: what a task hands the pack engine (Training), what a member's end
yields (Outcome), and what a task refuses (ConfigError). A task of one's own is written
against these; the dataset helpers it cuts its splits with are sweeps.data.arrays's (also
importable from here).

No TensorFlow at import: the driver imports the tasks to validate a grid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from sweeps.data.arrays import input_shape_of, num_classes_of, subset  # noqa: F401  (a task's toolkit)


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
    test split's loss and metric). `judge(i, model, inputs, clean, labels)`: member i's scores
    under a test-time condition (sweeps.conditions), from its trained Keras model, its
    `inputs` the condition's images as the model takes them, `clean` the originals in [0, 1]:
    a dict of sweeps.schema.ROBUSTNESS_METRICS (None: the engine scores the pack's members
    together, their loss and metric).
    """

    build: Callable[[int], object]
    targets: Callable
    loss: Callable
    metric: str | None = None
    score: Callable | None = None
    noise_everywhere: bool = False
    finish: Callable[[int, object], Outcome] | None = None
    judge: Callable | None = None

    def metric_names(self) -> tuple[str, ...]:
        """The keys of a member's epoch row, in the words Keras's fit logs use."""
        return metric_names(self.metric)

    def feed_members(self, members: list[dict]) -> list[dict]:
        """The members as the batches see them (sweeps.training.feeds): noise on both splits where
        the task asks for it."""
        return [{**m, "noise_target": "both"} for m in members] if self.noise_everywhere else members


def metric_names(metric: str | None) -> tuple[str, ...]:
    """What a trial whose task scores `metric` (None: the loss alone) reports every epoch, in
    the words Keras's fit logs use: loss, the metric, and their val_ values."""
    names = ("loss", metric) if metric else ("loss",)
    return (*names, *(f"val_{n}" for n in names))


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def unjudged(config: dict) -> dict:
    """`config` without the reference classifier its task would judge it with at its end (a
    denoiser's `classifier`): a model timed or checked on its own needs no reference."""
    return {**config, "classifier": None} if "classifier" in config else config
