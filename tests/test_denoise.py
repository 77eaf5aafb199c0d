"""The denoise trial's parts without Ray: training pairs, and the evaluation over levels
on real (small) trained Keras models."""

import keras
import numpy as np
import pytest

from models import build_model
from sweeps.tasks import denoise, vae as vae_task
from sweeps.grids import trial_config
from sweeps.noise import noisy_split, to_unit_float
from sweeps.tasks.classify import compiled_model, training_data
from tests.synthetic import learnable_mnist

LEVELS = [0, 0.25, 0.5, 0.75, 1.0]


def denoise_config(**kw):
    cfg = trial_config({"arch": "dae_small", "noise_type": "salt_and_pepper", "noise_scale": 0.4,
                        "classifier": "mlp64", "eval_levels": LEVELS, **kw}, {})
    return cfg


@pytest.fixture(scope="module")
def trained():
    """A classifier trained on clean data and a denoiser trained noisy -> clean: small, real."""
    keras.utils.set_random_seed(0)
    arrays = learnable_mnist(3000, 600, seed=3)
    clf_cfg = trial_config({"arch": "mlp64"}, {})
    data, classes = training_data(clf_cfg, arrays)
    classifier = compiled_model(clf_cfg, (28, 28, 1), classes)
    classifier.fit(*data["train"], batch_size=128, epochs=3, verbose=0)
    cfg = denoise_config()
    pairs = denoise.denoise_data(cfg, arrays)
    denoiser = denoise.compiled_denoiser(cfg, keras.optimizers.Adam(3e-3))
    denoiser.fit(*pairs["train"], batch_size=64, epochs=10, verbose=0)
    return arrays, classifier, denoiser, cfg


def test_training_pairs_are_noisy_inputs_and_clean_targets():
    arrays = learnable_mnist(50, 20)
    cfg = denoise_config(train_subset=40, seed=7)
    data = denoise.denoise_data(cfg, arrays)
    (x, y), (vx, vy) = data["train"], data["val"]
    assert x.shape == y.shape == (40, 28, 28, 1) and vx.shape == vy.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(y[..., 0], to_unit_float(arrays["x_train"][:40]))
    expected = noisy_split(arrays["x_train"][:40], "train", seed=7, noise_type="salt_and_pepper", noise_scale=0.4)
    np.testing.assert_array_equal(x[..., 0], expected)
    # validation: the test set at the training level, against the clean test set
    assert 0.3 < np.mean(vx != vy) < 0.5


def test_evaluation_has_a_row_per_level_and_seasoned_accuracy_falls(trained):
    arrays, classifier, denoiser, cfg = trained
    rows, samples = denoise.evaluate_levels(cfg, denoiser, arrays, classifier)
    assert [r["level"] for r in rows] == LEVELS
    seasoned = [r["seasoned_accuracy"] for r in rows]
    assert all(a > b for a, b in zip(seasoned, seasoned[1:])), seasoned
    # level 0 is the clean test set: the classifier's own accuracy, computed by hand
    clean = to_unit_float(arrays["x_test"])[..., None]
    by_hand = np.mean(np.argmax(classifier.predict(clean, verbose=0), -1) == arrays["y_test"])
    assert seasoned[0] == pytest.approx(by_hand) and seasoned[0] > 0.9
    assert seasoned[-1] < 0.3  # every pixel replaced: near chance
    noisy_mse = [r["noisy_mse"] for r in rows]
    assert noisy_mse[0] == 0 and all(a < b for a, b in zip(noisy_mse, noisy_mse[1:]))
    # the denoiser, trained at 0.4, helps the classifier at 0.5 and brings the images closer
    mid = rows[2]
    assert mid["denoised_accuracy"] > mid["seasoned_accuracy"]
    assert mid["denoised_mse"] < mid["noisy_mse"]
    # denoised accuracy is the composite model's: classifier(denoiser(noisy)), by hand
    noisy = denoise.seasoned(arrays["x_test"], cfg, "test", 0.5)
    composed = classifier.predict(denoiser.predict(noisy, verbose=0), verbose=0)
    assert mid["denoised_accuracy"] == pytest.approx(np.mean(np.argmax(composed, -1) == arrays["y_test"]))
    assert samples["noisy"].shape == samples["denoised"].shape == (5, 4, 28, 28)
    assert samples["noisy"].dtype == np.uint8
    np.testing.assert_array_equal(samples["original"], arrays["x_test"][:4])
    np.testing.assert_array_equal(samples["noisy"][0], arrays["x_test"][:4])  # level 0 is the original


