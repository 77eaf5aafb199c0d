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
from sweeps.data.arrays import subset
from sweeps.tasks.base import ConfigError, Outcome, Training, is_number

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


def training(members: list[dict], arrays: dict, references: dict | None = None) -> Training:
    """The toy as the engine trains it: the brightness of each clean image, by least squares;
    at a member's end, its test loss (computed here by hand from its Keras model)."""
    import keras

    from models import build_model

    scale = members[0]["brightness_scale"]  # shared by a pack's members (not a member key)

    def finish(i, model) -> Outcome:
        x, y = data(members[i], arrays)["test"]
        return Outcome({"test_loss": float(np.mean((model.predict(x, verbose=0) - y) ** 2))})

    return Training(build=lambda i: build_model(members[i]["arch"], members[i]["l2"]),
                    targets=lambda clean, labels: keras.ops.mean(clean(), axis=(1, 2)) * scale,
                    loss=keras.losses.get("mse"), finish=finish)
