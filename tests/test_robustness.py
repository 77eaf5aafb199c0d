"""Scoring trained configs under test-time conditions (a grid's `evaluate:`, sweeps.conditions)
in the pack engine: the scores against a plain Keras `evaluate` of the final weights on the
same noisy or corrupted arrays, made here independently; packed against alone; the files."""

import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from sweeps import conditions
from sweeps.grids import GridError, trial_config
from sweeps.noise import noisy_split
from tests.packs import train
from tests.synthetic import learnable_mnist

pytestmark = pytest.mark.usefixtures("deterministic_ops")

EVALUATE = {"gaussian": [0, 0.5, 1.0], "salt_and_pepper": [0.2]}


def member(**kw):
    base = {"arch": "mlp64", "seed": 0, "epochs": 2, "batch_size": 64, "evaluate": EVALUATE}
    return trial_config({**base, **kw}, {})


def plain_scores(pack, i, arrays, section, condition, images=None, labels=None):
    """Member i's final weights in its own Keras model, evaluated by Keras on the condition's
    arrays as a notebook would make them (sweeps.noise.noisy_split on the test images)."""
    m = pack.members[i]
    x = arrays["x_test"] if images is None else images
    y = arrays["y_test"] if labels is None else labels
    kind = condition.name if condition.is_noise else "none"
    noisy = noisy_split(x, "test", seed=section["seed"], noise_type=kind, noise_scale=float(condition.severity),
                        noise_target="test", noise_clip=m["noise_clip"], standardize_first=m["standardize"])
    model = pack.member_model(i)
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    loss, accuracy = model.evaluate(noisy[..., None], y.astype(np.int32), batch_size=1000, verbose=0)
    return loss, accuracy


def mnist_c_folder(root, arrays):
    """A benchmark folder in MNIST-C's layout: two corruptions of the test images, (N, 28, 28, 1)."""
    from sweeps.corruptions import corrupt

    made = {}
    for name, severity in (("fog", 2), ("stripe", 3)):
        x = corrupt(arrays["x_test"], name, severity, seed=99)
        y = arrays["y_test"][::-1].copy()  # labels of its own: the folder's, not the dataset's
        (root / name).mkdir(parents=True)
        np.save(root / name / "test_images.npy", x[..., None])
        np.save(root / name / "test_labels.npy", y.astype(np.int64))
        made[name] = (x, y)
    return made


