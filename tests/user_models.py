"""Classifiers and denoisers of one's own, as a researcher brings them: layers the
hand-written packer (models.packed) does not know, so they train through the vectorised
call (models.vectorized); and some that cannot train, refused before Ray starts. Named in
$NOISESWEEP_TASKS, this module registers them."""

from __future__ import annotations

from models import Arch, register

_ADAM = {"optimizer": "adam", "lr": 0.002, "batch_size": 64, "epochs": 3}


def _reg(l2):
    import keras

    return keras.regularizers.l2(l2) if l2 else None


def bn_resnet(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Functional: Conv8-BN-ReLU, a residual block (Conv8-BN, Add, ReLU), MaxPool,
    SpatialDropout, a strided DepthwiseConv, Flatten, Dense: 3,698 params."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(8, 3, padding="same", kernel_regularizer=_reg(l2))(inputs)
    x = layers.ReLU()(layers.BatchNormalization()(x))
    y = layers.BatchNormalization()(layers.Conv2D(8, 3, padding="same", kernel_regularizer=_reg(l2))(x))
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.SpatialDropout2D(0.1)(layers.MaxPooling2D()(x))
    x = layers.Flatten()(layers.DepthwiseConv2D(3, strides=2)(x))
    return keras.Model(inputs, layers.Dense(num_classes, activation="softmax")(x), name="bn_resnet")


def bn_mlp(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """Flatten-Dense64-BN-ReLU-Dropout.2-Dense32-BN-ReLU-Dense10: 53,034 params."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=input_shape), layers.Flatten(),
        layers.Dense(64, kernel_regularizer=_reg(l2)), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dropout(0.2),
        layers.Dense(32, kernel_regularizer=_reg(l2)), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="bn_mlp")


def bn_plain(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """bn_mlp without its dropout: nothing random, so Keras's own fit can be compared."""
    import keras
    from keras import layers

    return keras.Sequential([
        keras.Input(shape=input_shape), layers.Flatten(),
        layers.Dense(64, kernel_regularizer=_reg(l2)), layers.BatchNormalization(), layers.Activation("relu"),
        layers.Dense(num_classes, activation="softmax"),
    ], name="bn_plain")


def not_a_model(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """A builder that returns something other than a Keras model."""
    return "a string"


def ignores_l2(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """A classifier whose builder takes l2 and adds no regulariser with it (as Keras's own
    mnist_convnet example would, named by import path)."""
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(num_classes, activation="softmax")], name="ignores_l2")


def wrong_output(l2=0.0, input_shape=(28, 28, 1), num_classes=10):
    """A classifier with 3 outputs whatever the number of classes."""
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(3, activation="softmax")], name="wrong_output")


def flat_denoiser(l2=0.0, input_shape=(28, 28, 1)):
    """A denoiser whose output is a flat vector, not an image: the denoise task's loss (clean
    images as targets) cannot take it."""
    import keras

    return keras.Sequential([keras.Input(shape=input_shape), keras.layers.Flatten(),
                             keras.layers.Dense(784, activation="sigmoid")], name="flat_denoiser")


def bn_denoiser(l2=0.0, input_shape=(28, 28, 1)):
    """A conv denoiser with BatchNormalization: Conv8-BN-ReLU, then Conv1 with a sigmoid."""
    import keras
    from keras import layers

    return keras.Sequential([keras.Input(shape=input_shape),
                             layers.Conv2D(8, 3, padding="same", kernel_regularizer=_reg(l2)),
                             layers.BatchNormalization(), layers.Activation("relu"),
                             layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")],
                            name="bn_denoiser")


for _name, _about in (("bn_denoiser", "user: conv denoiser with BatchNormalization"),
                      ("flat_denoiser", "user: a denoiser with a flat output")):
    register(_name, Arch(__name__, _name, _about, {**_ADAM, "loss_fn": "binary_crossentropy", "classifier": None},
                         task="denoise"))

for _name, _about in (("bn_resnet", "user: conv + BatchNormalization + residual Add, depthwise conv, 3,698 params"),
                      ("bn_mlp", "user: MLP + BatchNormalization + dropout, 53,034 params"),
                      ("bn_plain", "user: MLP + BatchNormalization, 51,146 params"),
                      ("not_a_model", "user: a builder that returns a string"),
                      ("wrong_output", "user: 3 outputs"),
                      ("ignores_l2", "user: takes l2, adds no penalty")):
    register(_name, Arch(__name__, _name, _about, _ADAM))
