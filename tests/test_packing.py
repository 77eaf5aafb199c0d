"""Packed trials: K configs trained as one vectorised model, each member exactly as alone.

Real Keras/TensorFlow training on small generated data, no Ray (the runner's packed
sweeps are in tests/test_pack_sweep.py).
"""

import math

import numpy as np
import pytest

from sweeps import packing
from sweeps.grids import trial_config
from tests.packs import check_pack_of_one_against_fit, train
from tests.synthetic import learnable_mnist
from sweeps.training import loop

# Deterministic ops, as in a trial (sweeps.training.trainable.configure_tensorflow).
pytestmark = pytest.mark.usefixtures("deterministic_ops")


def members(arch, **kw):
    """Two seeds x two L2 factors, Gaussian noise: what a replicate/L2 study packs."""
    base = {"arch": arch, "epochs": 3, "train_subset": 600, "test_subset": 1000, "noise_type": "gaussian",
            "noise_scale": 0.2, "batch_size": 64, **kw}
    return [trial_config({**base, "seed": s, "l2": l2}, {}) for s in (0, 1) for l2 in (0.0, 0.001)]


@pytest.mark.parametrize("arch", ["mlp64", "cnn"])
def test_packed_members_start_and_train_as_their_solo_trials(arch):
    import keras

    from models import build_model

    arrays = learnable_mnist(600, 1000)  # 1,000 validation images: one of them is 1e-3
    configs = members(arch)
    packed, packed_weights = train(configs, arrays)
    for i, config in enumerate(configs):
        solo, solo_weights = train([config], arrays)
        keras.utils.set_random_seed(config["seed"])
        keras_initial = build_model(arch, config["l2"], (28, 28, 1), num_classes=10).get_weights()
        for a, b, c in zip(packed_weights[0][i], solo_weights[0][0], keras_initial):
            np.testing.assert_array_equal(a, b)  # the weights its solo trial starts from...
            np.testing.assert_array_equal(a, c)  # ...which are the registry model's under its seed
        # After an epoch, the same weights up to float rounding (a pack sums in another order):
        # a wrong batch, noise draw, dropout mask or penalty moves them far more than 1e-5.
        for a, b in zip(packed_weights[1][i], solo_weights[1][0]):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5 * np.abs(b).max(), err_msg=f"member {i}")
        assert len(packed.ledger.rows[i]) == len(solo.ledger.rows[0]) == 3
        first, *later = zip(packed.ledger.rows[i], solo.ledger.rows[0])
        assert abs(first[0]["val_accuracy"] - first[1]["val_accuracy"]) <= 2e-3, (i, first)
        for key in ("loss", "val_loss"):
            assert first[0][key] == pytest.approx(first[1][key], rel=1e-4), (i, key, first)
        for p, s in later:
            # Later epochs agree only as closely as training itself allows: a solo cnn trial
            # whose weights are perturbed by 1e-7 (relative) ends the next epoch with some
            # weights 5-9 % apart (a max-pool or ReLU flips), and packed and solo members here
            # end 12 of 1,000 validation images and 4 % of val_loss apart (measured 2026-11-29).
            assert abs(p["val_accuracy"] - s["val_accuracy"]) <= 0.03, (i, p, s)
            assert p["loss"] == pytest.approx(s["loss"], rel=0.01), (i, p, s)
            assert p["val_loss"] == pytest.approx(s["val_loss"], rel=0.15), (i, p, s)
    # The members really differ: other seeds, other L2 factors, other numbers.
    finals = [rows[-1]["loss"] for rows in packed.ledger.rows]
    assert len(set(finals)) == 4
    assert packed.ledger.rows[1][-1]["loss"] > packed.ledger.rows[0][-1]["loss"]  # the L2 penalty is in the loss