def test_without_a_classifier_only_reconstruction_is_measured(trained):
    arrays, _, denoiser, cfg = trained
    rows, _ = denoise.evaluate_levels(cfg, denoiser, arrays, None)
    assert len(rows) == 5 and set(rows[0]) == {"level", "noisy_mse", "denoised_mse"}


def test_vae_latent_grid_decodes_a_square_of_images():
    keras.utils.set_random_seed(0)
    vae = build_model("vae", latent_dim=2)
    grid = vae_task.latent_grid(vae, size=5)
    assert grid["images"].shape == (5, 5, 28, 28) and grid["images"].dtype == np.uint8
    assert grid["z1"].tolist() == pytest.approx([-2, -1, 0, 1, 2]) and grid["z2"][0] == pytest.approx(2)


def test_holdout_validates_on_the_tail_of_the_noisy_training_pairs():
    """Seed 002 trained on the first 55,000 training images and validated on the last 5,000."""
    arrays = learnable_mnist(50, 20)
    whole = denoise.denoise_data(denoise_config(train_subset=40, seed=7), arrays)["train"]
    data = denoise.denoise_data(denoise_config(train_subset=40, seed=7, validation="holdout", holdout_size=10), arrays)
    for split, part in (("train", slice(None, 30)), ("val", slice(30, None))):
        for got, want in zip(data[split], whole):
            np.testing.assert_array_equal(got, want[part])


def test_binary_accuracy_is_the_share_of_pixels_the_thresholded_output_gets_exactly():
    """Seed 002's metric, by hand: a clean pixel counts only where it is exactly 0 or 1 and
    the output falls on its side of 0.5."""
    keras.utils.set_random_seed(0)
    arrays = learnable_mnist(300, 100, seed=2)
    cfg = denoise_config(arch="dae_conv", classifier=None, activation="softmax", train_subset=300)
    pairs = denoise.denoise_data(cfg, arrays)
    model = denoise.compiled_denoiser(cfg)
    model.fit(*pairs["train"], batch_size=32, epochs=1, verbose=0)
    x, clean = pairs["val"]
    _, reported = model.evaluate(x, clean, batch_size=1000, verbose=0)
    by_hand = np.mean((model.predict(x, verbose=0) > 0.5).astype(np.float32) == clean)
    assert reported == pytest.approx(by_hand, abs=1e-6)
    assert 0 < by_hand <= np.mean((clean == 0) | (clean == 1)) < 1  # a grey clean pixel never counts


@pytest.mark.parametrize("arch", ["vae", "dae_small"])
def test_a_trial_restarted_from_its_checkpoint_trains_as_if_never_stopped(tmp_path, arch):
    """The trials' fit, saved and loaded after epoch 2, ends with the weights of an
    uninterrupted run: each epoch's order and the VAE's sampling draws come from (seed,
    epoch), not from streams that start again from the seed when a trial restarts."""
    import tensorflow as tf

    from sweeps import tasks
    from sweeps.trainable import fit

    tf.config.experimental.enable_op_determinism()
    cfg = trial_config({"arch": arch, "noise_type": "gaussian", "noise_scale": 0.5, "noise_clip": True,
                        "epochs": 4, "train_subset": 400, "test_subset": 100, "batch_size": 50,
                        "classifier": None, "seed": 3}, {})
    parts = tasks.for_config(cfg).parts(cfg, learnable_mnist(400, 100), {})

    def trained(start, stop, model=None):
        keras.utils.set_random_seed(cfg["seed"])  # as each trial's worker does first
        model = model or parts.build()
        fit(model, parts, {**cfg, "epochs": stop}, [], initial_epoch=start, by_epoch=True)
        return model

    whole = trained(0, 4)
    trained(0, 2).save(tmp_path / "at2.keras")
    keras.utils.set_random_seed(cfg["seed"])
    resumed = trained(2, 4, keras.models.load_model(tmp_path / "at2.keras"))
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
