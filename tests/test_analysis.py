"""The analysis package on experiment folders in Ray Tune's layout with known values."""

import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import figures, report
from analysis.aggregate import per_epoch, per_level, summarize
from analysis.load import LogWarning, load_evaluation, load_experiment
from tests.tune_layout import config, curve, write_trial

T_975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (tables)
ROOT = __file__.rsplit("/tests/", 1)[0]


@pytest.fixture
def study(tmp_path):
    """3 seeds x 2 noise scales x 2 L2 factors, mlp64 and cnn, with chosen final accuracies."""
    exp = tmp_path / "exp"
    finals = {}
    for arch_i, arch in enumerate(("mlp64", "cnn")):
        for scale in (0.0, 0.5):
            for l2 in (0.0, 1e-4):
                for seed, jitter in zip((0, 1, 2), (-0.03, -0.01, 0.04)):
                    acc = 0.9 + 0.05 * arch_i - 0.2 * scale - 100 * l2 + jitter
                    finals[(arch, scale, l2, seed)] = acc
                    name = f"{arch}_s{scale}_l2{l2}_seed{seed}_{arch_i}{seed}000_0000{seed}"
                    write_trial(exp, name, config(arch=arch, noise_scale=scale, l2=l2, seed=seed), curve(acc))
    return exp, finals


def test_mean_std_n_ci_by_hand(study):
    exp, finals = study
    summary = summarize(load_experiment(str(exp)))
    assert len(summary) == 8 and (summary["n"] == 3).all()
    row = summary[(summary.arch == "mlp64") & (summary.noise_scale == 0) & (summary.l2 == 0)].iloc[0]
    # values 0.87, 0.89, 0.94: mean 0.9, deviations -0.03, -0.01, 0.04
    assert row["val_accuracy_mean"] == pytest.approx(0.9)
    std = math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2)  # sample std, ddof=1
    assert row["val_accuracy_std"] == pytest.approx(std)
    assert row["val_accuracy_ci95"] == pytest.approx(T_975_DF2 * std / math.sqrt(3))
    assert row["val_accuracy_min"] == pytest.approx(0.87) and row["val_accuracy_max"] == pytest.approx(0.94)
    assert row["seeds"] == "0 1 2" and row["complete"]


def test_all_three_replicates_are_used_not_two(study):
    """Seed 001's report sliced [i:i+2] and averaged 2 of 3 replicates."""
    exp, finals = study
    summary = summarize(load_experiment(str(exp)))
    for _, row in summary.iterrows():
        values = [finals[(row.arch, row.noise_scale, row.l2, s)] for s in (0, 1, 2)]
        assert row["val_accuracy_mean"] == pytest.approx(np.mean(values))
        assert row["val_accuracy_mean"] != pytest.approx(np.mean(values[:2]))
        assert row["val_accuracy_std"] == pytest.approx(np.std(values, ddof=1))


def test_best_configuration_first_within_each_architecture(study):
    exp, _ = study
    summary = summarize(load_experiment(str(exp)))
    for arch, rows in summary.groupby("arch", sort=False):
        assert rows["rank"].tolist() == [1, 2, 3, 4]
        assert rows["val_accuracy_mean"].is_monotonic_decreasing
    best = summary[summary["rank"] == 1].set_index("arch")
    assert best.loc["cnn", "noise_scale"] == 0 and best.loc["cnn", "l2"] == 0


def test_per_epoch_statistics(study):
    exp, finals = study
    curves = per_epoch(load_experiment(str(exp)))
    sub = curves[(curves.arch == "cnn") & (curves.noise_scale == 0.5) & (curves.l2 == 0)]
    assert sub["epoch"].tolist() == [1, 2, 3] and (sub["n"] == 3).all()
    values = np.array([finals[("cnn", 0.5, 0.0, s)] for s in (0, 1, 2)])
    np.testing.assert_allclose(sub["val_accuracy_mean"], [values.mean() * e / 3 for e in (1, 2, 3)])
    np.testing.assert_allclose(sub["val_accuracy_std"], [values.std(ddof=1) * e / 3 for e in (1, 2, 3)])


