"""A worker keeps its compiled pack step from pack to pack (sweeps.training.engine): the next
pack of the same shape trains in it exactly as in a step of its own, and compiles nothing.

Real Keras/TensorFlow training on small generated data, no Ray.
"""

import numpy as np
import pytest

from sweeps.grids import trial_config
from sweeps.training import loop, worker
from sweeps.training.engine import flattened
from tests.synthetic import learnable_mnist

# Deterministic ops, as in a trial (sweeps.training.trainable.configure_tensorflow).
pytestmark = pytest.mark.usefixtures("deterministic_ops")


def configs(seeds, l2s, scale, validation):
    base = {"arch": "mlp64", "epochs": 2, "train_subset": 500, "test_subset": 300, "noise_type": "gaussian",
            "noise_scale": scale, "batch_size": 64, "optimizer": "adam", "lr": 0.001,
            "validation": validation, "holdout_size": 100}
    return [trial_config({**base, "seed": s, "l2": l2}, {}) for s, l2 in zip(seeds, l2s)]


def run(pack):
    """Train `pack` to its end; its rows, test scores and final weights."""
    initial = [pack.engine.member_weights(i) for i in range(pack.k)]
    ends = {i: o for epoch in loop.train(pack) for i, o in zip(epoch.ended, epoch.outcomes)}
    numbers = [[{k: v for k, v in r.items() if k not in ("epoch_time_s", "timestamp")} for r in rows]
               for rows in pack.ledger.rows]  # what the loop adds of the clock aside
    return (initial, numbers, [ends[i].metrics for i in range(pack.k)],
            [pack.engine.member_weights(i) for i in range(pack.k)])


@pytest.mark.parametrize("validation", ["test", "holdout"])
def test_the_next_pack_of_one_shape_reuses_the_compiled_step_and_trains_as_in_a_new_one(validation):
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(500, 300)
    first = Pack(configs([0, 1], [0.0, 1e-3], 0.3, validation), arrays)
    engine = first.engine
    run(first)
    del first  # a trial's pack ends with its trial
    # Other seeds, L2 factors and noise scale: the same shape (two members, two Gaussian draws).
    second_configs = configs([5, 6], [1e-4, 1e-2], 0.6, validation)
    second = Pack(second_configs, arrays)
    assert second.engine is engine  # the worker's kept step, not a new one
    reused = run(second)
    del second
    # The step and the scoring compiled once for both packs (scoring: once per feed).
    assert engine.train_step.experimental_get_tracing_count() == 1
    assert engine.eval_step.experimental_get_tracing_count() == (2 if validation == "holdout" else 1)

    worker.release()  # a worker that never trained a pack before
    fresh_pack = Pack(second_configs, arrays)
    assert fresh_pack.engine is not engine
    fresh = run(fresh_pack)
    initial, rows, tests, final = reused
    for i in range(2):
        for a, b in zip(initial[i], fresh[0][i]):
            np.testing.assert_array_equal(a, b)  # each member's own initial weights
        for a, b in zip(final[i], fresh[3][i]):
            np.testing.assert_array_equal(a, b)  # the optimizer's state started from scratch
    assert rows == fresh[1] and tests == fresh[2]
    assert rows[0][-1]["loss"] != rows[1][-1]["loss"]  # the members are their own
    if validation == "holdout":
        assert set(tests[0]) == {"test_loss", "test_accuracy"}


def test_a_pack_of_another_shape_or_beside_a_live_pack_gets_its_own_step():
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(500, 300)
    live = Pack(configs([0, 1], [0.0, 1e-3], 0.3, "test"), arrays)
    beside = Pack(configs([2, 3], [0.0, 1e-3], 0.3, "test"), arrays)
    assert beside.engine is not live.engine  # a live pack's variables are never refilled
    weights = live.engine.member_weights(0)
    del beside
    other = Pack(configs([2, 3, 4], [0.0, 1e-3, 0.0], 0.3, "test"), arrays)  # three members
    assert other.engine is not live.engine
    for a, b in zip(weights, live.engine.member_weights(0)):
        np.testing.assert_array_equal(a, b)
    # Members of one seed share a Gaussian draw: one draw for two members is another layout.
    del other
    same_seed = Pack(configs([2, 2], [0.0, 1e-3], 0.3, "test"), arrays)
    kept = same_seed.engine
    del same_seed
    assert Pack(configs([7, 8], [0.0, 1e-3], 0.3, "test"), arrays).engine is not kept


@pytest.mark.parametrize("stacked", [False, True])
def test_a_flattened_softmax_is_still_a_softmax_for_keras_losses(stacked):
    """Keras computes a cross-entropy on a softmax's output from its logits (exact where
    probabilities round to 0: a diverged member's loss is NaN, as alone); the flattened pack
    outputs keep that op, whether the pack's network made one softmax or one per member."""
    import keras
    import tensorflow as tf

    logits = tf.constant(np.array([[[1e30, 0.0, -1e30]], [[2.0, 1.0, 0.5]]], np.float32))  # [K=2, B=1, 3]
    labels = tf.constant([1, 0])

    @tf.function
    def losses():
        out = tf.stack([tf.nn.softmax(logits[0]), tf.nn.softmax(logits[1])]) if stacked else tf.nn.softmax(logits)
        flat = flattened(out)
        return flat, keras.losses.sparse_categorical_crossentropy(labels, flat), tf.constant(flat.op.type)

    flat, loss, op = (v.numpy() for v in losses())
    assert op == b"Softmax"
    np.testing.assert_allclose(flat, tf.nn.softmax(tf.reshape(logits, [2, 3])).numpy(), rtol=1e-6)
    assert loss[0] > 1e29  # from the logits: 1e30, where clipped probabilities give at most 16.1
    assert loss[1] == pytest.approx(-np.log(np.exp(2.0) / np.exp([2.0, 1.0, 0.5]).sum()), rel=1e-5)
