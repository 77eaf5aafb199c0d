"""The denoise and VAE trials without Ray: training pairs, the engine's per-pixel metric,
packs that train as alone and restart as if never stopped, and the evaluation over levels
on real (small) trained Keras models."""

import keras
import numpy as np
import pytest

from models import build_model
from sweeps.tasks import denoise, vae as vae_task
from sweeps.grids import trial_config
from sweeps.noise import noisy_split, to_unit_float
from sweeps import plain_keras
from sweeps.plain_keras import classifier_data, compiled_model
from tests.packs import train
from tests.synthetic import learnable_colour, learnable_mnist
from sweeps.training import loop

# Deterministic ops, as in a trial (sweeps.training.trainable.configure_tensorflow).
pytestmark = pytest.mark.usefixtures("deterministic_ops")

LEVELS = [0, 0.25, 0.5, 0.75, 1.0]


def denoise_config(**kw):
    cfg = trial_config({"arch": "dae_small", "noise_type": "salt_and_pepper", "noise_scale": 0.4,
                        "classifier": "mlp64", "eval_levels": LEVELS, **kw}, {})
    return cfg


# The tests of the trained pair below run in one test process, so that it is trained once.
ONE_PROCESS = pytest.mark.xdist_group("denoise-trained")


@pytest.fixture(scope="module")
def trained():
    """A classifier trained on clean data and a denoiser trained noisy -> clean: small, real."""
    keras.utils.set_random_seed(0)
    arrays = learnable_mnist(3000, 600, seed=3)
    clf_cfg = trial_config({"arch": "mlp64"}, {})
    data = classifier_data(clf_cfg, arrays)
    classifier = compiled_model(clf_cfg, (28, 28, 1), 10)
    classifier.fit(*data["train"], batch_size=128, epochs=3, verbose=0)
    cfg = denoise_config()
    pairs = plain_keras.denoise_data(cfg, arrays)
    denoiser = denoise.denoiser(cfg)
    denoiser.compile(optimizer=keras.optimizers.Adam(3e-3), loss="binary_crossentropy")
    denoiser.fit(*pairs["train"], batch_size=64, epochs=10, verbose=0)
    return arrays, classifier, denoiser, cfg


def test_training_pairs_are_noisy_inputs_and_clean_targets():
    arrays = learnable_mnist(50, 20)
    cfg = denoise_config(train_subset=40, seed=7)
    data = plain_keras.denoise_data(cfg, arrays)
    (x, y), (vx, vy) = data["train"], data["val"]
    assert x.shape == y.shape == (40, 28, 28, 1) and vx.shape == vy.shape == (20, 28, 28, 1)
    np.testing.assert_array_equal(y[..., 0], to_unit_float(arrays["x_train"][:40]))
    expected = noisy_split(arrays["x_train"][:40], "train", seed=7, noise_type="salt_and_pepper", noise_scale=0.4)
    np.testing.assert_array_equal(x[..., 0], expected)
    # validation: the test set at the training level, against the clean test set
    assert 0.3 < np.mean(vx != vy) < 0.5


@ONE_PROCESS
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


@ONE_PROCESS
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
    whole = plain_keras.denoise_data(denoise_config(train_subset=40, seed=7), arrays)["train"]
    data = plain_keras.denoise_data(denoise_config(train_subset=40, seed=7, validation="holdout", holdout_size=10), arrays)
    for split, part in (("train", slice(None, 30)), ("val", slice(30, None))):
        for got, want in zip(data[split], whole):
            np.testing.assert_array_equal(got, want[part])


def test_the_engine_feeds_the_pairs_a_notebook_makes():
    """The batches (sweeps.training.feeds) of a denoiser: its noisy images in both splits and the
    clean ones as targets, exactly plain_keras.denoise_data's numpy pairs."""
    import tensorflow as tf

    from sweeps.training.pack import Pack

    arrays = learnable_mnist(60, 30)
    cfg = denoise_config(train_subset=60, test_subset=30, seed=5, classifier=None)
    pack = Pack([cfg], arrays)
    pairs = plain_keras.denoise_data(cfg, arrays)
    for feed, (x, clean) in ((pack.engine.train, pairs["train"]), (pack.engine._feed("test"), pairs["val"])):
        idx = tf.constant(np.arange(len(x), dtype=np.int32)[None])
        np.testing.assert_array_equal(feed.inputs(idx).numpy()[0], x)
        np.testing.assert_array_equal(feed.clean(idx).numpy(), clean)


