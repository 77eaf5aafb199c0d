"""Early stopping as a grid setting (seed 003): Keras's rule, in a solo trial and in a pack,
across a restart, and in the logs, the status and the report."""

import functools
import json
import os

import numpy as np
import pytest

from analysis.load import load_experiment
from sweeps.training.early_stopping import EarlyStop
from sweeps.grids import GridError, trial_config
from tests.sweeps_running import rows_by_trial, run, run_to_end, runner_cmd
from tests.synthetic import learnable_mnist, write_mnist_cache
from sweeps.training import loop

# Deterministic ops, as in a trial (sweeps.training.trainable.configure_tensorflow).
pytestmark = pytest.mark.usefixtures("deterministic_ops")


@functools.cache
def fitted_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    # Fitted once, so Keras's "auto" mode finds its metrics' directions, as in a real fit.
    model.fit(np.zeros((2, 2)), np.zeros(2), verbose=0)
    return model


def keras_stop(values, monitor, patience, min_delta):
    """(epoch it stopped at, from 1, or None; best epoch, from 1) by Keras's own callback."""
    import keras

    model = fitted_model()  # one model serves every curve: each gets a fresh callback
    callback = keras.callbacks.EarlyStopping(monitor=monitor, patience=patience, min_delta=min_delta)
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            return epoch + 1, callback.best_epoch + 1
    return None, callback.best_epoch + 1


def ours(values, monitor, patience, min_delta, split=None):
    """The same with sweeps.training.early_stopping; `split`: restart from its state after that epoch."""
    config = {"patience": patience, "monitor": monitor, "min_delta": min_delta}
    stop = EarlyStop.of(config)
    for epoch, value in enumerate(values, start=1):
        if stop.update(epoch, {monitor: value}):
            return epoch, stop.best_epoch
        if epoch == split:
            stop = EarlyStop.of(config, json.loads(json.dumps(stop.state())))
    return None, stop.best_epoch


