"""The classification task: a classifier learns labels from (noisy) images.

Seeds 000-003's classifiers, and the reference classifiers that judge denoisers
(sweeps.reference), run through this one module.
"""

from __future__ import annotations

from sweeps.data.arrays import input_shape_of, num_classes_of
from sweeps.tasks.base import Training

NAME = "classify"
MODEL = "classifier"  # what its architectures are called in messages
FAMILY = "classification"  # what its trials are called in messages
LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
METRIC = "accuracy"  # its epoch metric (sweeps.tasks: what early stopping may monitor)
# No keys, checks or references of its own (sweeps.tasks.OPTIONAL).


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
                    targets=targets, loss=keras.losses.get(first["loss_fn"]), metric=METRIC, score=hits)
