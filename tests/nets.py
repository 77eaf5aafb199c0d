"""Classifiers of one's own as a grid names them, by import path (`arch: tests.nets:bn_cnn`),
registered nowhere: each keyword parameter beyond the contract (l2, input_shape,
num_classes) is a grid axis. And builders that break the contract, refused in one line."""

from __future__ import annotations


def _reg(l2):
    import keras

    return keras.regularizers.l2(l2) if l2 else None


def bn_cnn(l2=0.0, input_shape=(28, 28, 1), num_classes=10, width=8, dropout=0.0):
    """Conv(width)-BN-ReLU-MaxPool, Conv(2 width)-BN-ReLU-GlobalAveragePool, Dropout, Dense."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(width, 3, padding="same", kernel_regularizer=_reg(l2))(inputs)
    x = layers.MaxPooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    x = layers.Conv2D(2 * width, 3, padding="same", kernel_regularizer=_reg(l2))(x)
    x = layers.GlobalAveragePooling2D()(layers.ReLU()(layers.BatchNormalization()(x)))
    x = layers.Dropout(dropout)(x)
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax", kernel_regularizer=_reg(l2))(x),
                       name="bn_cnn")


def wide_mlp(l2=0.0, input_shape=(28, 28, 1), num_classes=10, width=32, batch_norm=False):
    """Flatten-Dense(width)[-BN]-ReLU-Dense(num_classes)."""
    import keras
    from keras import layers

    stack = [keras.Input(shape=input_shape), layers.Flatten(), layers.Dense(width, kernel_regularizer=_reg(l2))]
    if batch_norm:
        stack.append(layers.BatchNormalization())
    stack += [layers.Activation("relu"), layers.Dense(num_classes, activation="softmax")]
    return keras.Sequential(stack, name="wide_mlp")


def no_classes(l2=0.0, input_shape=(28, 28, 1)):
    """A builder that does not take num_classes."""
    raise AssertionError("never called")


def needs_depth(depth, l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """A builder option without a default: no grid could leave it out."""
    raise AssertionError("never called")


NOT_A_FUNCTION = 3
