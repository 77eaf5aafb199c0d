"""Any Keras model packs by vectorising its own call (models.vectorized): models with
BatchNormalization, a residual Add and dropout of their own train packed as alone, as
Keras's own fit trains them, and restart from a checkpoint as if never stopped.

Real Keras/TensorFlow training on small generated data, no Ray (tests/test_user_models.py
runs them through the runner).
"""

import numpy as np
import pytest

import tests.user_models  # noqa: F401  (registers the models)
from sweeps.grids import trial_config
from tests.packs import check_pack_of_one_against_fit, train
from tests.synthetic import learnable_mnist
from sweeps.training import loop

# Deterministic ops, as in a trial (sweeps.training.trainable.configure_tensorflow).
pytestmark = pytest.mark.usefixtures("deterministic_ops")


def members(arch, seeds=(0, 1, 2), l2s=(0.0, 0.001, 0.0), **kw):
    base = {"arch": arch, "epochs": 3, "train_subset": 600, "test_subset": 1000, "noise_type": "gaussian",
            "noise_scale": 0.2, **kw}
    return [trial_config({**base, "seed": s, "l2": l2}, {}) for s, l2 in zip(seeds, l2s)]


@pytest.mark.parametrize("arch, l2s", [
    ("bn_resnet", (0.0, 0.001)),  # a member with no regulariser beside one with
    ("bn_mlp", (0.0001, 0.001)),  # the solo runs share one compiled step: faster
])
def test_a_model_of_ones_own_packs_and_trains_as_alone(arch, l2s):
    import keras

    from models import build_model
    from models.vectorized import VectorizedNet

    arrays = learnable_mnist(600, 1000)
    configs = members(arch, seeds=(0, 1), l2s=l2s)
    packed, packed_weights = train(configs, arrays)
    assert isinstance(packed.engine.net, VectorizedNet)
    for i, config in enumerate(configs):
        solo, solo_weights = train([config], arrays)
        keras.utils.set_random_seed(config["seed"])
        own = build_model(arch, config["l2"], (28, 28, 1), num_classes=10).get_weights()
        assert len(own) == len(packed_weights[0][i])
        for a, b, c in zip(packed_weights[0][i], solo_weights[0][0], own):
            np.testing.assert_array_equal(a, b)  # the weights its solo trial starts from...
            np.testing.assert_array_equal(a, c)  # ...which are its builder's under its seed
        assert len(packed.ledger.rows[i]) == len(solo.ledger.rows[0]) == 3
        for p, s in zip(packed.ledger.rows[i], solo.ledger.rows[0]):
            assert abs(p["val_accuracy"] - s["val_accuracy"]) <= 2e-3, (i, p, s)
            for key in ("loss", "val_loss"):
                assert p[key] == pytest.approx(s[key], rel=0.01), (i, key, p, s)
        # BatchNormalization's moving statistics are the member's own, as alone.
        for a, b in zip(packed.engine.net.state, solo.engine.net.state):
            np.testing.assert_allclose(a.numpy()[i], b.numpy()[0], rtol=0.05, atol=1e-3)
        del solo  # the next solo pack trains in its compiled step (sweeps.training.engine)
    finals = [rows[-1]["loss"] for rows in packed.ledger.rows]
    assert len(set(finals)) == 2  # other seeds, other L2 factors, other numbers
    means = [v for v in packed.engine.net.state if v.path.endswith("moving_mean")]
    assert means and not np.array_equal(means[0].numpy()[0], means[0].numpy()[1])


def test_a_pack_of_one_trains_as_keras_fit_on_the_same_batches():
    """BatchNormalization (batch statistics in training, moving ones in validation) and an
    L2 penalty, as Keras's own fit computes them: same batches, same noisy images."""
    import keras

    from models import build_model

    arrays = learnable_mnist(500, 200)
    config = members("bn_plain", seeds=(0,), l2s=(0.001,), train_subset=500, test_subset=200,
                     optimizer="sgd", lr=0.05, momentum=0.9)[0]
    pack, _ = train([config], arrays)
    keras.utils.set_random_seed(config["seed"])
    model = build_model("bn_plain", config["l2"], (28, 28, 1), num_classes=10)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # 500 images in batches of 64: the last has 52, as in the pack (never padded there).
    check_pack_of_one_against_fit(pack, model, config, arrays)
    for a, b in zip(pack.engine.member_weights(0), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)  # moving statistics included


def test_a_checkpointed_pack_of_a_bn_model_continues_as_if_never_stopped(tmp_path):
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(400, 200)
    configs = members("bn_mlp", seeds=(0, 1), l2s=(0.0, 0.001))
    whole = train(configs, arrays)[0].ledger.rows
    first, _ = train(configs, arrays, epochs=1)
    first.save(str(tmp_path))
    saved = [v.numpy() for v in first.engine.net.state]
    del first  # a restart is a new pack (here in the kept compiled step)
    resumed = Pack(configs, arrays)
    resumed.restore(str(tmp_path))
    for a, b in zip(resumed.engine.net.state, saved):
        np.testing.assert_array_equal(a.numpy(), b)  # BatchNormalization's statistics kept
    while not resumed.done:
        loop.epoch(resumed)
    for a, b in zip(whole, resumed.ledger.rows):
        assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)
        assert [r["val_accuracy"] for r in a] == [r["val_accuracy"] for r in b]