@pytest.mark.parametrize("standardize", [False, True])
def test_each_member_is_scored_under_every_condition_as_keras_evaluates_its_final_weights(tmp_path, standardize):
    """Noise at three scales, two corruptions and a benchmark folder: each score is a plain
    Keras evaluate of the member's final weights on the condition's images, made here with
    sweeps.noise, sweeps.corruptions and numpy, within 1e-6."""
    from sweeps.corruptions import corrupt

    arrays = learnable_mnist(600, 300)
    folder = mnist_c_folder(tmp_path / "mnist_c", arrays)
    evaluate = {"gaussian": [0, 0.5, 1.0], "shot_noise": [3], "rotate": [2], "folders": [str(tmp_path / "mnist_c")]}
    configs = [member(seed=0, standardize=standardize, evaluate=evaluate),
               member(seed=1, noise_type="gaussian", noise_scale=0.5, l2=0.001, standardize=standardize,
                      evaluate=evaluate)]
    pack, _ = train(configs, arrays)
    section = conditions.section_of(configs[0])
    wanted = conditions.conditions(section)
    assert [(c.suite, c.name, c.severity) for c in wanted] == [
        ("", "clean", 0), ("", "gaussian", 0.0), ("", "gaussian", 0.5), ("", "gaussian", 1.0), ("", "shot_noise", 3),
        ("", "rotate", 2), ("folder:mnist_c", "stripe", 0), ("folder:mnist_c", "fog", 0)]
    for i in range(2):
        rows = pack.ledger.robustness[i]
        assert [(r["suite"], r["condition"], r["severity"]) for r in rows] == list(wanted)
        assert {r["epoch"] for r in rows} == {2}
        for row, condition in zip(rows, wanted):
            images, labels = None, None
            if condition.suite:
                images, labels = folder[condition.name]
            elif condition.name in ("shot_noise", "rotate"):
                images = corrupt(arrays["x_test"], condition.name, condition.severity, seed=section["seed"])
            loss, accuracy = plain_scores(pack, i, arrays, section, condition, images, labels)
            assert row["accuracy"] == pytest.approx(accuracy, abs=1e-6), (i, condition)
            assert row["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-6), (i, condition)
    # The scores tell the conditions apart: heavier noise costs the clean-trained member.
    clean = {(r["condition"], r["severity"]): r for r in pack.ledger.robustness[0]}
    assert clean[("gaussian", 1.0)]["loss"] > clean[("gaussian", 0.5)]["loss"] > clean[("clean", 0)]["loss"]
    assert clean[("gaussian", 0.0)] == {**clean[("clean", 0)], "condition": "gaussian", "severity": 0.0}


def test_a_colour_model_is_scored_on_a_cifar10_c_layout_folder_and_a_corruption_as_keras_evaluates_it(tmp_path):
    """A model of one's own on 32 x 32 colour images, a CIFAR-10-C-layout folder (one file of
    5 severities x N images, labels.npy repeated) and a corruption of colour images."""
    from sweeps.corruptions import corrupt
    from tests.synthetic import learnable_colour

    arrays = learnable_colour(400, 100)
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    snow = [corrupt(arrays["x_test"], "snow", s, seed=7) for s in range(1, 6)]
    np.save(folder / "snow.npy", np.concatenate(snow))
    np.save(folder / "labels.npy", np.tile(arrays["y_test"], 5).astype(np.int64))
    evaluate = {"contrast": [2], "folders": [str(folder)]}
    configs = [trial_config({"arch": "tests.nets:wide_mlp", "seed": s, "epochs": 1, "batch_size": 64,
                             "evaluate": evaluate}, {}) for s in (0, 1)]
    pack, _ = train(configs, arrays)
    section = conditions.section_of(configs[0])
    rows = pack.ledger.robustness[1]
    assert [(r["suite"], r["condition"], r["severity"]) for r in rows] == [
        ("", "clean", 0), ("", "contrast", 2), *(("folder:CIFAR-10-C", "snow", s) for s in range(1, 6))]
    for row, condition in zip(rows, conditions.conditions(section)):
        images = None
        if condition.name == "contrast":
            images = corrupt(arrays["x_test"], "contrast", 2, seed=section["seed"])
        elif condition.name == "snow":
            images = snow[condition.severity - 1]
        m = pack.members[1]
        noisy = noisy_split(arrays["x_test"] if images is None else images, "test", seed=0,
                            standardize_first=m["standardize"])
        model = pack.member_model(1)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        loss, accuracy = model.evaluate(noisy, arrays["y_test"].astype(np.int32), verbose=0)
        assert row["accuracy"] == pytest.approx(accuracy, abs=1e-6), condition
        assert row["loss"] == pytest.approx(loss, rel=1e-5, abs=1e-6), condition


def test_packed_members_score_as_they_do_alone():
    arrays = learnable_mnist(600, 300)
    configs = [member(seed=s, noise_type="gaussian", noise_scale=0.3) for s in (0, 1, 2)]
    packed, _ = train(configs, arrays)
    alone, _ = train([configs[1]], arrays)
    for a, b in zip(packed.ledger.robustness[1], alone.ledger.robustness[0]):
        assert a["condition"] == b["condition"] and a["severity"] == b["severity"]
        assert a["accuracy"] == pytest.approx(b["accuracy"], abs=1e-6)
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)


def test_scores_every_n_epochs_and_a_restart_keeps_them(tmp_path):
    from sweeps.training import loop
    from sweeps.training.pack import Pack

    arrays = learnable_mnist(300, 100)
    config = member(epochs=4, evaluate_every=2, evaluate={"gaussian": [0.5]})
    pack = Pack([config], arrays)
    loop.epoch(pack)
    loop.epoch(pack)
    pack.save(str(tmp_path))
    again = Pack([config], arrays)
    again.restore(str(tmp_path))
    loop.train(again)
    epochs = [(r["epoch"], r["condition"]) for r in again.ledger.robustness[0]]
    assert epochs == [(2, "clean"), (2, "gaussian"), (4, "clean"), (4, "gaussian")]


def test_the_scores_file_is_csv_of_the_schemas_columns():
    from sweeps import schema
    from sweeps.training.reporting import robustness_csv

    text = robustness_csv([{"epoch": 3, "suite": "", "condition": "gaussian", "severity": 0.5, "accuracy": 0.25,
                            "loss": 1.5}]).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0]) == schema.ROBUSTNESS_COLUMNS
    assert rows[0]["accuracy"] == "0.25" and rows[0]["severity"] == "0.5" and rows[0]["noisy_mse"] == ""