@pytest.mark.parametrize("optimizer", [
    {},
    # Momentum, Nesterov's and a schedule that changes the rate every step (sweeps.optimizers).
    {"momentum": 0.9, "nesterov": True, "lr_schedule": "cosine"},
    {"momentum": 0.5, "lr_schedule": "step", "lr_decay_epochs": 1, "lr_decay_factor": 0.5},
], ids=["sgd", "nesterov-cosine", "momentum-step"])
def test_a_pack_of_one_trains_as_plain_keras_fit_on_the_same_batches(optimizer):
    """The solo path (a pack of one) is Keras's own training: same initial weights, same
    batches in the same order, same noisy images, same loss and optimizer."""
    import keras

    from models import build_model

    arrays = learnable_mnist(500, 200)
    config = {**members("mlp64", l2=0.0)[1], **optimizer}  # seed 0, L2 1e-3
    config["train_subset"], config["test_subset"] = 500, 200
    pack, _ = train([config], arrays)

    keras.utils.set_random_seed(config["seed"])
    model = build_model("mlp64", config["l2"], (28, 28, 1), num_classes=10)
    sgd = keras.optimizers.SGD(config["lr"], momentum=optimizer.get("momentum", 0.0),
                               nesterov=optimizer.get("nesterov", False))
    steps = 8  # 500 images in batches of 64
    if optimizer.get("lr_schedule") == "cosine":
        sgd.learning_rate = keras.optimizers.schedules.CosineDecay(config["lr"], 3 * steps)
    elif optimizer.get("lr_schedule") == "step":
        sgd.learning_rate = keras.optimizers.schedules.ExponentialDecay(config["lr"], steps, 0.5, staircase=True)
    model.compile(optimizer=sgd, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    check_pack_of_one_against_fit(pack, model, config, arrays)


def test_a_diverging_member_is_frozen_and_the_others_train_as_alone():
    arrays = learnable_mnist(600, 300)
    healthy, exploding = members("mlp64")[0], {**members("mlp64")[1], "l2": 1e4}
    packed, _ = train([healthy, exploding], arrays)
    solo, _ = train([healthy], arrays)
    assert packed.ledger.diverged == [False, True]
    bad = packed.ledger.rows[1]
    assert bad[-1]["diverged"] and not math.isfinite(bad[-1]["loss"])
    assert len(bad) < 3 and all(not r["diverged"] for r in bad[:-1])  # no rows after it diverged
    assert [r["loss"] for r in packed.ledger.rows[0]] == pytest.approx([r["loss"] for r in solo.ledger.rows[0]], rel=1e-5)
    assert [r["val_accuracy"] for r in packed.ledger.rows[0]] == pytest.approx(
        [r["val_accuracy"] for r in solo.ledger.rows[0]], abs=1e-6)
    assert all(np.isfinite(w).all() for w in packed.engine.member_weights(0))


@pytest.mark.parametrize("optimizer", [
    {"optimizer": "sgd", "lr": 0.05, "momentum": 0.9}, {"optimizer": "adam", "lr": 0.001},
    {"optimizer": "nadam", "lr": 0.001}, {"optimizer": "rmsprop", "lr": 0.001},
    {"optimizer": "adadelta", "lr": 1.0}, {"optimizer": "adagrad", "lr": 0.01},
], ids=lambda o: o["optimizer"])
def test_a_member_that_stops_early_keeps_its_weights_while_the_others_train(optimizer):
    """A frozen member's gradient is zero, but momentum and Adam's moments would go on
    moving its weights: they must stay as they were at its last epoch."""
    arrays = learnable_mnist(400, 200)
    going, stopping = members("mlp64", **optimizer)[:2]
    stopping = {**stopping, "patience": 1, "min_delta": 1e9}  # no epoch improves: stops after its 2nd
    pack, weights = train([going, stopping], arrays)
    assert [len(r) for r in pack.ledger.rows] == [3, 2] and pack.ledger.rows[1][-1]["stopped"]
    for before, after in zip(weights[2][1], weights[3][1]):
        np.testing.assert_array_equal(after, before)
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2][0], weights[3][0]))


