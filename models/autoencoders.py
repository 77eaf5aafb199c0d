"""Denoising autoencoders and the variational autoencoder of seeds 001-004.

Each maps images (28, 28, 1) in [0, 1] to images of the same shape through a
sigmoid output, to be trained on (noisy -> clean) pairs. The L2 factor, as
for the classifiers, regularises every hidden kernel. The denoisers take the
hidden layers' `activation` (relu, as the seeds built them; seed 002 also tried
softmax there, keeping the sigmoid output).
"""

import keras
from keras import layers

from models.layers import l2_regularizer


def _dense_ae(hidden, name, l2, input_shape, activation):
    reg = l2_regularizer(l2)
    size = 1
    for d in input_shape:
        size *= d
    stack = [keras.Input(shape=input_shape), layers.Flatten()]
    stack += [layers.Dense(units, activation=activation, kernel_regularizer=reg) for units in hidden]
    stack += [layers.Dense(size, activation="sigmoid"), layers.Reshape(input_shape)]
    return keras.Sequential(stack, name=name)


def dae_dense(l2=0.0, input_shape=(28, 28, 1), activation="relu"):
    """Seed 001 part 4: 784-128-96-128-784, relu, sigmoid output."""
    return _dense_ae((128, 96, 128), "dae_dense", l2, input_shape, activation)


def dae_small(l2=0.0, input_shape=(28, 28, 1), activation="relu"):
    """Seed 003: 784-64-784."""
    return _dense_ae((64,), "dae_small", l2, input_shape, activation)


def dae_conv(l2=0.0, input_shape=(28, 28, 1), activation="relu"):
    """Seed 002: Conv12-Pool-Conv14 encoder, ConvT12 (stride 2)-ConvT1 decoder, 3,279 params."""
    reg = l2_regularizer(l2)
    hidden = dict(padding="same", activation=activation, kernel_regularizer=reg)
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(12, 3, **hidden),
            layers.MaxPooling2D(2),
            layers.Conv2D(14, 3, **hidden),
            layers.Conv2DTranspose(12, 3, strides=2, **hidden),
            layers.Conv2DTranspose(input_shape[-1], 3, strides=1, padding="same", activation="sigmoid"),
        ],
        name="dae_conv",
    )


# Registered so a checkpointed VAE loads back (keras.models.load_model) in a restarted trial.
@keras.saving.register_keras_serializable(package="noisesweep")
class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps, the reparameterisation trick; adds the KL term
    KL(N(mean, var) || N(0, 1)), summed over latent dimensions, to the model's losses."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}

    def call(self, inputs):
        mean, log_var = inputs
        kl = -0.5 * keras.ops.sum(1 + log_var - keras.ops.square(mean) - keras.ops.exp(log_var), axis=-1)
        self.add_loss(keras.ops.mean(kl))
        eps = keras.random.normal(keras.ops.shape(mean), seed=self.seed_generator)
        return mean + keras.ops.exp(0.5 * log_var) * eps


def vae(l2=0.0, input_shape=(28, 28, 1), latent_dim=2):
    """Seed 004 architecture 3: three conv/pool stages to a `latent_dim` Gaussian, a dense
    layer and three conv/upsampling stages back; 5,285 params at latent_dim 2.

    Train it with `reconstruction_loss` as the loss: with the KL term it adds, that is the
    negative evidence lower bound per image.
    """
    reg = l2_regularizer(l2)
    conv = dict(padding="same", activation="relu", kernel_regularizer=reg)
    inputs = keras.Input(shape=input_shape)
    x = inputs
    for filters in (16, 8, 8):
        x = layers.Conv2D(filters, 3, **conv)(x)
        x = layers.MaxPooling2D(2, padding="same")(x)
    x = layers.Flatten()(x)
    mean = layers.Dense(latent_dim, name="z_mean")(x)
    log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling(name="z")([mean, log_var])
    encoder = keras.Model(inputs, [mean, log_var, z], name="encoder")

    latent = keras.Input(shape=(latent_dim,))
    y = layers.Dense(4 * 4 * 8, activation="relu", kernel_regularizer=reg)(latent)
    y = layers.Reshape((4, 4, 8))(y)
    y = layers.Conv2D(8, 3, **conv)(y)
    y = layers.UpSampling2D(2)(y)
    y = layers.Conv2D(8, 3, **conv)(y)
    y = layers.UpSampling2D(2)(y)
    y = layers.Conv2D(16, 3, padding="valid", activation="relu", kernel_regularizer=reg)(y)
    y = layers.UpSampling2D(2)(y)
    outputs = layers.Conv2D(input_shape[-1], 3, padding="same", activation="sigmoid")(y)
    decoder = keras.Model(latent, outputs, name="decoder")

    return keras.Model(inputs, decoder(encoder(inputs)[2]), name="vae")


@keras.saving.register_keras_serializable(package="noisesweep")
def reconstruction_loss(y_true, y_pred):
    """Binary cross-entropy summed over the pixels of each image (the VAE's likelihood term)."""
    bce = keras.losses.binary_crossentropy(keras.ops.expand_dims(y_true, -1), keras.ops.expand_dims(y_pred, -1))
    return keras.ops.sum(keras.ops.reshape(bce, (keras.ops.shape(bce)[0], -1)), axis=-1)
