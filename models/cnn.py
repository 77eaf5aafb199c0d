"""Convolutional classifiers of seeds 000 and 001."""

import keras
from keras import layers

from models.layers import l2_regularizer


def cnn(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Seed 001 3a: Conv32-Pool-Conv64-Pool-Conv64-Dropout.5-Flatten-Dense64-Dense10."""
    reg = l2_regularizer(l2)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu", kernel_regularizer=reg),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", kernel_regularizer=reg),
            layers.MaxPooling2D(2),
            layers.Conv2D(64, 3, activation="relu", kernel_regularizer=reg),
            layers.Dropout(0.5),
            layers.Flatten(),
            layers.Dense(64, activation="relu", kernel_regularizer=reg),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn",
    )


def cnn_keras(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Seed 000: the Keras mnist_cnn example, Conv32-Conv64-Pool-Dropout.25-Dense128-Dropout.5-Dense10."""
    reg = l2_regularizer(l2)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu", kernel_regularizer=reg),
            layers.Conv2D(64, 3, activation="relu", kernel_regularizer=reg),
            layers.MaxPooling2D(2),
            layers.Dropout(0.25),
            layers.Flatten(),
            layers.Dense(128, activation="relu", kernel_regularizer=reg),
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="cnn_keras",
    )