def test_a_member_that_stops_early_keeps_its_weights_and_statistics():
    arrays = learnable_mnist(400, 200)
    going, stopping = members("bn_mlp", seeds=(0, 1), l2s=(0.0, 0.0))
    stopping = {**stopping, "patience": 1, "min_delta": 1e9}  # stops after its 2nd epoch
    pack, weights = train([going, stopping], arrays)
    assert [len(r) for r in pack.ledger.rows] == [3, 2] and pack.ledger.rows[1][-1]["stopped"]
    for before, after in zip(weights[2][1], weights[3][1]):
        np.testing.assert_array_equal(after, before)  # moving statistics included
    assert any(not np.array_equal(a, b) for a, b in zip(weights[2][0], weights[3][0]))


def test_each_members_penalty_is_its_own_models_regularisation_loss():
    """Members of one pack differ in their regularisers' factors; the template's own are
    not what a member pays. Kernel L2, bias L1, L1L2 and an activity regulariser."""
    import keras
    import tensorflow as tf

    from models.packed import PackError
    from models.vectorized import VectorizedNet

    def build(seed, l2, l1):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([
            keras.Input((6,)),
            keras.layers.Dense(5, kernel_regularizer=keras.regularizers.l2(l2) if l2 else None,
                               bias_regularizer=keras.regularizers.l1(l1)),
            keras.layers.Dense(3, kernel_regularizer=keras.regularizers.l1_l2(l1, l2),
                               activity_regularizer=keras.regularizers.l2(0.01)),
        ])

    settings = [(0, 0.0, 0.1), (1, 0.01, 0.2), (2, 0.5, 0.0)]
    models = [build(*s) for s in settings]
    x = np.random.default_rng(0).random((3, 4, 6), dtype=np.float32)
    expected = []
    for m, xm in zip(models, x):
        m(xm)  # activity losses of this batch
        expected.append(float(sum(m.losses)))
    net = VectorizedNet([build(*s) for s in settings])
    _, added, _ = net.forward(tf.constant(x), training=False)
    got = net.penalty().numpy() + added.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert not net.pads and not net.pads_scoring  # an activity loss is a mean over the batch

    # An activity regulariser is part of the model's structure: members may not differ in it.
    other = build(3, 0.0, 0.1)
    other.layers[1].activity_regularizer = keras.regularizers.l2(0.5)
    with pytest.raises(PackError, match="members differ in its configuration"):
        VectorizedNet([build(0, 0.0, 0.1), other])


def test_dropout_masks_are_each_members_own_and_differ_between_layers_and_steps():
    """A member's draws come from (its seed, generator, step) alone: packed or alone, the same
    mask; two dropout layers of one shape, or one layer at two steps, never the same."""
    import keras
    import tensorflow as tf

    from models.vectorized import VectorizedNet

    def build():
        inputs = keras.Input((2000,))
        return keras.Model(inputs, [keras.layers.Dropout(0.5)(inputs) + 2 * keras.layers.Dropout(0.5)(inputs)][0])

    x = tf.ones([3, 1, 2000])
    seeds = tf.constant([7, 8, 9], tf.int64)
    pack = VectorizedNet([build() for _ in range(3)])

    def masks(net, xs, sd, step):
        out = net.forward(xs, True, sd, tf.constant(step))[0].numpy() * 0.5  # kept: 1 (first), 2 (second)
        return np.isin(out, (1, 3)), np.isin(out, (2, 3))

    first, second = masks(pack, x, seeds, 4)
    assert 0.45 < first.mean() < 0.55 and 0.45 < second.mean() < 0.55
    assert 0.45 < (first == second).mean() < 0.55  # two layers: independent masks
    later, _ = masks(pack, x, seeds, 5)
    assert 0.45 < (first == later).mean() < 0.55  # another step: another mask
    _, second_before = masks(pack, x, seeds, 3)
    assert 0.45 < (first == second_before).mean() < 0.55  # not the next generator's, one step apart
    assert 0.45 < (first[0] == first[1]).mean() < 0.55  # members: their own masks
    alone = VectorizedNet([build()])
    for m in range(3):
        a, b = masks(alone, x[m:m + 1], seeds[m:m + 1], 4)
        np.testing.assert_array_equal(a[0], first[m])  # the same mask packed or alone
        np.testing.assert_array_equal(b[0], second[m])


def test_a_vectorised_conv_net_computes_what_its_members_compute_one_by_one():
    """A GPU runs a pack of conv nets vectorised; a CPU calls its members one by one. Both
    are the same network and the same gradients, up to float rounding."""
    import keras
    import tensorflow as tf

    from models import build_model
    from models.vectorized import VectorizedNet

    def members():
        out = []
        for seed in (0, 1, 2):
            keras.utils.set_random_seed(seed)
            out.append(build_model("bn_resnet", 0.001 * seed, (28, 28, 1), num_classes=10))
        return out

    x = tf.random.stateless_uniform([3, 16, 28, 28, 1], (0, 1))
    y = tf.constant(np.random.default_rng(0).integers(0, 10, (3, 16)))
    seeds = tf.constant([0, 1, 2], tf.int64)
    loss = keras.losses.get("sparse_categorical_crossentropy")
    results = []
    for vectorize in (True, False):
        net = VectorizedNet(members(), vectorize=vectorize)
        with tf.GradientTape() as tape:
            out, added, state = net.forward(x, True, seeds, tf.constant(3))
            total = tf.reduce_sum(tf.reduce_mean(loss(y, out), axis=1) + net.penalty() + added)
        grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(total, net.variables)]
        results.append((out.numpy(), [s.numpy() for s in state], grads))
    (out_v, state_v, grads_v), (out_1, state_1, grads_1) = results
    np.testing.assert_allclose(out_v, out_1, rtol=1e-5, atol=1e-6)
    for a, b in zip(state_v, state_1):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # A conv bias before BatchNormalization has no gradient but rounding: judged on the scale
    # of the gradients as a whole.
    scale = max(np.abs(g).max() for g in grads_1)
    for a, b in zip(grads_v, grads_1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)