def test_diverged_replicate_is_excluded_and_counted(tmp_path):
    exp = tmp_path / "exp"
    for seed, acc in ((0, 0.8), (1, 0.9)):
        write_trial(exp, f"t{seed}", config(seed=seed), curve(acc))
    nan = [{"loss": float("nan"), "accuracy": 0.1, "val_loss": float("nan"), "val_accuracy": 0.098, "diverged": True}]
    write_trial(exp, "t2", config(seed=2), nan)
    df = load_experiment(str(exp))
    assert df.drop_duplicates("trial").set_index("trial")["status"].to_dict() == {
        "t0": "finished", "t1": "finished", "t2": "diverged"}
    row = summarize(df).iloc[0]
    assert row["n"] == 2 and row["n_diverged"] == 1 and row["complete"]
    assert row["val_accuracy_mean"] == pytest.approx(0.85) and row["seeds"] == "0 1"
    assert per_epoch(df)["n"].max() == 2


def test_damaged_logs_warn_name_the_file_and_the_rest_aggregates(tmp_path):
    exp = tmp_path / "exp"
    for seed, acc in ((0, 0.8), (1, 0.9), (2, 0.7)):
        write_trial(exp, f"ok{seed}", config(seed=seed, l2=1e-3), curve(acc))
    bad = write_trial(exp, "truncated", config(seed=0), curve(0.95), truncate_last=True)
    write_trial(exp, "no_epochs", config(seed=1), [])
    write_trial(exp, "crashed", config(seed=2), curve(0.5)[:1], error=True)
    (exp / "empty").mkdir()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_experiment(str(exp))
    messages = [str(w.message) for w in caught if issubclass(w.category, LogWarning)]
    assert any(f"{bad}/result.json: line 3 is not valid JSON" in m for m in messages)
    assert any("no_epochs: no epochs reported" in m for m in messages)
    assert any(m.endswith("empty: empty folder, no trial in it") for m in messages)
    status = df.drop_duplicates("trial").set_index("trial")["status"]
    assert status["truncated"] == "unfinished" and status["no_epochs"] == "unfinished" and status["crashed"] == "errored"
    summary = summarize(df).set_index("l2")
    assert summary.loc[1e-3, "n"] == 3 and summary.loc[1e-3, "val_accuracy_mean"] == pytest.approx(0.8)
    # the damaged group is marked, not averaged as if whole
    assert summary.loc[0.0, "n"] == 0 and summary.loc[0.0, "n_incomplete"] == 3 and not summary.loc[0.0, "complete"]


def test_malformed_files_are_named_and_skipped_not_a_crash(tmp_path):
    """A params.json that is no config, and rows whose epoch is NaN or 1e12 (which made every
    epoch up to it looked for), are warned about by file and left out; the rest aggregates."""
    exp = tmp_path / "exp"
    for seed, acc in ((0, 0.8), (1, 0.9)):
        write_trial(exp, f"ok{seed}", config(seed=seed), curve(acc))
    listed = write_trial(exp, "listed", config(seed=2), curve(0.5))
    with open(os.path.join(listed, "params.json"), "w") as f:
        f.write("[1]")
    odd = write_trial(exp, "odd", config(seed=3), curve(0.6))
    rows = [json.loads(line) for line in open(os.path.join(odd, "result.json"))]
    rows[1]["epoch"] = float("nan")
    rows.append({**rows[-1], "epoch": 1e12, "training_iteration": 1e12})
    rows.append([1])
    with open(os.path.join(odd, "result.json"), "w") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_experiment(str(exp))
    messages = [str(w.message) for w in caught if issubclass(w.category, LogWarning)]
    assert f"{listed}/params.json: a list, not a config; trial skipped" in messages
    assert f"{odd}/result.json: line 2: epoch = nan: not an epoch number (1 to 1,000,000); skipped" in messages
    assert any(m.startswith(f"{odd}/result.json: line 4: epoch = 1000000000000.0: not an epoch") for m in messages)
    assert f"{odd}/result.json: line 5: list, not a row of metrics; skipped" in messages
    trials = set(df["trial"])
    assert "listed" not in trials and {"ok0", "ok1", "odd"} <= trials
    assert sorted(df[df["trial"] == "odd"]["epoch"]) == [1, 2, 3]  # epoch 2 from progress.csv, as for a retry


