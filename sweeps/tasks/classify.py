"""The classification task: a classifier learns labels from (noisy) images.

Seeds 000-003's classifiers, and the reference classifiers that judge denoisers
(sweeps.reference), run through this one module.
"""

from __future__ import annotations

import numpy as np

from sweeps.noise import noisy_split
from sweeps.tasks.base import Outcome, Parts, make_optimizer, steps_per_epoch, subset

NAME = "classify"
MODEL = "classifier"  # what its architectures are called in messages
FAMILY = "classification"  # what its trials are called in messages
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")
# No keys, checks or references of its own (sweeps.tasks.OPTIONAL).
# Its trials train in packs (sweeps.pack_trainer), a solo trial as a pack of one.
PACKS = True


def prepare_data(config: dict, arrays: dict) -> dict:
    """uint8 dataset arrays -> float inputs and labels for fit/evaluate, noise applied.

    Returns x/y for train and val, and for test too when validating on a
    hold-out (the last `holdout_size` training images, as seed 002 does).
    """
    noise = {k: config[k] for k in ("noise_type", "noise_scale", "noise_target", "noise_clip")}
    out = {}
    for split in ("train", "test"):
        images, labels = subset(config, arrays, split)
        x = noisy_split(images, split, seed=config["seed"], standardize_first=config["standardize"], **noise)
        out[split] = (x[..., np.newaxis], labels.astype(np.int32))
    if config["validation"] == "holdout":
        x, y = out["train"]
        k = config["holdout_size"]
        if k >= len(x):
            raise ValueError(f"holdout_size {k} leaves no training images out of {len(x)}")
        out["train"], out["val"] = (x[:-k], y[:-k]), (x[-k:], y[-k:])
    else:
        out["val"] = out.pop("test")
    return out


def training_data(config: dict, arrays: dict):
    """(prepare_data's splits with labels in the form the loss wants, number of classes)."""
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    data = prepare_data(config, arrays)
    if config["loss_fn"] == "categorical_crossentropy":
        import keras

        data = {k: (x, keras.utils.to_categorical(y, num_classes)) for k, (x, y) in data.items()}
    return data, num_classes


def compiled_model(config: dict, input_shape, num_classes: int, steps: int | None = None):
    """The registry's model for `config`, compiled with its optimizer, learning rate and loss
    (`steps`: optimizer steps per epoch, for a learning-rate schedule)."""
    from models import build_model

    model = build_model(config["arch"], config["l2"], input_shape, num_classes=num_classes)
    model.compile(optimizer=make_optimizer(config, steps), loss=config["loss_fn"], metrics=["accuracy"])
    return model


def parts(config: dict, arrays: dict, references: dict | None = None) -> Parts:
    data, num_classes = training_data(config, arrays)
    finish = None
    if "test" in data:
        def finish(model) -> Outcome:
            # Validating on a hold-out leaves the test set for the end.
            loss, acc = model.evaluate(*data["test"], batch_size=config["batch_size"], verbose=0)
            return Outcome({"test_loss": float(loss), "test_accuracy": float(acc)})

    steps = steps_per_epoch(len(data["train"][0]), config)
    return Parts(lambda: compiled_model(config, data["train"][0].shape[1:], num_classes, steps),
                 data["train"], data["val"], finish)
