"""The seeds' own way to train, which the engine is checked (tests) and timed (bench/) against:
a split's images made noisy in numpy, as a notebook holds them, and Keras's own compile and
fit on them. No trial trains this way."""

from __future__ import annotations

import numpy as np

from sweeps.data.arrays import subset, train_size
from sweeps.noise import noisy_split, to_unit_float, with_channels
from sweeps.optimizers import make_optimizer
from sweeps.tasks import denoise


def classifier_data(config: dict, arrays: dict) -> dict:
    """uint8 dataset arrays -> float inputs and labels, noise applied, as a notebook holds
    them (Keras's fit on them is the benchmark's plain loop; the engine's batches,
    sweeps.training.feeds, are checked against them).

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
        n = train_size(config, len(x))
        out["train"], out["val"] = (x[:n], y[:n]), (x[n:], y[n:])
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


def denoise_data(config: dict, arrays: dict) -> dict:
    """(noisy, clean) pairs for training, and for validation the test set at the training
    level, or with `validation: holdout` the last `holdout_size` training pairs (seed 002)."""
    holdout = config["validation"] == "holdout"
    out = {}
    for split, name in (("train", "train"),) if holdout else (("train", "train"), ("test", "val")):
        images, _ = subset(config, arrays, split)
        clean = with_channels(to_unit_float(images))
        out[name] = (denoise.seasoned(images, config, split, config["noise_scale"]), clean)
    if holdout:
        noisy, clean = out["train"]
        n = train_size(config, len(noisy))
        out["train"], out["val"] = (noisy[:n], clean[:n]), (noisy[n:], clean[n:])
    return out