def test_a_checkpointed_pack_continues_as_if_never_stopped(tmp_path):
    arrays = learnable_mnist(400, 200)
    configs = members("mlp64", optimizer="adam", lr=0.001)
    whole, _ = train(configs, arrays)
    first, _ = train(configs, arrays, epochs=1)
    first.save(str(tmp_path))
    from sweeps.training.pack import Pack

    resumed = Pack(configs, arrays)
    resumed.restore(str(tmp_path))
    assert resumed.ledger.epochs_done == 1 and [len(r) for r in resumed.ledger.rows] == [1] * 4
    while not resumed.done:
        loop.epoch(resumed)
    for a, b in zip(whole.ledger.rows, resumed.ledger.rows):
        assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)


def test_holdout_members_score_the_test_split_once_at_the_end():
    arrays = learnable_mnist(600, 300)
    configs = members("mlp64", validation="holdout", holdout_size=100)
    pack, _ = train(configs, arrays)
    assert pack.spec.n_train == 500 and pack.spec.validation() == ("train", 500, 600)
    final = [outcome.metrics for outcome in pack.finish()]
    assert all(set(f) == {"test_loss", "test_accuracy"} for f in final)
    assert all(0.0 <= f["test_accuracy"] <= 1.0 for f in final)


def test_plan_groups_what_can_share_a_model_and_splits_groups_evenly():
    grid = [trial_config({"arch": "mlp64", "seed": s, "l2": l2, "noise_type": nt, "noise_scale": 0.1 * (nt != "none")}, {})
            for s in range(3) for l2 in (0.0, 1e-3) for nt in ("none", "gaussian")]  # 12: one group
    grid.append(trial_config({"arch": "mlp64", "lr": 0.01}, {}))  # another learning rate: alone
    grid.append(trial_config({"arch": "cnn"}, {}))  # another architecture
    grid.append(trial_config({"arch": "dae_dense", "noise_type": "gaussian", "noise_scale": 0.2}, {}))  # another task
    assert packing.plan(grid, 1) == [[i] for i in range(15)]
    assert [len(p) for p in packing.plan(grid, 5)] == [4, 4, 4, 1, 1, 1]  # ceil(12/5) = 3 even packs
    assert sorted(i for p in packing.plan(grid, 5) for i in p) == list(range(15))
    auto = packing.plan(grid, None, slots=1, slot_bytes=1e12)
    assert auto == [list(range(6)), list(range(6, 12)), [12], [13], [14]]  # mlp64: 8 a pack on a CPU; cnn alone
    assert packing.plan(grid, None, slots=1, gpu=True, slot_bytes=1e12)[0] == list(range(12))
    assert [len(p) for p in packing.plan(grid[:3], None, slots=2, slot_bytes=1e12)] == [2, 1]  # both slots busy
    # A pack's noise draws must fit: 2 bytes per pixel of 70,000 images is 110 MB a member.
    small = packing.plan(grid[:12], None, slots=1, slot_bytes=4 * 3 * 110e6)
    assert [len(p) for p in small] == [3, 3, 3, 3]
    assert packing.parse("auto") is None and packing.parse("3") == 3
    for bad in ("0", "-2", "many"):
        with pytest.raises(packing.PackingError, match="--pack"):
            packing.parse(bad)


