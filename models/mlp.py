"""Multi-layer perceptrons of seed 001 (problem 2)."""

import keras
from keras import layers

from models.layers import l2_regularizer


def _mlp(hidden, name, l2, input_shape, num_classes):
    reg = l2_regularizer(l2)
    stack = [keras.Input(shape=input_shape), layers.Flatten()]
    stack += [layers.Dense(units, activation="relu", kernel_regularizer=reg) for units in hidden]
    stack.append(layers.Dense(num_classes, activation="softmax"))
    return keras.Sequential(stack, name=name)


def mlp64(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Seed 001 2a: Flatten-Dense64-Dense64-Dense10."""
    return _mlp((64, 64), "mlp64", l2, input_shape, num_classes)


def mlp500_300(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Seed 001 2d: Flatten-Dense500-Dense300-Dense10 (Hinton's weight-decay net)."""
    return _mlp((500, 300), "mlp500_300", l2, input_shape, num_classes)


def mlp256(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Seed 003's classifier: Flatten-Dense256-Dense256-Dense10."""
    return _mlp((256, 256), "mlp256", l2, input_shape, num_classes)