def test_progress_csv_is_read_when_result_json_is_missing(tmp_path):
    exp = tmp_path / "exp"
    path = write_trial(exp, "t", config(), curve(0.9))
    (path_json := __import__("pathlib").Path(path) / "result.json").unlink()
    assert not path_json.exists()
    df = load_experiment(str(exp))
    assert df["epoch"].tolist() == [1, 2, 3] and df["val_accuracy"].iloc[-1] == pytest.approx(0.9)


def test_epochs_a_retried_trials_result_json_lost_are_read_from_progress_csv(tmp_path):
    """Tune's driver, retrying a trial within a run, replaces its result.json with the
    storage's older copy (here: nothing before epoch 3); progress.csv keeps every row."""
    exp = tmp_path / "exp"
    path = write_trial(exp, "t", config(), curve(0.9))
    result = __import__("pathlib").Path(path) / "result.json"
    lines = result.read_text().splitlines()
    result.write_text(lines[2] + "\n")
    df = load_experiment(str(exp))
    assert df["epoch"].tolist() == [1, 2, 3] and df["status"].eq("finished").all()
    assert df["val_accuracy"].iloc[-1] == pytest.approx(0.9)
    assert df["val_accuracy"].tolist() == [json.loads(line)["val_accuracy"] for line in lines]


def test_accuracy_vs_axis_figures_mark_the_best_and_the_cells_indistinguishable_from_it(study):
    import matplotlib.pyplot as plt

    exp, finals = study
    summary = summarize(load_experiment(str(exp)))
    # mlp64 finals: 0.9 - 0.2 scale - 100 l2 + jitter (same jitter per seed): its best is
    # scale 0, L2 0; scale 0, L2 1e-4 is 0.01 lower with the same spread (Welch t = -0.24).
    panel = summary[(summary["arch"] == "mlp64") & (summary["noise_scale"] == 0)]
    fig, ax = plt.subplots()
    drawn = figures.significance_marks(ax, panel, "l2", "val_accuracy")
    plt.close(fig)
    assert drawn["best"] == [(0.0, pytest.approx(0.9))]
    assert drawn["≈ best"] == [(1e-4, pytest.approx(0.89))]
    # A cell the table calls worse gets no mark.
    worse = panel.assign(vs_best=["best", "worse"])
    fig, ax = plt.subplots()
    assert figures.significance_marks(ax, worse, "l2", "val_accuracy") == {"best": [(0.0, pytest.approx(0.9))]}
    plt.close(fig)


def test_report_writes_every_figure_and_table(study, tmp_path, capsys):
    exp, _ = study
    out = tmp_path / "out"
    assert report.main([str(exp), "--out", str(out)]) == 0
    for name in ("trials.parquet", "summary.csv", "per_epoch.csv", "summary.md", "report.md"):
        assert (out / name).stat().st_size > 0, name
    for name in figures.FIGURES:
        png, pdf = out / "figures" / f"{name}.png", out / "figures" / f"{name}.pdf"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, name
        assert pdf.read_bytes()[:5] == b"%PDF-", name
        assert f"figures/{name}.png" in (out / "report.md").read_text()
    assert len(pd.read_parquet(out / "trials.parquet")) == 24 * 3
    table = (out / "summary.md").read_text().splitlines()
    assert "mean ± std (n)" in table[0] and len(table) == 2 + 8
    assert "ddof=1" in (out / "report.md").read_text()
    counts = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("Configs: "))
    assert counts.startswith("Configs: 24 finished")  # 2 archs x 2 scales x 2 L2 factors x 3 seeds, each once