def test_interleaved_order_starts_every_cells_first_seed_before_any_second():
    # 2 archs x 2 L2 x 3 seeds, declared seed-innermost; the cnn cells never pack on a CPU.
    grid = [trial_config({"arch": a, "l2": l2, "seed": s}, {}) for a in ("mlp64", "cnn") for l2 in (0.0, 1e-3)
            for s in range(3)]
    order = packing.interleaved(grid)
    assert [(grid[i]["seed"], i) for i in order] == sorted((grid[i]["seed"], i) for i in range(12))
    assert sorted(order) == list(range(12))
    # Packs of 2 hold one seed rank each, in start order.
    assert packing.plan(grid, 2, order=order) == [[0, 3], [6, 9], [1, 4], [7, 10], [2, 5], [8, 11]]
    assert packing.plan(grid, 2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]  # --order grid
    # auto on a CPU: mlp64's six in one pack, the cnn configs alone, seed 0's before seed 1's.
    auto = packing.plan(grid, None, slots=1, slot_bytes=1e12, order=order)
    assert auto == [[0, 3, 1, 4, 2, 5], [6], [9], [7], [10], [8], [11]]


def test_layers_a_pack_cannot_hold_are_named():
    import keras

    from models.packed import PackError, PackedNet

    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.BatchNormalization(), keras.layers.Dense(10)])
    with pytest.raises(PackError, match="BatchNormalization"):
        PackedNet([model, model])


def test_dropout_masks_of_different_layers_and_steps_are_independent():
    """A member's step seed is (its seed, step counter); layer 4 at step 3 and layer 7 at
    step 0 must not draw the same mask."""
    import tensorflow as tf

    from models.packed import _dropout

    x = tf.ones([1, 64, 1000])
    kept = [_dropout(x, 0.5, False, 1000, 1, tf.constant([[7, step]], tf.int32), layer).numpy() > 0
            for step, layer in ((3, 4), (0, 7))]
    assert 0.45 < kept[0].mean() < 0.55
    assert 0.45 < (kept[0] == kept[1]).mean() < 0.55  # agree as two independent masks do


def test_grouped_and_per_member_convolutions_compute_the_same_pack():
    """A GPU or XLA runs a pack's convolutions as one grouped convolution; TensorFlow's CPU
    kernels run one per member. Both are the same network."""
    import keras
    import tensorflow as tf

    from models import build_model
    from models.packed import PackedNet

    models = []
    for seed in (0, 1, 2):
        keras.utils.set_random_seed(seed)
        models.append(build_model("cnn", 0.0, (28, 28, 1), num_classes=10))
    x = tf.random.stateless_uniform([3, 16, 28, 28, 1], (0, 1))
    grouped = tf.function(PackedNet(models, grouped=True).__call__, jit_compile=True)(x)
    alone = PackedNet(models, grouped=False)(x)
    np.testing.assert_allclose(grouped.numpy(), alone.numpy(), rtol=1e-4, atol=1e-6)
    for k, model in enumerate(models):  # and each member is its own Keras model
        np.testing.assert_allclose(alone[k].numpy(), model(x[k]).numpy(), rtol=1e-4, atol=1e-6)


def test_learning_rate_schedules_by_hand():
    """Cosine: lr·(1 + cos(pi·t/T))/2 over the run's T steps; step: lr·factor^floor(t/every)."""
    from sweeps.optimizers import make_optimizer

    config = {"optimizer": "sgd", "lr": 0.1, "epochs": 4, "momentum": 0.9}
    cosine = make_optimizer({**config, "lr_schedule": "cosine"}, steps_per_epoch=10)

    def rate(optimizer, step):
        optimizer.iterations.assign(step)
        return float(optimizer.learning_rate)

    for step, want in ((0, 0.1), (20, 0.05), (10, 0.1 * (1 + math.cos(math.pi / 4)) / 2), (40, 0.0)):
        assert rate(cosine, step) == pytest.approx(want, abs=1e-7), step
    assert float(cosine.momentum) == pytest.approx(0.9)
    step = make_optimizer({**config, "lr_schedule": "step", "lr_decay_epochs": 2, "lr_decay_factor": 0.5}, 10)
    assert [rate(step, t) for t in (0, 19, 20, 39, 40)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    with pytest.raises(ValueError, match="needs the training steps per epoch"):
        make_optimizer({**config, "lr_schedule": "cosine"})