@pytest.mark.parametrize("monitor", ["val_loss", "val_accuracy"])
def test_the_rule_is_keras_earlystopping_on_150_random_curves(monitor):
    rng = np.random.default_rng(3)
    stops = set()
    for trial in range(150):
        n = int(rng.integers(1, 25))
        drift = -0.02 if monitor == "val_loss" else 0.02
        values = np.cumsum(rng.normal(drift, 0.05, n)) + 1.0
        values = np.round(values, int(rng.integers(1, 4)))  # ties, as real metrics have
        patience = int(rng.integers(0, 6))
        min_delta = float(rng.choice([0.0, 0.01, 0.05]))
        expected = keras_stop(values.tolist(), monitor, patience, min_delta)
        assert ours(values.tolist(), monitor, patience, min_delta) == expected, (values, patience, min_delta)
        # Restarted from its saved state midway, it stops where it would have.
        assert ours(values.tolist(), monitor, patience, min_delta, split=n // 2) == expected
        stops.add(expected[0])
    assert None in stops and len(stops) > 10  # the curves really stop at many epochs, or not at all


def test_grid_checks_name_the_key_and_value():
    with pytest.raises(GridError, match=r"monitor = 'val_loss': early stopping needs a patience"):
        from sweeps.grids import _check_trial
        _check_trial("g.yaml", "", trial_config({"arch": "mlp64", "monitor": "val_loss"}, {}))
    from sweeps.grids import check_value
    with pytest.raises(GridError, match=r"g.yaml: patience = -1: must be an integer >= 0"):
        check_value("g.yaml", "patience", -1)
    with pytest.raises(GridError, match=r"monitor = 'val_accuracy': a denoiser \(dae_small\) reports loss, "
                                        "binary_accuracy, val_loss, val_binary_accuracy"):
        from sweeps.grids import _check_trial
        _check_trial("g.yaml", "", trial_config({"arch": "dae_small", "noise_type": "gaussian", "noise_scale": 0.5,
                                                 "patience": 3, "monitor": "val_accuracy"}, {}))


# -- in a pack: each member stops on its own, frozen while the others go on ------------------

def members(**kw):
    """One config per patience; min_delta 10 makes every epoch after the first no
    improvement, so a member with patience p stops at epoch p + 1 (Keras never stops
    after the first)."""
    base = {"arch": "mlp64", "epochs": 5, "train_subset": 500, "test_subset": 200, "noise_type": "gaussian",
            "noise_scale": 0.2, "batch_size": 64, "seed": 0, **kw}
    return [trial_config({**base, "seed": s, **({"patience": p, "min_delta": 10} if p is not None else {})}, {})
            for s, p in ((0, 1), (1, 3), (2, None))]


def train(configs, arrays, until=None, pack=None, snapshot=None):
    from sweeps.training.pack import Pack

    pack = pack or Pack(configs, arrays)
    while not pack.done and (until is None or pack.ledger.epochs_done < until):
        for i in loop.epoch(pack).ended:
            if snapshot is not None:
                snapshot[i] = pack.engine.member_weights(i)
    return pack


def test_a_stopped_member_is_frozen_and_the_others_train_as_alone(tmp_path):
    arrays = learnable_mnist(500, 200)
    configs = members()
    at_stop = {}
    packed = train(configs, arrays, snapshot=at_stop)
    assert [len(r) for r in packed.ledger.rows] == [2, 4, 5]
    assert [r[-1].get("stopped") for r in packed.ledger.rows] == [True, True, None]
    assert [r["stopped"] for r in packed.ledger.rows[1]] == [False, False, False, True]
    assert [r["best_epoch"] for r in packed.ledger.rows[0]] == [1, 1]
    # Frozen: its weights at the end are those it stopped with (the others trained on).
    for a, b in zip(at_stop[0], packed.engine.member_weights(0)):
        np.testing.assert_array_equal(a, b)
    for i, config in enumerate(configs):
        alone = train([config], arrays)
        assert [r["epoch"] for r in alone.ledger.rows[0]] == [r["epoch"] for r in packed.ledger.rows[i]]
        assert [r["loss"] for r in alone.ledger.rows[0]] == pytest.approx([r["loss"] for r in packed.ledger.rows[i]], rel=1e-5)
        assert [r["val_accuracy"] for r in alone.ledger.rows[0]] == pytest.approx(
            [r["val_accuracy"] for r in packed.ledger.rows[i]], abs=1e-6)


def test_a_restarted_pack_keeps_each_members_wait_and_stops_where_it_would_have(tmp_path):
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(500, 200)
    configs = members(optimizer="adam", lr=0.001)
    whole = train(configs, arrays)
    first = train(configs, arrays, until=3)  # member 0 stopped at 2, member 1 waiting 2 of 3
    first.save(str(tmp_path))
    resumed = Pack(configs, arrays)
    resumed.restore(str(tmp_path))
    assert resumed.ledger.frozen(0) and not resumed.ledger.frozen(1) and resumed.ledger.stops[1].wait == 2
    train(configs, arrays, pack=resumed)
    assert [len(r) for r in resumed.ledger.rows] == [len(r) for r in whole.ledger.rows] == [2, 4, 5]
    for a, b in zip(whole.ledger.rows, resumed.ledger.rows):
        assert [r["loss"] for r in a] == pytest.approx([r["loss"] for r in b], rel=1e-6)


def test_a_solo_checkpoint_from_before_packing_keeps_its_wait(tmp_path):
    """A trial checkpointed by the Keras path (model.keras + state.json) and continued as a
    pack of one goes on with the wait and best its checkpoint holds."""

    from models import build_model
    from sweeps.training.pack import Pack

    config = members()[1]  # patience 3
    model = build_model(config["arch"], 0.0, (28, 28, 1), num_classes=10)
    model.compile("sgd", "sparse_categorical_crossentropy")
    model.save(str(tmp_path / "model.keras"))
    saved = {"wait": 2, "best": 0.25, "best_epoch": 1, "stopped_epoch": 0}
    (tmp_path / "state.json").write_text(json.dumps({"epochs_done": 3, "early_stop": saved}))
    pack = Pack([config], learnable_mnist(500, 200))
    pack.restore(str(tmp_path))
    assert pack.ledger.epochs_done == 3 and {k: pack.ledger.stops[0].state()[k] for k in saved} == saved
    assert all(np.array_equal(a, b) for a, b in zip(pack.engine.member_weights(0), model.get_weights()))


def test_a_holdout_member_that_stops_is_scored_on_the_test_split_at_its_stop():
    arrays = learnable_mnist(500, 200)
    pack = train(members(validation="holdout", holdout_size=100), arrays, until=1)
    epoch = loop.epoch(pack)
    assert epoch.ended == [0]  # member 0 stopped at epoch 2; the others go on
    (scores,) = epoch.outcomes
    assert set(scores.metrics) == {"test_loss", "test_accuracy"}
    traced = pack.engine.eval_step.experimental_get_tracing_count()
    later = [o for e in loop.train(pack) for o in e.outcomes]  # members ending later score on the same test feed: no new trace
    assert all(set(s.metrics) == {"test_loss", "test_accuracy"} for s in later)
    assert pack.engine.eval_step.experimental_get_tracing_count() == traced


# -- a solo Keras trial (a denoiser) restarted mid-wait, through real Ray Tune ------------------

def flaky_trial(config, datasets, marker):
    """The trainable, failing once right after it reported (and checkpointed) epoch 2."""
    from ray import tune

    import sweeps.training.reporting
    from sweeps.training.trainable import train_trial

    real = tune.report

    def report(metrics, checkpoint=None):
        real(metrics, checkpoint=checkpoint)
        if metrics["epoch"] == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("failed after epoch 2")

    sweeps.training.reporting.tune.report = report
    try:
        train_trial(config, datasets)
    finally:
        sweeps.training.reporting.tune.report = real


def test_a_solo_trial_restarted_from_its_checkpoint_keeps_its_wait(tmp_path):
    """Patience 2, no improvement after epoch 1: it stops at epoch 3. Restarted after
    epoch 2 without its wait, it would count again and stop at epoch 5."""
    import ray
    from ray import tune

    config = trial_config({"arch": "dae_small", "noise_type": "gaussian", "noise_scale": 0.5, "noise_clip": True,
                           "epochs": 6, "train_subset": 1000, "test_subset": 200, "eval_levels": [0, 0.5], "classifier": None,
                           "patience": 2, "min_delta": 10}, {})
    datasets = {"mnist": learnable_mnist(1000, 200)}
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(
            tune.with_parameters(flaky_trial, datasets=datasets, marker=str(tmp_path / "failed")),
            param_space=config,
            run_config=tune.RunConfig(name="es", storage_path=str(tmp_path / "runs"), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=1)))
        (result,) = tuner.fit()
    finally:
        ray.shutdown()
    assert result.error is None and os.path.exists(tmp_path / "failed")  # it did fail once
    df = load_experiment(str(tmp_path / "runs" / "es"))
    assert df["epoch"].tolist() == [1, 2, 3] and df["status"].eq("finished").all()
    assert df["stopped"].tolist() == [False, False, True] and df["best_epoch"].tolist() == [1, 1, 1]
    assert os.path.exists(os.path.join(result.path, "evaluation.json"))  # its end ran at the stop


