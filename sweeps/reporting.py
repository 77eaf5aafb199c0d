"""The Keras callback that reports each epoch to Ray Tune and checkpoints the model.

Ray's own ReportCheckpointCallback calls `ray.train.report`, which Tune 2.60
refuses inside a function trainable; this one calls `tune.report`.
"""

from __future__ import annotations

import json
import math
import os
import socket
import tempfile
import time

import keras
import ray
from ray import tune

MODEL_FILE = "model.keras"
STATE_FILE = "state.json"


def load_checkpoint(checkpoint: tune.Checkpoint):
    """A checkpoint written by TuneReport -> (model with optimizer state, epochs done)."""
    with checkpoint.as_directory() as d:
        with open(os.path.join(d, STATE_FILE)) as f:
            epochs_done = json.load(f)["epochs_done"]
        return keras.models.load_model(os.path.join(d, MODEL_FILE)), epochs_done


class TuneReport(keras.callbacks.Callback):
    """After every epoch: report loss/accuracy/val metrics, timing and node to Tune;
    checkpoint every `checkpoint_every` epochs and at the last; stop on a NaN loss."""

    def __init__(self, epochs: int, checkpoint_every: int = 1, finish=None):
        super().__init__()
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every
        # finish(model, checkpoint_dir) -> metrics, called after the last epoch for what is
        # only known at the end (test metrics after a hold-out, a denoiser's evaluation);
        # files it writes go into the final checkpoint, with the report, or not at all.
        self.finish = finish
        self.node_id = ray.get_runtime_context().get_node_id()
        self.hostname = socket.gethostname()
        # Which GPUs Ray gave this trial (CUDA_VISIBLE_DEVICES is set to them): in every
        # row, so a log says where each trial ran.
        self.gpus = ",".join(str(g) for g in ray.get_gpu_ids())
        self.diverged = False
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        done = epoch + 1
        metrics = {k: float(logs[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy") if k in logs}
        self.diverged = not math.isfinite(metrics.get("loss", 0.0))
        metrics.update(
            epoch=done,
            epoch_time_s=time.perf_counter() - self._t0,
            diverged=self.diverged,
            node_id=self.node_id,
            hostname=self.hostname,
            gpus=self.gpus,
        )
        if self.diverged:
            # A diverged trial is a result (seed 002's SGD+softmax), not a crash:
            # record it and stop; there is nothing worth checkpointing.
            self.model.stop_training = True
            tune.report(metrics)
            return
        if done % self.checkpoint_every and done != self.epochs:
            tune.report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="noisesweep-ckpt-") as d:
            if done == self.epochs and self.finish is not None:
                metrics.update(self.finish(self.model, d))
            self.model.save(os.path.join(d, MODEL_FILE))
            with open(os.path.join(d, STATE_FILE), "w") as f:
                json.dump({"epochs_done": done}, f)
            # Tune persists the folder to storage inside report(), so it can go after.
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
