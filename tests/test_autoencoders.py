"""The denoisers of seeds 001-004: sizes against the seeds, and real (small) training."""

import keras
import numpy as np
import pytest

from models import archs_of, build_model
from models.autoencoders import reconstruction_loss
from sweeps.noise import noisy_split
from tests.synthetic import learnable_mnist

EXPECTED_PARAMS = {
    # seed 001 part 4: 784-128-96-128-784 (weights + biases, layer by layer)
    "dae_dense": (784 * 128 + 128) + (128 * 96 + 96) + (96 * 128 + 128) + (128 * 784 + 784),
    # seed 003: 784-64-784
    "dae_small": (784 * 64 + 64) + (64 * 784 + 784),
    "dae_conv": 3_279,  # seed 002 states it
    "vae": 5_285,  # seed 004, architecture 3, latent dimension 2: encoder 2,420 + decoder 2,865
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_matches_seed(name):
    model = build_model(name)
    assert model.count_params() == EXPECTED_PARAMS[name]
    assert model.output_shape == (None, 28, 28, 1)


def test_every_denoiser_is_tested_and_unknown_names_are_refused():
    from sweeps.model_check import of_ones_own

    # The project's own: the tests register denoisers of one's own too (tests/user_models.py).
    built_in = {a for a in archs_of("denoise", "vae") if not of_ones_own(a)}
    assert built_in == set(EXPECTED_PARAMS)
    with pytest.raises(KeyError, match="unknown architecture 'unet'"):
        build_model("unet")


def test_vae_latent_dimension_is_configurable_and_its_kl_term_is_a_loss():
    model = build_model("vae", latent_dim=8)
    encoder = model.get_layer("encoder")
    assert encoder.get_layer("z_mean").output.shape[-1] == 8
    model(np.zeros((3, 28, 28, 1), np.float32))
    assert len(model.losses) == 1 and float(model.losses[0]) >= 0.0


def test_denoiser_learns_noisy_to_clean():
    keras.utils.set_random_seed(0)
    arrays = learnable_mnist(2000, 200)
    clean = arrays["x_train"].astype(np.float32)[..., None] / 255
    noisy = noisy_split(arrays["x_train"], "train", seed=0, noise_type="salt_and_pepper", noise_scale=0.4)[..., None]
    model = build_model("dae_small")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    before = model.evaluate(noisy, clean, verbose=0)
    model.fit(noisy, clean, batch_size=128, epochs=3, verbose=0)
    after = model.evaluate(noisy, clean, verbose=0)
    assert after < 0.8 * before
    # denoised output is closer to the clean image than the noisy input was
    out = model.predict(noisy[:200], verbose=0)
    assert np.abs(out - clean[:200]).mean() < np.abs(noisy[:200] - clean[:200]).mean()


def test_vae_trains_on_its_evidence_lower_bound():
    keras.utils.set_random_seed(1)
    x = learnable_mnist(1000, 10)["x_train"].astype(np.float32)[..., None] / 255
    model = build_model("vae")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=reconstruction_loss)
    history = model.fit(x, x, batch_size=100, epochs=3, verbose=0).history["loss"]
    assert history[-1] < history[0]
    # per-image loss: summed over 784 pixels, so of the order of hundreds, not below 1
    assert 50 < history[-1] < 784


@pytest.mark.parametrize("name", ["dae_conv", "dae_dense", "dae_small"])
def test_activation_changes_the_hidden_layers_only(name):
    """Seed 002's softmax variant: the hidden layers' activation, the sigmoid output kept,
    the weights the same in number."""
    relu, softmax = build_model(name), build_model(name, activation="softmax")
    assert softmax.count_params() == relu.count_params() == EXPECTED_PARAMS[name]
    acts = [layer.get_config()["activation"] for layer in softmax.layers if "activation" in layer.get_config()]
    assert acts[-1] == "sigmoid" and set(acts[:-1]) == {"softmax"} and len(acts) >= 2
    assert {layer.get_config()["activation"] for layer in relu.layers
            if "activation" in layer.get_config()} == {"relu", "sigmoid"}
