"""A dataset's arrays as the trials cut them: a split's subset, the models' input shape and
class count, and the hold-out's rule. No TensorFlow: the driver checks with these too."""

from __future__ import annotations


def subset(config: dict, arrays: dict, split: str):
    """(images, labels) of a split, cut to the config's `train_subset` / `test_subset`."""
    n = config[f"{split}_subset"]
    return arrays[f"x_{split}"][:n], arrays[f"y_{split}"][:n]


def input_shape_of(arrays: dict) -> tuple:
    """The models' input for a dataset: (H, W, 1) for grey images, (H, W, C) for colour."""
    shape = arrays["x_train"].shape[1:]
    return (*shape, 1) if len(shape) == 2 else tuple(shape)


def num_classes_of(arrays: dict) -> int:
    """The classes a dataset's labels name (both splits)."""
    return int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1


def holdout_problem(holdout_size: int, n: int, what: str = "training images") -> str | None:
    """Why a hold-out of `holdout_size` cannot be cut from `n` images (`what` they are),
    or None: it must leave at least one to train on."""
    if holdout_size >= n:
        return f"holdout_size = {holdout_size!r}: must be smaller than the {n:,} {what}"
    return None


def train_size(config: dict, n: int) -> int:
    """The images a config trains on out of its `n` training images: all but a hold-out."""
    if config["validation"] != "holdout":
        return n
    problem = holdout_problem(config["holdout_size"], n)
    if problem:
        raise ValueError(problem)
    return n - config["holdout_size"]
