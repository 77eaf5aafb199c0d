"""A denoising study through the runner and real Ray Tune, then its report."""

import json
import os

import pandas as pd
import pytest

from analysis.load import load_evaluation, load_experiment
from tests.sweeps_running import ROOT, run, runner_cmd
from tests.synthetic import write_mnist_cache

GRID = """
    defaults: {dataset: mnist, seed: 0, eval_levels: [0, 0.5, 1], train_subset: 2000}
    blocks:
      # two trials, one reference classifier (same dataset, classifier, epochs, subset, seed)
      - {arch: dae_small, classifier: mlp64, classifier_epochs: 2, epochs: 2,
         noise_type: salt_and_pepper, noise_scale: [0.3, 0.5]}
      - {arch: vae, latent_dim: 2, epochs: 2, noise_type: gaussian, noise_scale: 0.3, noise_clip: true}
"""


def test_denoise_study_shares_one_reference_and_reports_every_level(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=300)
    cmd, env = runner_cmd(tmp_path, GRID, "dn", "--report")
    proc = run(cmd, env)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "3/3 configs finished" in out
    exp = tmp_path / "runs" / "dn"

    # the reference classifier was trained once, for both trials that use it
    key = "mnist_mlp64_e2_n2000_s0"
    assert f"reference classifiers: training 1 ({key})" in out
    assert out.count("clean test accuracy") == 1
    assert sorted(os.listdir(exp / "references")) == [f"{key}.json", f"{key}.keras"]
    note = json.loads((exp / "references" / f"{key}.json").read_text())
    assert note["clean_test_accuracy"] > 0.5

    ev = load_evaluation(str(exp))
    assert len(ev) == 3 * 3 and set(ev["level"]) == {0, 0.5, 1}
    dae = ev[ev["arch"] == "dae_small"]
    assert dae[["seasoned_accuracy", "denoised_accuracy", "denoised_mse"]].notna().all().all()
    assert set(dae["reference"]) == {key} and set(dae["reference_sha256_16"]) == {note["sha256_16"]}
    # level 0 is the clean test set: the same classifier scores the same in both trials
    assert dae[dae["level"] == 0]["seasoned_accuracy"].nunique() == 1
    vae = ev[ev["arch"] == "vae"]
    assert vae["seasoned_accuracy"].isna().all() and vae["denoised_mse"].notna().all()
    # training reported reconstruction loss per epoch, like any trial
    df = load_experiment(str(exp))
    assert df.groupby("trial")["epoch"].max().tolist() == [2, 2, 2] and df["val_loss"].notna().all()

    report = exp / "report"
    figures = set(os.listdir(report / "figures"))
    assert {"denoise_accuracy_vs_level.png", "denoise_mse_vs_level.png", "learning_curves.png"} <= figures
    assert len([f for f in figures if f.startswith("strips_") and f.endswith(".png")]) == 3  # one per group
    assert len([f for f in figures if f.startswith("latent_grid") and f.endswith(".png")]) == 1
    levels = pd.read_csv(report / "evaluation_summary.csv")
    row = levels[(levels["arch"] == "dae_small") & (levels["noise_scale"] == 0.3) & (levels["level"] == 0.5)].iloc[0]
    trial = dae[(dae["noise_scale"] == 0.3) & (dae["level"] == 0.5)].iloc[0]
    assert row["n"] == 1 and row["denoised_accuracy_mean"] == pytest.approx(trial["denoised_accuracy"])
    assert "## Denoising: the test set at each noise level" in (report / "report.md").read_text()

    # the experiment keeps its reference: grown by another noise scale, it loads it, trains no reference
    grown, _ = runner_cmd(tmp_path, GRID.replace("[0.3, 0.5]", "[0.3, 0.5, 0.7]"), "dn", "--resume")
    proc = run(grown, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reference classifiers: 1 loaded from" in proc.stdout and "training" not in proc.stdout
    assert "dn: 3 configs finished (skipped), 0 not finished (continued), 1 new (to run)" in proc.stdout
    assert "1/1 configs finished" in proc.stdout and len(load_experiment(str(exp))["trial"].unique()) == 4


def test_seed_002s_grid_tiny_runs_and_reports_each_replicate(tmp_path):
    """The shipped conv_denoiser grid's tiny variant through the runner: binary accuracy
    every epoch, a hold-out for validation, and the report's table of each replicate."""
    write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=500)
    with open(os.path.join(ROOT, "sweeps", "grids", "conv_denoiser.yaml")) as f:
        cmd, env = runner_cmd(tmp_path, f.read(), "c2")
    cmd[cmd.index("--grid") + 1] += ":tiny"
    proc = run(cmd, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "8/8 configs" in proc.stdout
    df = load_experiment(str(tmp_path / "runs" / "c2"))
    assert df[["binary_accuracy", "val_binary_accuracy"]].notna().all().all()
    assert set(df["activation"]) == {"relu", "softmax"} and set(df["optimizer"]) == {"sgd", "adadelta"}

    from analysis import report

    out = tmp_path / "report"
    report.build([str(tmp_path / "runs" / "c2")], out=str(out), metric="binary_accuracy", log=lambda line: None)
    table = pd.read_csv(out / "replicates.csv")
    assert len(table) == 4 and {"seed 0", "seed 1"} <= set(table.columns)
    final = df.sort_values("epoch").groupby("trial").last()
    for _, row in table.iterrows():
        for seed in (0, 1):
            trial = final[(final["optimizer"] == row["optimizer"]) & (final["activation"] == row["activation"])
                          & (final["seed"] == seed)].iloc[0]
            if trial["status"] == "finished":
                assert row[f"seed {seed}"] == pytest.approx(trial["binary_accuracy"])
            else:  # a diverged replicate is named, not averaged
                assert pd.isna(row[f"seed {seed}"]) and row[f"seed {seed} status"] == trial["status"]