def test_binary_accuracy_is_the_share_of_pixels_the_thresholded_output_gets_exactly():
    """Seed 002's metric, by hand: a clean pixel counts only where it is exactly 0 or 1 and
    the output falls on its side of 0.5. The engine's validation figures are those of the
    member's Keras model on plain_keras.denoise_data's pairs."""
    arrays = learnable_mnist(300, 100, seed=2)
    cfg = denoise_config(arch="dae_conv", classifier=None, activation="softmax", train_subset=300, epochs=1,
                         batch_size=32)
    pack, _ = train([cfg], arrays)
    x, clean = plain_keras.denoise_data(cfg, arrays)["val"]
    out = pack.member_model(0).predict(x, verbose=0)
    by_hand = np.mean((out > 0.5).astype(np.float32) == clean)
    row = pack.ledger.rows[0][-1]
    assert row["val_binary_accuracy"] == pytest.approx(by_hand, abs=1e-6)
    bce = -np.mean(clean * np.log(np.clip(out, 1e-7, 1 - 1e-7)) + (1 - clean) * np.log(np.clip(1 - out, 1e-7, 1 - 1e-7)))
    assert row["val_loss"] == pytest.approx(bce, rel=1e-4)
    assert 0 < by_hand <= np.mean((clean == 0) | (clean == 1)) < 1  # a grey clean pixel never counts


def vae_members(arch, seeds, **kw):
    base = {"arch": arch, "noise_type": "gaussian", "noise_scale": 0.5, "noise_clip": True, "epochs": 3,
            "train_subset": 400, "test_subset": 200, "batch_size": 50, "classifier": None, "eval_levels": [0, 0.5]}
    return [trial_config({**base, "seed": s, "l2": l2, **kw}, {}) for s, l2 in seeds]


@pytest.mark.parametrize("arch", ["dae_dense", "vae", "bn_denoiser"])
def test_a_denoiser_packs_and_trains_as_alone(arch):
    """Seed 001's dense denoiser, seed 004's VAE (its KL term and sampling draws included)
    and a conv denoiser of one's own with BatchNormalization (tests/user_models.py), two
    members of other seeds and L2 factors packed: each starts from its solo trial's
    weights, and every epoch's rows and its evaluation at the end are the solo run's."""
    import tests.user_models  # noqa: F401  (registers bn_denoiser)

    arrays = learnable_mnist(400, 200)
    configs = vae_members(arch, [(0, 0.0), (1, 0.001)])
    packed, packed_weights = train(configs, arrays)
    ends = packed.finish()
    for i, config in enumerate(configs):
        solo, solo_weights = train([config], arrays)
        for a, b in zip(packed_weights[0][i], solo_weights[0][0]):
            np.testing.assert_array_equal(a, b)
        assert len(packed.ledger.rows[i]) == len(solo.ledger.rows[0]) == 3
        for p, s in zip(packed.ledger.rows[i], solo.ledger.rows[0]):
            for key in ("binary_accuracy", "val_binary_accuracy"):
                assert abs(p[key] - s[key]) <= 2e-3, (i, key, p, s)
            for key in ("loss", "val_loss"):
                assert p[key] == pytest.approx(s[key], rel=0.01), (i, key, p, s)
        (alone,) = solo.finish()
        for p, s in zip(ends[i].artifacts["evaluation.json"]["levels"], alone.artifacts["evaluation.json"]["levels"]):
            assert p["denoised_mse"] == pytest.approx(s["denoised_mse"], rel=0.01)
    # The members learnt, each its own way.
    assert packed.ledger.rows[0][-1]["loss"] < packed.ledger.rows[0][0]["loss"] and packed.ledger.rows[0][-1] != packed.ledger.rows[1][-1]


@pytest.mark.parametrize("arch", ["dae_dense", "dae_conv"])
def test_a_denoiser_of_colour_images_packs_and_keeps_their_colour(tmp_path, arch):
    """32 x 32 x 3 images: the built-in denoisers take their shape, a pack of two learns,
    and the saved samples and the strips figure hold the images in colour."""
    import matplotlib

    matplotlib.use("Agg")
    from analysis.denoise_figures import _strips

    arrays = learnable_colour(300, 100)
    configs = vae_members(arch, [(0, 0.0), (1, 0.001)], noise_clip=False, epochs=2, batch_size=32)
    packed, _ = train(configs, arrays)
    assert packed.ledger.rows[0][-1]["loss"] < packed.ledger.rows[0][0]["loss"]
    samples = packed.finish()[0].artifacts["samples.npz"]
    n = len(samples["indices"])
    assert samples["original"].shape == (n, 32, 32, 3) and samples["noisy"].shape == (2, n, 32, 32, 3)
    np.testing.assert_array_equal(samples["original"], arrays["x_test"][samples["indices"]])
    assert samples["denoised"].shape == (2, n, 32, 32, 3)
    # Three channels of their own (a grey output, or one channel kept, would have them equal).
    denoised = samples["denoised"][0].astype(float)
    assert np.ptp(denoised, axis=-1).mean() > 1
    fig = _strips(samples, arch)
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (32, 32, 3)


