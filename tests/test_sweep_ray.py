"""Sweeps through real Ray Tune (a local Ray started by the runner) on small real-shaped data."""

import json

import pandas as pd
import pytest

from analysis.load import load_experiment
from tests.sweeps_running import run, runner_cmd
from tests.synthetic import write_mnist_cache


def test_sweep_runs_trials_and_leaves_per_epoch_logs(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=3000, n_test=500)
    cmd, env = runner_cmd(tmp_path, """
        # two replicates that learn, and one that diverges (a result, not a crash)
        defaults: {dataset: mnist, arch: mlp64, epochs: 3}
        blocks:
          - {noise_type: gaussian, noise_scale: 0.2, seed: [0, 1]}
          - {lr: 1.0e+12, seed: 0}
          - {validation: holdout, holdout_size: 500, seed: 5}
    """, "it", "--report")
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # as on a fresh shell: the runner turns oneDNN on
    env["HOME"] = str(tmp_path / "home")  # where Ray would keep a token shared by every run
    proc = run(cmd, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = tmp_path / "runs" / "it"
    assert f"logs: {exp}" in proc.stdout
    assert "4/4 configs finished (1 diverged, 0 errored, 0 unfinished)" in proc.stdout
    assert not (tmp_path / "home" / ".ray" / "auth_token").exists()  # its Ray had a token of the run's own

    df = load_experiment(str(exp))
    learned = df[(df["lr"] == 0.1) & (df["validation"] == "test")]
    assert sorted(learned.groupby("seed")["epoch"].apply(list).tolist()) == [[1, 2, 3], [1, 2, 3]]
    final = learned[learned["epoch"] == 3].set_index("seed")
    assert (final["val_accuracy"] > 0.5).all()  # it trained: chance is 0.1
    assert final.loc[0, "val_loss"] != final.loc[1, "val_loss"]  # replicates differ
    for column in ("loss", "accuracy", "val_loss", "val_accuracy", "epoch_time_s", "node_id"):
        assert learned[column].notna().all(), column
    assert df["complete"].all()
    assert df["onednn"].eq(True).all()  # every row says TensorFlow's oneDNN kernels ran

    holdout = df[df["validation"] == "holdout"].set_index("epoch")
    # test metrics come once, with the last epoch, beside the hold-out's val metrics
    assert holdout["test_accuracy"].notna().tolist() == [False, False, True]
    assert holdout.loc[3, "test_accuracy"] > 0.5 and holdout.loc[3, "val_accuracy"] > 0.5

    diverged = df[df["lr"] == 1e12]
    assert diverged["epoch"].tolist() == [1] and bool(diverged["diverged"].iloc[0])

    # --report wrote the analysis of this real experiment next to it
    summary = pd.read_csv(exp / "report" / "summary.csv")
    noisy = summary[(summary["noise_type"] == "gaussian") & (summary["lr"] == 0.1)].iloc[0]
    assert noisy["n"] == 2 and noisy["val_accuracy_mean"] == pytest.approx(final["val_accuracy"].mean())
    assert summary["n_diverged"].sum() == 1
    assert (exp / "report" / "report.md").exists() and (exp / "report" / "figures" / "learning_curves.png").exists()

    # params.json holds the flat trial config the grid declared
    for trial in df["trial"].unique():
        params = json.loads((exp / trial / "params.json").read_text())
        assert params["arch"] == "mlp64" and params["epochs"] == 3 and params["dataset"] == "mnist"