# -- through the runner: logs, status, resume and report -----------------------------------------

GRID = """
    defaults: {dataset: mnist, arch: mlp64, epochs: 4, train_subset: 1500, test_subset: 300, min_delta: 10}
    blocks:
      - {patience: 1, seed: [0, 1]}
      - {patience: 2, seed: [0, 1]}
"""


def test_early_stopping_through_the_runner_status_resume_and_report(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=1500, n_test=300)
    cmd, env = runner_cmd(tmp_path, GRID, "es", "--report")
    run_to_end(cmd, env, "4/4")
    exp = tmp_path / "runs" / "es"
    rows = rows_by_trial(exp)
    ended = sorted((("patience1" in name), r[-1]["epoch"], r[-1]["stopped"]) for name, r in rows.items())
    assert ended == [(False, 3, True), (False, 3, True), (True, 2, True), (True, 2, True)]

    status = run([*cmd[:1], "-m", "sweeps.cli", "status", str(exp)], env)
    assert "configs: 4 finished" in status.stdout and "epochs: 10/10 done" in status.stdout, status.stdout

    again = run([*cmd, "--resume"], env)
    assert again.returncode == 0 and "nothing to run" in again.stdout, again.stdout[-2000:]
    assert rows_by_trial(exp) == rows  # nothing trained again

    summary = (exp / "report" / "summary.md").read_text()
    assert "last epoch, per seed" in summary
    cells = {line.split("|")[2].strip(): line.split("|")[-2].strip() for line in summary.splitlines()[2:]}
    assert cells == {"1": "2 2", "2": "3 3"}
    report_md = (exp / "report" / "report.md").read_text()
    assert "(epoch 2)" in report_md and "Early stopping" in report_md
