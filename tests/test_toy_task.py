"""A trial kind added from outside the package (tests/toy_task.py): the grid takes its
architecture and keys, refuses its keys elsewhere, and the runner, Ray, the report and
the analysis handle its trials like any other."""

import json
import os

import pandas as pd
import pytest

from tests.sweeps_running import run, run_to_end, runner_cmd
from tests.synthetic import write_mnist_cache

GRID = """
    arch: toy_linear
    seed: [0, 1]
    brightness_scale: 2.0
    noise_type: gaussian
    noise_scale: 0.2
    train_subset: 1500
"""


def toy_cmd(tmp_path, grid, name, *extra):
    # A trial a seed: two slots, and --pack 1 (`auto` would time a pack of the toy first, in
    # a process that imports TensorFlow, and then spread its two configs over the slots).
    cmd, env = runner_cmd(tmp_path, grid, name, "--pack", "1", *extra, num_cpus=2)
    return cmd, {**env, "NOISESWEEP_TASKS": "tests.toy_task"}


def test_grid_takes_the_toy_and_refuses_its_key_elsewhere(tmp_path):
    proc = run(*toy_cmd(tmp_path, GRID, "toy", "--dry-run"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("2 configs")
    proc = run(*toy_cmd(tmp_path, "{arch: mlp64, brightness_scale: 2.0}", "bad", "--dry-run"))
    assert proc.returncode == 2
    assert "brightness_scale = 2.0: only brightness trials take it (arch one of toy_linear), not mlp64" in proc.stderr
    proc = run(*toy_cmd(tmp_path, "{arch: toy_linear, brightness_scale: -1}", "neg", "--dry-run"))
    assert proc.returncode == 2 and "brightness_scale = -1: must be a number > 0" in proc.stderr
    # without the plugin named, the architecture is unknown: one line, exit 2
    cmd, env = runner_cmd(tmp_path, "{arch: toy_linear}", "none", "--dry-run")
    proc = run(cmd, env)
    assert proc.returncode == 2 and "arch = 'toy_linear': must be one of" in proc.stderr


def test_toy_trials_run_through_ray_and_the_report(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=1500, n_test=300)
    cmd, env = toy_cmd(tmp_path, GRID, "toy", "--report")
    run_to_end(cmd, env, "2/2")
    exp = tmp_path / "runs" / "toy"
    finals = {}
    for trial in sorted(p for p in os.listdir(exp) if p.startswith("toy_linear")):
        rows = [json.loads(line) for line in open(exp / trial / "result.json")]
        assert [r["epoch"] for r in rows] == [1, 2] and rows[-1]["config"]["task"] == "toy_brightness"
        assert rows[-1]["val_loss"] < rows[0]["val_loss"]  # it learns
        assert rows[-1]["test_loss"] == pytest.approx(rows[-1]["val_loss"], rel=1e-4)
        finals[rows[-1]["config"]["seed"]] = rows[-1]["val_loss"]
    summary = pd.read_csv(exp / "report" / "summary.csv")
    assert len(summary) == 1 and summary["n"].iloc[0] == 2
    mean = (finals[0] + finals[1]) / 2
    std = abs(finals[0] - finals[1]) / 2 ** 0.5
    assert summary["val_loss_mean"].iloc[0] == pytest.approx(mean)
    assert summary["val_loss_std"].iloc[0] == pytest.approx(std)
    assert "learning_curves.png" in os.listdir(exp / "report" / "figures")
