"""A task of one's own, kept in the tests to show what a new trial kind needs: this one
file (its task and its model builder), named in $NOISESWEEP_TASKS, and its test.

The toy learns the brightness of the clean image (its mean pixel, times
`brightness_scale`) from the noisy one, by least squares, and reports its test
loss after the last epoch.
"""

from __future__ import annotations

import numpy as np

from models import Arch, register
from sweeps.noise import noisy_split, to_unit_float
from sweeps.tasks.base import ConfigError, Outcome, Parts, is_number, make_optimizer, subset

NAME = "toy_brightness"
MODEL = "regressor"
FAMILY = "brightness"
DEFAULTS = {"brightness_scale": 1.0}
KEYS = tuple(DEFAULTS)
CHECKS = {"brightness_scale": (lambda v: is_number(v) and v > 0, "a number > 0")}
LOSSES = ("mse",)


def toy_linear(l2=0.0, input_shape=(28, 28, 1)):
    """Flatten-Dense1: 785 params."""
    import keras

    reg = keras.regularizers.l2(l2) if l2 else None
    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(1, kernel_regularizer=reg)], name="toy_linear")


register("toy_linear", Arch(__name__, "toy_linear", "toy: Flatten-Dense1, 785 params",
                            {"optimizer": "adam", "lr": 0.01, "batch_size": 64, "epochs": 2, "loss_fn": "mse"},
                            task=NAME))


def check(config: dict) -> None:
    if config["validation"] != "test":
        raise ConfigError("validation", "the toy validates on the test set only")


def targets(config: dict, images: np.ndarray) -> np.ndarray:
    """What the toy learns: the clean image's mean pixel in [0, 1], scaled."""
    return to_unit_float(images).mean(axis=(1, 2))[:, None] * np.float32(config["brightness_scale"])


def data(config: dict, arrays: dict) -> dict:
    noise = {k: config[k] for k in ("noise_type", "noise_scale", "noise_target", "noise_clip")}
    out = {}
    for split in ("train", "test"):
        images, _ = subset(config, arrays, split)
        x = noisy_split(images, split, seed=config["seed"], **noise)[..., None]
        out[split] = (x, targets(config, images))
    return out


def parts(config: dict, arrays: dict, references: dict | None = None) -> Parts:
    from models import build_model

    pairs = data(config, arrays)

    def build():
        model = build_model(config["arch"], config["l2"])
        model.compile(optimizer=make_optimizer(config), loss="mse")
        return model

    def finish(model) -> Outcome:
        return Outcome({"test_loss": float(model.evaluate(*pairs["test"], verbose=0))})

    return Parts(build, pairs["train"], pairs["test"], finish)