def test_figure_without_its_axis_is_skipped_with_one_line(tmp_path, capsys):
    exp = tmp_path / "exp"
    for seed in (0, 1):
        for scale in (0.0, 0.3):
            write_trial(exp, f"t{scale}_{seed}", config(seed=seed, noise_scale=scale), curve(0.9 - scale + seed / 100))
    out = tmp_path / "out"
    assert report.main([str(exp), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "figure skipped: accuracy vs L2: the data has one l2 value (0)" in printed
    assert "figure skipped: noise x L2 heatmap: the data has one l2 value (0)" in printed
    assert not (out / "figures" / "accuracy_vs_l2.png").exists()
    assert (out / "figures" / "accuracy_vs_noise.png").exists()


def test_clean_baseline_joins_the_noise_curve(tmp_path):
    exp = tmp_path / "exp"
    write_trial(exp, "clean", config(noise_type="none", noise_scale=0.0), curve(0.95))
    for scale in (0.5, 1.0):
        write_trial(exp, f"g{scale}", config(noise_scale=scale), curve(0.9 - scale / 4))
    merged = figures.merge_clean_baseline(summarize(load_experiment(str(exp))))
    assert set(merged["noise_type"]) == {"gaussian"} and sorted(merged["noise_scale"]) == [0, 0.5, 1.0]


@pytest.mark.parametrize("argv,needle", [
    (["/no/such/run"], "/no/such/run: no such folder"),
    (["{empty}"], "no trial folders"),
    (["{exp}", "--metric", "f1"], "--metric f1: unknown"),
    (["{exp}", "--metric", "test_accuracy"], "--metric test_accuracy: no trial reported it"),
])
def test_bad_input_is_one_error_line_and_exit_2(tmp_path, capsys, argv, needle):
    exp = tmp_path / "exp"
    write_trial(exp, "t", config(), curve(0.9))
    (tmp_path / "empty").mkdir()
    argv = [a.format(exp=exp, empty=tmp_path / "empty") for a in argv]
    assert report.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1


def test_analysis_runs_without_ray_or_tensorflow(study, tmp_path):
    exp, _ = study
    write_denoise_study(exp.parent / "dn")  # the denoising figures too
    # The script as a user runs it (`python analysis/report.py ...`), then a look at what it imported.
    code = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'tensorflow', 'keras')]\n"
            "assert not bad, bad; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "analysis/report.py", str(exp.parent), "--out",
                           str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "report.md" in proc.stdout and (tmp_path / "o" / "report.md").exists()


def write_denoise_study(exp, legacy=False):
    """3 seeds of one denoiser, chosen accuracies per level, and sample images: written as a
    trial does (evaluation.json and samples.npz in the trial folder) or, `legacy`, as
    experiments made before that did (evaluation in the last row, images in the last checkpoint)."""
    chosen = {}
    for seed, jitter in zip((0, 1, 2), (0.02, -0.04, 0.05)):
        rows = []
        for level in (0.0, 0.5, 1.0):
            seasoned, denoised = 0.95 - 0.8 * level + jitter, 0.9 - 0.5 * level + 2 * jitter
            chosen[(seed, level)] = (seasoned, denoised)
            rows.append({"level": level, "noisy_mse": level / 2, "denoised_mse": 0.05 + jitter / 10,
                         "seasoned_accuracy": seasoned, "denoised_accuracy": denoised})
        note = {"reference": f"mnist_cnn_e10_nall_s{seed}"}
        last = {"loss": 0.2, "val_loss": 0.21, **({"eval": rows, **note} if legacy else {})}
        cfg = config(arch="dae_dense", noise_type="salt_and_pepper", noise_scale=0.4, classifier="cnn",
                     eval_levels="0 0.5 1", seed=seed, epochs=2, loss_fn="binary_crossentropy",
                     **({"kind": "denoise"} if legacy else {"task": "denoise"}))
        path = write_trial(exp, f"dae_dense_s{seed}_0000{seed}", cfg, [{"loss": 0.3, "val_loss": 0.31}, last])
        ckpt = os.path.join(path, "checkpoint_000001") if legacy else path
        os.makedirs(ckpt, exist_ok=True)
        if not legacy:
            with open(os.path.join(path, "evaluation.json"), "w") as f:
                json.dump({**note, "levels": rows}, f)
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, (3, 4, 28, 28), dtype=np.uint8)
        np.savez(os.path.join(ckpt, "samples.npz"), levels=np.array([0, 0.5, 1], np.float32), indices=np.arange(4),
                 labels=np.array([7, 2, 1, 0]), original=images[0], noisy=images, denoised=images[::-1])
    # a replicate still running: no evaluation yet, so no rows and no effect on the statistics
    write_trial(exp, "dae_dense_s3_00003", config(arch="dae_dense", kind="denoise", noise_type="salt_and_pepper",
                                                  noise_scale=0.4, classifier="cnn", eval_levels="0 0.5 1",
                                                  seed=3, epochs=2), [{"loss": 0.3, "val_loss": 0.3}])
    return chosen


