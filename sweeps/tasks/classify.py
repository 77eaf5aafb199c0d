"""The classification task: a classifier learns labels from (noisy) images.

Seeds 000-003's classifiers, and the reference classifiers that judge denoisers
(sweeps.reference), run through this one module.
"""

from __future__ import annotations

import numpy as np

from sweeps.noise import noisy_split, with_channels
from sweeps.tasks.base import Training, input_shape_of, make_optimizer, num_classes_of, subset

NAME = "classify"
MODEL = "classifier"  # what its architectures are called in messages
FAMILY = "classification"  # what its trials are called in messages
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# No keys, checks or references of its own (sweeps.tasks.OPTIONAL).


def prepare_data(config: dict, arrays: dict) -> dict:
    """uint8 dataset arrays -> float inputs and labels, noise applied, as a notebook holds
    them (Keras's fit on them is the benchmark's plain loop; the engine's batches,
    sweeps.training.batches, are checked against them).

    Returns x/y for train and val, and for test too when validating on a
    hold-out (the last `holdout_size` training images, as seed 002 does).
    """
    noise = {k: config[k] for k in ("noise_type", "noise_scale", "noise_target", "noise_clip")}
    out = {}
    for split in ("train", "test"):
        images, labels = subset(config, arrays, split)
        x = noisy_split(images, split, seed=config["seed"], standardize_first=config["standardize"], **noise)
        out[split] = (with_channels(x), labels.astype(np.int32))
    if config["validation"] == "holdout":
        x, y = out["train"]
        k = config["holdout_size"]
        if k >= len(x):
            raise ValueError(f"holdout_size {k} leaves no training images out of {len(x)}")
        out["train"], out["val"] = (x[:-k], y[:-k]), (x[-k:], y[-k:])
    else:
        out["val"] = out.pop("test")
    return out


def compiled_model(config: dict, input_shape, num_classes: int, steps: int | None = None):
    """The registry's model for `config`, compiled as the seeds' notebooks compile it (the
    benchmark's plain Keras loop, bench/throughput.py; `steps`: optimizer steps per epoch,
    for a learning-rate schedule)."""
    from models import build_model, chosen_options

    model = build_model(config["arch"], config["l2"], input_shape, num_classes=num_classes, **chosen_options(config))
    model.compile(optimizer=make_optimizer(config, steps), loss=config["loss_fn"], metrics=["accuracy"])
    return model


def training(members: list[dict], arrays: dict, references: dict | None = None) -> Training:
    """Classifiers as the engine trains them: labels learnt with the config's cross-entropy,
    scored by accuracy; a hold-out run's test split scored at a member's end."""
    import keras
    from keras import ops

    from models import build_model, chosen_options

    first = members[0]
    classes = num_classes_of(arrays)
    shape = input_shape_of(arrays)
    one_hot = first["loss_fn"] == "categorical_crossentropy"

    def targets(clean, labels):
        return ops.one_hot(labels, classes) if one_hot else labels

    def hits(y, outputs):
        labels = ops.argmax(y, -1) if one_hot else y
        return ops.cast(ops.equal(ops.cast(ops.argmax(outputs, -1), "int32"), ops.cast(labels, "int32")), "float32")

    return Training(build=lambda i: build_model(members[i]["arch"], members[i]["l2"], shape, num_classes=classes,
                                                **chosen_options(members[i])),
                    targets=targets, loss=keras.losses.get(first["loss_fn"]), metric="accuracy", score=hits)