@pytest.mark.parametrize("arch", ["vae", "dae_small"])
def test_a_trial_restarted_from_its_checkpoint_trains_as_if_never_stopped(tmp_path, arch):
    """A pack saved after epoch 2 and restored into a new one ends with the weights of an
    uninterrupted run: each epoch's order and the VAE's sampling draws come from (seed,
    step), not from streams that start again from the seed when a trial restarts."""
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(400, 100)
    configs = vae_members(arch, [(3, 0.0)], epochs=4, test_subset=100)
    whole, weights = train(configs, arrays)
    first, _ = train(configs, arrays, epochs=2)
    first.save(str(tmp_path))
    resumed = Pack(configs, arrays)
    resumed.restore(str(tmp_path))
    while not resumed.done:
        loop.epoch(resumed)
    for a, b in zip(weights[-1][0], resumed.engine.member_weights(0)):
        np.testing.assert_array_equal(a, b)
    assert [r["loss"] for r in resumed.ledger.rows[0]] == [r["loss"] for r in whole.ledger.rows[0]]


@pytest.mark.parametrize("arch", ["vae", "dae_small"])
def test_a_checkpoint_from_keras_fit_continues_in_the_engine(tmp_path, arch):
    """A denoiser trial of an experiment from before the engine (its checkpoint a compiled
    `model.keras` and `state.json`) continues as a pack of one from its weights and its
    optimizer's state."""
    from sweeps.optimizers import make_optimizer
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(400, 100)
    (config,) = vae_members(arch, [(3, 0.0)], test_subset=100)
    keras.utils.set_random_seed(config["seed"])
    options = {"latent_dim": config["latent_dim"]} if arch == "vae" else {}
    model = denoise.denoiser(config, **options)
    loss = vae_task.training([config], arrays).loss if arch == "vae" else config["loss_fn"]
    model.compile(optimizer=make_optimizer(config), loss=loss)
    model.fit(*plain_keras.denoise_data(config, arrays)["train"], batch_size=50, epochs=1, verbose=0)
    model.save(str(tmp_path / "model.keras"))
    (tmp_path / "state.json").write_text('{"epochs_done": 1}')
    pack = Pack([config], arrays)
    pack.restore(str(tmp_path))
    assert pack.ledger.epochs_done == 1
    for a, b in zip(pack.engine.member_weights(0), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(pack.engine.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(np.reshape(a.numpy(), np.shape(b)), np.asarray(b))
    while not pack.done:
        loop.epoch(pack)
    assert [r["epoch"] for r in pack.ledger.rows[0]] == [2, 3] and all(np.isfinite(r["val_loss"]) for r in pack.ledger.rows[0])


@ONE_PROCESS
def test_a_denoiser_is_scored_under_test_noise_and_corruptions_by_its_reconstruction_and_its_judge(trained):
    """A denoiser's scores under a grid's evaluate: conditions: its reconstruction of the
    clean originals and its reference classifier on the noisy and the denoised images,
    computed here by hand from its final weights on arrays made with sweeps.noise and
    sweeps.corruptions."""
    from sweeps.corruptions import corrupt
    from sweeps.modelfile import model_to_bytes
    from sweeps.training.pack import Pack

    arrays, classifier, _, _ = trained
    cfg = denoise_config(epochs=2, train_subset=1000, evaluate={"salt_and_pepper": [0.5], "shot_noise": [3]})
    references = {key: model_to_bytes(classifier) for key in denoise.references(cfg)}
    pack = Pack([cfg], arrays, references)
    loop.train(pack)
    rows = pack.ledger.robustness[0]
    assert [(r["condition"], r["severity"]) for r in rows] == [("clean", 0), ("salt_and_pepper", 0.5),
                                                                ("shot_noise", 3)]
    model = pack.member_model(0)
    clean = to_unit_float(arrays["x_test"])[..., None]
    inputs = [clean, noisy_split(arrays["x_test"], "test", seed=0, noise_type="salt_and_pepper", noise_scale=0.5,
                                 noise_target="test")[..., None],
              to_unit_float(corrupt(arrays["x_test"], "shot_noise", 3, seed=0))[..., None]]
    for row, x in zip(rows, inputs):
        denoised = model.predict(x, verbose=0)
        assert row["noisy_mse"] == pytest.approx(np.mean((x - clean) ** 2), rel=1e-6)
        assert row["denoised_mse"] == pytest.approx(np.mean((denoised - clean) ** 2), rel=1e-5)
        seasoned = np.mean(np.argmax(classifier.predict(x, verbose=0), -1) == arrays["y_test"])
        denoised_accuracy = np.mean(np.argmax(classifier.predict(denoised, verbose=0), -1) == arrays["y_test"])
        assert row["seasoned_accuracy"] == pytest.approx(seasoned)
        assert row["denoised_accuracy"] == pytest.approx(denoised_accuracy, abs=2 / len(x))
        loss = np.mean(keras.losses.binary_crossentropy(clean, denoised))
        assert row["loss"] == pytest.approx(float(loss), rel=1e-4) and row.get("accuracy") is None
    assert rows[1]["noisy_mse"] > rows[0]["noisy_mse"] == 0