@pytest.mark.parametrize("legacy", [False, True], ids=["trial-folder", "legacy-last-row"])
def test_denoise_levels_mean_and_std_over_seeds_by_hand(tmp_path, legacy):
    exp = tmp_path / "dn"
    chosen = write_denoise_study(exp, legacy)
    ev = load_evaluation(str(exp))
    assert len(ev) == 9 and set(ev["seed"]) == {0, 1, 2}
    assert set(ev["reference"]) == {f"mnist_cnn_e10_nall_s{s}" for s in (0, 1, 2)}
    assert set(ev["task"]) == {"denoise"} and "kind" not in ev  # older configs read in today's form
    levels = per_level(ev).set_index("level")
    for level in (0.0, 0.5, 1.0):
        for i, metric in enumerate(("seasoned_accuracy", "denoised_accuracy")):
            values = [chosen[(seed, level)][i] for seed in (0, 1, 2)]
            mean = sum(values) / 3
            std = math.sqrt(sum((v - mean) ** 2 for v in values) / 2)
            assert levels.loc[level, f"{metric}_mean"] == pytest.approx(mean)
            assert levels.loc[level, f"{metric}_std"] == pytest.approx(std)
            assert levels.loc[level, f"{metric}_ci95"] == pytest.approx(T_975_DF2 * std / math.sqrt(3))
        assert levels.loc[level, "n"] == 3 and levels.loc[level, "seeds"] == "0 1 2"


@pytest.mark.parametrize("legacy", [False, True], ids=["trial-folder", "legacy-checkpoint"])
def test_denoise_report_draws_level_figure_strips_and_table(tmp_path, legacy):
    exp = tmp_path / "dn"
    write_denoise_study(exp, legacy)
    out = tmp_path / "out"
    lines = []
    report.build([str(exp)], str(out), log=lines.append)
    figs = set(os.listdir(out / "figures"))
    assert {"denoise_accuracy_vs_level.png", "denoise_mse_vs_level.png", "strips.png", "strips.pdf"} <= figs
    assert any("latent grid" in line for line in lines)  # no vae: skipped in one line
    text = (out / "report.md").read_text()
    assert "| dae_dense | 0.5 |" in text and "![image_strips](figures/strips.png)" in text
    assert "validation loss" in text  # the denoisers' metric when no trial reports accuracy
    assert len(pd.read_csv(out / "evaluation.csv")) == 9


