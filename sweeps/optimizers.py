"""A config's optimizer: Keras's, by the grid's name, with its momentum, Nesterov's and its
learning-rate schedule, which counts optimizer steps. No TensorFlow at import: the grid
checks its names on the driver."""

from __future__ import annotations


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