@pytest.mark.parametrize("section, message", [
    ({"gaussian": [-1]}, "evaluate.gaussian = -1: a noise scale must be a number >= 0"),
    ({"salt_and_pepper": [1.5]}, "evaluate.salt_and_pepper = 1.5: a salt_and_pepper level must be in [0, 1]"),
    ({"gausian": [1]}, "evaluate.gausian = [1]: unknown key (did you mean gaussian?)"),
    ({"seed": 1}, "names no condition to score on"),
    ({"folders": ["/nonexistent/mnist_c"]}, "evaluate.folders[0] = '/nonexistent/mnist_c': no such folder"),
    ({"shot_noise": [6]}, "evaluate.shot_noise = 6: a corruption's severity must be an integer in 1-5"),
    ({"suites": ["mnist_d"]}, "evaluate.suites = 'mnist_d': no such suite; known: mnist_c, cifar10_c"),
    ({"gaussian": [1], "baseline": {"noise_scal": 0}}, "evaluate.baseline.noise_scal: unknown key (did you mean "
                                                       "noise_scale?)"),
    ({"gaussian": [1], "baseline": {"noise_scale": -1}}, "evaluate.baseline.noise_scale = -1: must be a number >= 0"),
])
def test_a_bad_evaluate_section_is_one_line_naming_file_key_and_value(tmp_path, section, message):
    from sweeps.grids import load_grid

    grid = tmp_path / "g.yaml"
    import yaml

    grid.write_text(yaml.safe_dump({"arch": "mlp64", "evaluate": section}))
    with pytest.raises(GridError) as e:
        load_grid(str(grid))
    assert str(e.value).startswith(f"{grid}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_evaluate_every_needs_an_evaluate_section(tmp_path):
    from sweeps.grids import load_grid

    grid = tmp_path / "g.yaml"
    grid.write_text("arch: mlp64\nevaluate_every: 2\n")
    with pytest.raises(GridError, match="evaluate_every = 2: scores nothing without an evaluate: section"):
        load_grid(str(grid))


def _files(folder):
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


def _scores(path):
    with open(path, newline="") as f:
        return {(r["suite"], r["condition"], float(r["severity"])): r for r in csv.DictReader(f)}


def test_a_sweep_writes_its_scores_and_evaluate_adds_new_ones_rewriting_nothing(tmp_path):
    """The runner scores each config after training (robustness/train.csv); `noisesweep
    evaluate` then scores the finished experiment on more conditions without training, in a
    new file, every file already there byte for byte as it was."""
    from analysis.load import trial_dirs
    from tests.sweeps_running import ROOT, runner_cmd
    from tests.synthetic import write_mnist_cache

    write_mnist_cache(tmp_path / "cache", n_train=600, n_test=200)
    cmd, env = runner_cmd(tmp_path, """
        arch: mlp64
        seed: [0, 1]
        epochs: 2
        evaluate:
          gaussian: [0.5]
        """, "rob")
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    exp = tmp_path / "runs" / "rob"
    configs = trial_dirs(str(exp))
    assert len(configs) == 2
    for folder in configs:
        rows = _scores(os.path.join(folder, "robustness", "train.csv"))
        assert sorted(rows) == [("", "clean", 0.0), ("", "gaussian", 0.5)]
        assert {r["epoch"] for r in rows.values()} == {"2"}
    before = _files(exp)

    more = tmp_path / "more.yaml"
    more.write_text("evaluate:\n  gaussian: [0.5, 1.0]\n  brightness: [3]\n")
    evaluate = [sys.executable, "-m", "sweeps.cli", "evaluate", str(exp), "--grid", str(more),
                "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(evaluate, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "evaluate: 2 configs scored; 0 not finished, 0 without weights" in done.stdout
    after = _files(exp)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    added = sorted(set(after) - set(before))
    kept = os.path.join("scoring", "mnist", "0-brightness-3-200.npy")  # the corrupted test set, kept
    assert kept in added and len(added) == 3
    assert all(a.endswith(os.path.join("robustness", "evaluate-1.csv")) for a in added if a != kept)
    from sweeps.corruptions import corrupt

    x_test = np.load(tmp_path / "cache" / "mnist.npz")["x_test"]
    np.testing.assert_array_equal(np.load(exp / kept), corrupt(x_test, "brightness", 3, seed=0))
    for folder in configs:
        trained = _scores(os.path.join(folder, "robustness", "train.csv"))
        again = _scores(os.path.join(folder, "robustness", "evaluate-1.csv"))
        assert sorted(again) == [("", "brightness", 3.0), ("", "clean", 0.0), ("", "gaussian", 0.5),
                                 ("", "gaussian", 1.0)]
        for key in trained:  # the same weights on the same images: the same scores
            assert float(again[key]["accuracy"]) == pytest.approx(float(trained[key]["accuracy"]), abs=1e-6)
            assert float(again[key]["loss"]) == pytest.approx(float(trained[key]["loss"]), rel=1e-5)

    bad = subprocess.run([*evaluate[:5], "--suite", "mnist_x"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --suite 'mnist_x': no such suite; known: mnist_c")
    assert bad.stderr.count("\n") == 1 and _files(exp) == after

    # The same from Python, and the scores read back as the analysis's table.
    from noisesweep import Experiment

    experiment = Experiment(str(exp))
    with pytest.raises(ValueError, match=r"evaluate.gaussian = -2: a noise scale must be a number >= 0"):
        experiment.evaluate({"gaussian": [-2]}, cache_dir=str(tmp_path / "cache"))
    assert experiment.evaluate(suite="mnist_c", cache_dir=str(tmp_path / "cache")) == {
        "scored": 2, "unfinished": 0, "no weights": 0}
    last = _files(exp)
    assert {k: v for k, v in last.items() if k in after} == after  # a suite added, nothing rewritten
    added = sorted(set(last) - set(after))
    assert len(added) == 2 + 15 and sum(a.endswith("evaluate-2.csv") for a in added) == 2
    table = experiment.robustness()
    from sweeps.corruptions import SUITES

    suite = {("mnist_c", name, float(severity)) for name, severity in SUITES["mnist_c"]}
    listed = {("", "brightness", 3.0), ("", "clean", 0.0), ("", "gaussian", 0.5), ("", "gaussian", 1.0)}
    assert set(zip(table["suite"], table["condition"], table["severity"])) == suite | listed
    assert len(table) == 2 * 19 and set(table["seed"]) == {0, 1}


def test_a_benchmark_folder_that_does_not_fit_the_dataset_is_refused_before_anything_runs(tmp_path, capsys):
    from sweeps import run
    from tests.synthetic import write_mnist_cache

    write_mnist_cache(tmp_path / "cache", n_train=200, n_test=50)
    folder = tmp_path / "mnist_c" / "fog"
    folder.mkdir(parents=True)
    np.save(folder / "test_images.npy", np.zeros((20, 28, 28, 1), np.uint8))
    np.save(folder / "test_labels.npy", np.arange(20) % 12)
    grid = tmp_path / "g.yaml"
    grid.write_text(f"arch: mlp64\nepochs: 1\nevaluate:\n  folders: [{tmp_path / 'mnist_c'}]\n")
    code = run.main(["--grid", str(grid), "--name", "bad", "--storage-path", str(tmp_path / "runs"),
                     "--cache-dir", str(tmp_path / "cache")])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: {grid}: evaluate.folders[0]: {folder}/test_labels.npy: labels 0..11 do not "
                                 "fit a dataset of 10 classes\n")
    assert not (tmp_path / "runs" / "bad").exists()


def test_resuming_with_another_evaluate_section_names_the_configs_it_would_train_again():
    """A config is known by its content, what it is scored on included: a grid resumed with
    another evaluate: trains its configs again; the plan says so, and which command scores
    the trained ones without training."""
    from sweeps import growth

    old = [member(seed=s, evaluate=None) for s in (0, 1)]
    previous = [{"folder": "", "trials": old}]
    states = {growth.config_key(c): "finished" for c in old}
    same = growth.plan(previous, states, old)
    assert len(same.done) == 2 and not same.new and not same.rescored
    scored = [member(seed=s) for s in (0, 1, 2)]
    grown = growth.plan(previous, states, scored)
    assert grown.new == scored and grown.rescored == scored[:2]


def test_the_made_test_sets_are_kept_with_the_experiment_and_read_back_from_it(tmp_path):
    """A corruption's images are made once and kept in the experiment (scoring/): a resumed run
    and a later evaluate score on those very bytes; a benchmark folder's are not copied."""
    from sweeps.corruptions import corrupt
    from sweeps.preflight import scoring_images
    from sweeps.storage import Storage

    arrays = learnable_mnist(50, 40)
    trials = [member(evaluate={"rotate": [2], "gaussian": [0.5]}, test_subset=30)]
    store = Storage(str(tmp_path / "exp"))
    made = scoring_images(trials, {"mnist": arrays}, "g.yaml", log=lambda *a, **k: None, store=store)["mnist"]
    assert list(made) == ["0:rotate/2"]  # noise conditions are drawn in the step, not made
    images, labels = made["0:rotate/2"]
    np.testing.assert_array_equal(images, corrupt(arrays["x_test"][:30], "rotate", 2, seed=0))
    np.testing.assert_array_equal(labels, arrays["y_test"][:30])
    kept = tmp_path / "exp" / "scoring" / "mnist" / "0-rotate-2-30.npy"
    np.testing.assert_array_equal(np.load(kept), images)
    np.save(kept, np.full_like(images, 7))  # what is kept is what is scored on
    again = scoring_images(trials, {"mnist": arrays}, "g.yaml", log=lambda *a, **k: None, store=store)["mnist"]
    assert (again["0:rotate/2"][0] == 7).all()