def test_a_config_in_two_experiments_is_counted_once_and_the_report_says_so(tmp_path, capsys):
    # The laptop ran seeds 0-1 of one cell, the cluster seeds 1-2 (seed 1 finished in both,
    # with another number: only the laptop's counts) and seed 0 unfinished.
    laptop, cluster = tmp_path / "laptop", tmp_path / "cluster"
    for seed, acc in ((0, 0.80), (1, 0.90)):
        write_trial(laptop, f"mlp64_s{seed}_0000{seed}", config(seed=seed), curve(acc))
    for seed, acc in ((1, 0.50), (2, 0.70)):
        write_trial(cluster, f"mlp64_s{seed}_1000{seed}", config(seed=seed), curve(acc))
    write_trial(cluster, "mlp64_s0_10009", config(seed=0), curve(0.1)[:1])  # 1 of 3 epochs
    out = tmp_path / "report"
    assert report.main([str(laptop), str(cluster), "--out", str(out)]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary["n"].tolist() == [3] and summary["n_incomplete"].tolist() == [0]
    assert summary["val_accuracy_mean"].iloc[0] == pytest.approx((0.80 + 0.90 + 0.70) / 3)
    assert summary["val_accuracy_std"].iloc[0] == pytest.approx(np.std([0.80, 0.90, 0.70], ddof=1))
    printed = capsys.readouterr().out
    said = "1 configs finished in cluster were also trained in laptop: counted once, from laptop"
    assert f"note: {said}" in printed and f"Counted once: {said}." in (out / "report.md").read_text()
    assert "1 configs not finished in cluster were also trained in laptop" in printed


def test_a_cell_with_one_finished_seed_of_three_shows_n_1_and_no_std(tmp_path):
    exp = tmp_path / "exp"
    write_trial(exp, "s0_00000", config(seed=0), curve(0.9))
    for seed in (1, 2):
        write_trial(exp, f"s{seed}_0000{seed}", config(seed=seed), curve(0.9)[:1])
    row = summarize(load_experiment(str(exp))).iloc[0]
    assert row["n"] == 1 and row["n_incomplete"] == 2 and not row["complete"]
    assert row["val_accuracy_mean"] == pytest.approx(0.9) and math.isnan(row["val_accuracy_std"])
    assert math.isnan(row["val_accuracy_ci95"])


def test_each_replicate_in_the_seeds_table_shape_with_diverged_named(tmp_path):
    """Seed 002's table: one row per optimizer x activation, each replicate, then the mean;
    its SGD + softmax cell diverged in every replicate and shows so, not NaN."""
    exp = tmp_path / "exp"
    values = {("sgd", "relu"): (0.8084, 0.8082, 0.8095), ("adadelta", "relu"): (0.8133, 0.8143, 0.8101),
              ("adadelta", "softmax"): (0.8088, None, 0.8075)}  # None: diverged
    nan = [{"loss": float("nan"), "accuracy": 0.1, "val_loss": float("nan"), "val_accuracy": 0.1, "diverged": True}]
    for (opt, act), finals in [*values.items(), (("sgd", "softmax"), (None, None, None))]:
        for seed, acc in enumerate(finals):
            write_trial(exp, f"{opt}_{act}_{seed}", config(optimizer=opt, activation=act, seed=seed),
                        nan if acc is None else curve(acc))
    out = tmp_path / "report"
    report.build([str(exp)], out=str(out), log=lambda line: None)
    table = pd.read_csv(out / "replicates.csv").set_index(["optimizer", "activation"])
    for cell, finals in values.items():
        done = [v for v in finals if v is not None]
        row = table.loc[cell]
        assert [None if pd.isna(row[f"seed {s}"]) else row[f"seed {s}"] for s in range(3)] == \
            [pytest.approx(v) if v is not None else None for v in finals]
        assert row["val_accuracy_mean"] == pytest.approx(sum(done) / len(done))
        assert row["n"] == len(done) and row["n_diverged"] == 3 - len(done)
    std = math.sqrt(sum((v - 0.8087) ** 2 for v in (0.8084, 0.8082, 0.8095)) / 2)
    assert table.loc[("sgd", "relu"), "val_accuracy_std"] == pytest.approx(std)
    md = (out / "report.md").read_text().split("## Each replicate")[1]
    line = next(s for s in md.splitlines() if s.startswith("| mlp64 | sgd | softmax |"))
    assert line.count("| diverged ") == 3 and line.rstrip().endswith("| – | 3 of 3 |"), line
    line = next(s for s in md.splitlines() if s.startswith("| mlp64 | adadelta | softmax |"))
    assert "| 0.8088 | diverged | 0.8075 |" in line and "(2) | 1 of 3 |" in line, line


def test_a_report_before_any_trial_has_finished_marks_every_group_incomplete(tmp_path):
    """Stopped (or read) while every trial is midway: no finished replicate to average."""
    exp = tmp_path / "exp"
    for seed in (0, 1):
        write_trial(exp, f"t{seed}", config(seed=seed, epochs=10), curve(0.9, epochs=2))
    out = tmp_path / "report"
    report.build([str(exp)], out=str(out), log=lambda line: None)
    row = pd.read_csv(out / "summary.csv").iloc[0]
    assert row["n"] == 0 and row["n_incomplete"] == 2 and pd.isna(row["val_accuracy_mean"])
    each = pd.read_csv(out / "replicates.csv").iloc[0]
    assert each["seed 0 status"] == each["seed 1 status"] == "unfinished" and pd.isna(each["seed 0"])


def test_two_copies_of_one_study_with_the_same_folder_name_are_two_experiments(tmp_path, capsys):
    """laptop/noise and cluster/noise (and one folder given twice): each replicate counts once,
    and the denoisers' level table too."""
    laptop, cluster = tmp_path / "laptop" / "dn", tmp_path / "cluster" / "dn"
    chosen = write_denoise_study(laptop)
    write_denoise_study(cluster)
    out = tmp_path / "report"
    assert report.main([str(laptop), str(cluster), str(laptop), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "note: 3 configs finished in cluster/dn were also trained in laptop/dn: counted once" in printed
    df = pd.read_parquet(out / "trials.parquet")
    assert set(df["experiment"]) == {"laptop/dn"}
    levels = pd.read_csv(out / "evaluation_summary.csv").set_index("level")
    values = [chosen[(seed, 0.5)][1] for seed in (0, 1, 2)]
    assert levels.loc[0.5, "n"] == 3 and levels.loc[0.5, "seeds"] == "0 1 2"
    assert levels.loc[0.5, "denoised_accuracy_std"] == pytest.approx(np.std(values, ddof=1))


def test_a_pack_that_has_not_listed_its_members_is_no_trial(tmp_path):
    """Tune writes a pack's params.json (its members as one string) as it starts; until the
    pack writes members.json its folder holds no trial to read."""
    exp = tmp_path / "exp"
    write_trial(exp, "mlp64_s0_00000", config(seed=0), curve(0.9))
    starting = exp / "pack_mlp64_2m_00001"
    starting.mkdir()
    (starting / "params.json").write_text(json.dumps({"members": json.dumps([config(seed=1), config(seed=2)])}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing to warn about
        df = load_experiment(str(exp))
    assert df["trial"].unique().tolist() == ["mlp64_s0_00000"] and df["seed"].unique().tolist() == [0]


def test_an_experiment_named_like_a_growth_step_does_not_hide_the_others(tmp_path):
    from analysis.load import experiment_dirs

    write_trial(tmp_path / "runs" / "grow-lr", "t_00000", config(seed=0), curve(0.9))
    write_trial(tmp_path / "runs" / "l2-study", "t_00000", config(seed=1), curve(0.8))
    found = experiment_dirs(str(tmp_path / "runs"))
    assert [os.path.basename(p) for p in found] == ["grow-lr", "l2-study"]


def test_a_config_diverged_in_one_experiment_and_finished_in_another_counts_the_finished(tmp_path):
    from analysis.load import counted_once

    nan = [{"loss": float("nan"), "accuracy": 0.1, "val_loss": float("nan"), "val_accuracy": 0.098, "diverged": True}]
    write_trial(tmp_path / "first", "t0", config(seed=0), nan)
    write_trial(tmp_path / "second", "t0", config(seed=0), curve(0.9))
    df, notes = counted_once(load_experiment(str(tmp_path / "first"), str(tmp_path / "second")))
    assert df["experiment"].unique().tolist() == ["second"] and df["status"].unique().tolist() == ["finished"]
    assert notes == ["1 configs diverged in first were also trained in second: counted once, from second"]


def test_a_cell_of_one_lucky_replicate_ranks_after_the_cells_that_can_be_tested(tmp_path):
    """A sweep under way: one cell has 3 finished seeds, another 1 (higher). The best is the
    tested cell; the single seed is ranked after it, not tested."""
    exp = tmp_path / "exp"
    for seed, acc in ((0, 0.90), (1, 0.91), (2, 0.92)):
        write_trial(exp, f"a{seed}", config(l2=0.0, seed=seed), curve(acc))
    write_trial(exp, "b0", config(l2=1e-4, seed=0), curve(0.95))
    summary = summarize(load_experiment(str(exp)))
    assert summary["l2"].tolist() == [0.0, 1e-4] and summary["n"].tolist() == [3, 1]
    assert summary["vs_best"].tolist() == ["best", "not tested (n < 2)"]
    assert summary["val_accuracy_mean"].tolist() == pytest.approx([0.91, 0.95])
