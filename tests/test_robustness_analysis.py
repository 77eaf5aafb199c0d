"""The robustness table, its measures (mean corruption accuracy, mCE, relative mCE), their
significance, figures and report section, on experiment folders written as the runner
writes them (tests.tune_layout) with robustness/*.csv files beside the logs."""

import csv
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from analysis import figures, report, robustness_figures
from analysis.load import LogWarning
from analysis.robustness import load_robustness
from analysis.robustness_measures import (BaselineWarning, accuracy_table, per_level, robustness_summary,
                                          trial_measures)
from sweeps.schema import ROBUSTNESS_COLUMNS, ROBUSTNESS_FOLDER
from tests.tune_layout import config, curve, write_trial

ROOT = __file__.rsplit("/tests/", 1)[0]
CLEAN = ("", "clean", 0)


def write_scores(trial, rows, name="train.csv"):
    """A robustness CSV as a scoring writes it: the schema's header, a row per dict, empty
    cells for the metrics a task lacks."""
    folder = os.path.join(trial, ROBUSTNESS_FOLDER)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(ROBUSTNESS_COLUMNS)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row[c] for c in ROBUSTNESS_COLUMNS])
    return path


def scored(epoch, accuracies, suite="cifar10_c"):
    """Classifier rows at `epoch`: {(condition, severity) or CLEAN: accuracy}."""
    rows = []
    for key, acc in accuracies.items():
        where, condition, severity = key if len(key) == 3 else (suite, *key)
        rows.append({"epoch": epoch, "suite": where, "condition": condition, "severity": severity,
                     "accuracy": acc, "loss": round(1 - acc, 6)})
    return rows


# The mCE study: a clean-trained baseline and a model trained with Gaussian noise, 2 seeds,
# 2 corruptions x 2 severities of one suite, the clean test set listed by itself.
BASE = {0: {CLEAN: 0.90, ("fog", 1): 0.80, ("fog", 2): 0.60, ("blur", 1): 0.70, ("blur", 2): 0.50},
        1: {CLEAN: 0.92, ("fog", 1): 0.78, ("fog", 2): 0.64, ("blur", 1): 0.70, ("blur", 2): 0.54}}
MODEL = {0: {CLEAN: 0.88, ("fog", 1): 0.85, ("fog", 2): 0.75, ("blur", 1): 0.76, ("blur", 2): 0.64},
         1: {CLEAN: 0.90, ("fog", 1): 0.83, ("fog", 2): 0.71, ("blur", 1): 0.72, ("blur", 2): 0.62}}
# By hand, error E = 1 - accuracy. The baseline's mean errors over its 2 seeds:
#   clean 0.09; fog s1 0.21, s2 0.38 (sum 0.59); blur s1 0.30, s2 0.48 (sum 0.78)
#   relative sums: fog (0.21-0.09)+(0.38-0.09) = 0.41; blur (0.30-0.09)+(0.48-0.09) = 0.60
# Model seed 0 (clean E 0.12): CE_fog = (0.15+0.25)/0.59, CE_blur = (0.24+0.36)/0.78
#   mCE = 100 (0.677966 + 0.769231)/2 = 72.3598 %
#   relCE_fog = (0.03+0.13)/0.41, relCE_blur = (0.12+0.24)/0.60 -> relative mCE 49.5122 %
# Model seed 1 (clean E 0.10): CE_fog = (0.17+0.29)/0.59, CE_blur = (0.28+0.38)/0.78
#   mCE = 100 (0.779661 + 0.846154)/2 = 81.2907 %
#   relCE_fog = (0.07+0.19)/0.41, relCE_blur = (0.18+0.28)/0.60 -> relative mCE 70.0407 %
MCE = {0: 100 * (0.40 / 0.59 + 0.60 / 0.78) / 2, 1: 100 * (0.46 / 0.59 + 0.66 / 0.78) / 2}
RMCE = {0: 100 * (0.16 / 0.41 + 0.36 / 0.60) / 2, 1: 100 * (0.26 / 0.41 + 0.46 / 0.60) / 2}
# Mean corruption accuracy: seed 0 (0.85+0.75+0.76+0.64)/4 = 0.75, seed 1 2.88/4 = 0.72.


def write_mce_study(exp, base=BASE, model=MODEL, **extra):
    trials = {}
    for name, cfg, table in (("base", config(noise_type="none", noise_scale=0.0, **extra), base),
                             ("model", config(noise_scale=0.5, **extra), model)):
        for seed in (0, 1):
            path = write_trial(exp, f"{cfg['arch']}_{name}_s{seed}_0000{seed}", {**cfg, "seed": seed}, curve(0.9))
            write_scores(path, scored(3, table[seed]))
            trials[(name, seed)] = path
    return trials


def test_mce_and_relative_mce_against_numbers_by_hand(tmp_path):
    exp = tmp_path / "exp"
    write_mce_study(exp)
    table = load_robustness(str(exp))
    each = trial_measures(table).set_index(["noise_scale", "seed"])
    for seed in (0, 1):
        assert each.loc[(0.5, seed), "mce"] == pytest.approx(MCE[seed])
        assert each.loc[(0.5, seed), "relative_mce"] == pytest.approx(RMCE[seed])
    assert MCE[0] == pytest.approx(72.3598, abs=1e-4) and RMCE[1] == pytest.approx(70.0407, abs=1e-4)
    assert each.loc[(0.5, 0), "corruption_accuracy"] == pytest.approx(0.75)
    assert each.loc[(0.5, 1), "clean_accuracy"] == pytest.approx(0.90)

    summary = robustness_summary(table).set_index("noise_scale")
    model, base = summary.loc[0.5], summary.loc[0.0]
    assert model["suite"] == "cifar10_c" and model["n"] == 2 and model["seeds"] == "0 1"
    assert model["mce_mean"] == pytest.approx((MCE[0] + MCE[1]) / 2)  # 76.8253
    assert model["mce_std"] == pytest.approx(abs(MCE[0] - MCE[1]) / np.sqrt(2))  # sample std of 2
    assert model["relative_mce_mean"] == pytest.approx((RMCE[0] + RMCE[1]) / 2)  # 59.7764
    assert model["relative_mce_std"] == pytest.approx(abs(RMCE[0] - RMCE[1]) / np.sqrt(2))
    assert model["corruption_accuracy_mean"] == pytest.approx(0.735)
    # The baseline against itself: its errors are its seeds' mean, so its mCE averages 100 %.
    assert base["mce_mean"] == pytest.approx(100) and base["relative_mce_mean"] == pytest.approx(100)
    assert model["baseline"] == base["baseline"] == "mlp64: noise_type=none, noise_scale=0"
    # Welch + Holm against the best of the architecture, on every measure.
    assert model["mce_vs_best"] == "best" and model["corruption_accuracy_vs_best"] == "best"
    assert base["mce_vs_best"] in ("≈ best", "worse") and base["mce_p_holm"] == pytest.approx(base["mce_p"])
    assert base["mce_diff"] == pytest.approx(100 - model["mce_mean"])
    assert base["clean_accuracy_vs_best"] == "best" and model["clean_accuracy_vs_best"] == "≈ best"


def test_a_named_baseline_and_one_for_every_architecture(tmp_path):
    exp = tmp_path / "exp"
    write_mce_study(exp)
    table = load_robustness(str(exp))
    # The noisy model as baseline: now it averages 100 %, and the clean one is worse.
    summary = robustness_summary(table, baseline={"noise_scale": 0.5}).set_index("noise_scale")
    assert summary.loc[0.5, "mce_mean"] == pytest.approx(100)
    assert summary.loc[0.0, "mce_mean"] > 100
    with pytest.raises(ValueError, match="'speed' no config key"):
        robustness_summary(table, baseline={"speed": 1})
    # A second architecture with its own runs: a baseline that names an arch serves both.
    write_mce_study(exp, arch="cnn")
    both = load_robustness(str(exp))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        per_arch = trial_measures(both).set_index(["arch", "noise_scale", "seed"])
        shared = trial_measures(both, baseline={"arch": "mlp64", "noise_type": "none"})
    assert per_arch.loc[("cnn", 0.5, 0), "mce"] == pytest.approx(MCE[0])
    assert set(shared["baseline"]) == {"mlp64: noise_type=none, noise_scale=0"}


def test_default_baseline_missing_or_ambiguous_warns_and_leaves_mce_nan(tmp_path):
    exp = tmp_path / "noisy"
    for seed in (0, 1):
        path = write_trial(exp, f"m{seed}", config(noise_scale=0.5, seed=seed), curve(0.9))
        write_scores(path, scored(3, MODEL[seed]))
    table = load_robustness(str(exp))
    with pytest.warns(BaselineWarning, match="no clean-trained config .* but noise_type, noise_scale, noise_target to "
                      "mlp64, noise_type=gaussian, noise_scale=0.5; its mCE is left NaN"):
        summary = robustness_summary(table)
    assert summary["mce_mean"].isna().all() and summary["corruption_accuracy_mean"].iloc[0] == pytest.approx(0.735)
    assert summary["mce_vs_best"].isna().all()

    exp = tmp_path / "two_clean"
    write_mce_study(exp, l2=0.0)
    for seed in (0, 1):
        path = write_trial(exp, f"base_l2_{seed}", config(noise_type="none", noise_scale=0.0, l2=1e-4, seed=seed),
                           curve(0.9))
        write_scores(path, scored(3, BASE[seed]))
    table = load_robustness(str(exp))
    # A baseline passed that matches two configs of an architecture: NaN and a warning.
    with pytest.warns(BaselineWarning, match=r"arch mlp64: 2 configs are a config matching baseline noise_type=none "
                      r"\(they differ in l2\)"):
        assert trial_measures(table, baseline={"noise_type": "none"})["mce"].isna().all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        each = trial_measures(table, baseline={"noise_type": "none", "l2": 0})
        # The default: each config's clean counterpart of its own l2, no ambiguity.
        default = trial_measures(table).set_index(["noise_scale", "l2", "seed"])
    assert each.set_index(["noise_scale", "l2", "seed"]).loc[(0.5, 0.0, 1), "mce"] == pytest.approx(MCE[1])
    assert default.loc[(0.5, 0.0, 1), "mce"] == pytest.approx(MCE[1])
    assert default.loc[(0.0, 1e-4, 0), "baseline"] == "mlp64: noise_type=none, noise_scale=0, l2=0.0001"


# A noise x L2 study: at l2 0 the mCE study's BASE and MODEL; at l2 1e-4 a clean config
# BASE2 and the same noisy scores MODEL, so the l2 1e-4 noisy config's mCE differs from the
# l2 0 one's only by its baseline.
BASE2 = {0: {CLEAN: 0.95, ("fog", 1): 0.90, ("fog", 2): 0.80, ("blur", 1): 0.80, ("blur", 2): 0.70},
         1: {CLEAN: 0.93, ("fog", 1): 0.90, ("fog", 2): 0.80, ("blur", 1): 0.80, ("blur", 2): 0.70}}
# By hand, BASE2's mean errors: clean 0.06; fog 0.10 + 0.20 = 0.30; blur 0.20 + 0.30 = 0.50;
#   relative sums: fog 0.04 + 0.14 = 0.18; blur 0.14 + 0.24 = 0.38.
# MODEL against BASE2: seed 0 (fog 0.40, blur 0.60, clean E 0.12) mCE = 100 (0.40/0.30 + 0.60/0.50)/2 = 126.667,
#   relative 100 (0.16/0.18 + 0.36/0.38)/2 = 91.813; seed 1 (fog 0.46, blur 0.66, clean E 0.10)
#   mCE = 100 (0.46/0.30 + 0.66/0.50)/2 = 142.667, relative 100 (0.26/0.18 + 0.46/0.38)/2 = 132.749.
MCE2 = {0: 100 * (0.40 / 0.30 + 0.60 / 0.50) / 2, 1: 100 * (0.46 / 0.30 + 0.66 / 0.50) / 2}
RMCE2 = {0: 100 * (0.16 / 0.18 + 0.36 / 0.38) / 2, 1: 100 * (0.26 / 0.18 + 0.46 / 0.38) / 2}
# BASE2 against BASE: each seed's corruption errors fog 0.30, blur 0.50, so mCE = 100 (0.30/0.59 + 0.50/0.78)/2
#   = 57.475; relative, seed 0 (clean E 0.05): 100 ((0.05+0.15)/0.41 + (0.15+0.25)/0.60)/2 = 57.724.
BASE2_VS_BASE = 100 * (0.30 / 0.59 + 0.50 / 0.78) / 2
BASE2_VS_BASE_REL0 = 100 * (0.20 / 0.41 + 0.40 / 0.60) / 2


def write_l2_study(exp, evaluate=None, extra=()):
    """l2 {0, 1e-4} x {clean (noise_type none), gaussian 0.5} x seeds {0, 1}; `evaluate`: each
    config's evaluate string (a function of its l2 where callable); `extra`: (name, config,
    scores) more configs, seed 0."""
    runs = []
    for l2, clean, noisy in ((0.0, BASE, MODEL), (1e-4, BASE2, MODEL)):
        for name, cfg, table in (("base", config(noise_type="none", noise_scale=0.0, l2=l2), clean),
                                 ("model", config(noise_scale=0.5, l2=l2), noisy)):
            for seed in (0, 1):
                runs.append((f"l2_{l2:g}_{name}_s{seed}_0000{seed}", {**cfg, "seed": seed}, table[seed]))
    runs += [(name, cfg, scores) for name, cfg, scores in extra]
    for name, cfg, scores in runs:
        if evaluate is not None:
            cfg = {**cfg, "evaluate": evaluate(cfg["l2"]) if callable(evaluate) else evaluate}
        write_scores(write_trial(exp, name, cfg, curve(0.9)), scored(3, scores))


def test_the_default_baseline_is_each_configs_clean_counterpart_of_the_same_l2(tmp_path):
    exp = tmp_path / "exp"
    # More: a gaussian-at-scale-0 config beside l2 0's noise_type none one (none preferred), and
    # a noisy config of an l2 no clean config has (NaN, named by a warning).
    write_l2_study(exp, extra=[("l2_0_g0_s0_00000", config(noise_scale=0.0, l2=0.0), BASE2[0]),
                               ("l2_0.001_model_s0_00000", config(noise_scale=0.5, l2=1e-3), MODEL[0])])
    table = load_robustness(str(exp))
    with pytest.warns(BaselineWarning) as caught:
        each = trial_measures(table).set_index(["noise_type", "noise_scale", "l2", "seed"])
    said = [str(w.message) for w in caught if issubclass(w.category, BaselineWarning)]
    assert said == ["mCE: no clean-trained config (noise_type none or noise_scale 0) equal in every key but "
                    "noise_type, noise_scale, noise_target to mlp64, noise_type=gaussian, noise_scale=0.5, l2=0.001; "
                    "its mCE is left NaN (pass baseline={key: value} to choose one)"]
    for seed in (0, 1):
        assert each.loc[("gaussian", 0.5, 0.0, seed), "mce"] == pytest.approx(MCE[seed])
        assert each.loc[("gaussian", 0.5, 0.0, seed), "relative_mce"] == pytest.approx(RMCE[seed])
        assert each.loc[("gaussian", 0.5, 1e-4, seed), "mce"] == pytest.approx(MCE2[seed])
        assert each.loc[("gaussian", 0.5, 1e-4, seed), "relative_mce"] == pytest.approx(RMCE2[seed])
    assert MCE2[0] == pytest.approx(126.6667, abs=1e-4) and RMCE2[1] == pytest.approx(132.7485, abs=1e-4)
    lonely = each.loc[("gaussian", 0.5, 1e-3, 0)]
    assert np.isnan(lonely["mce"]) and np.isnan(lonely["relative_mce"]) and lonely["baseline"] == ""
    # gaussian at scale 0 (l2 0): compared with l2 0's noise_type none config, BASE2[0] against BASE.
    assert each.loc[("gaussian", 0.0, 0.0, 0), "mce"] == pytest.approx(BASE2_VS_BASE)
    assert each.loc[("gaussian", 0.0, 0.0, 0), "relative_mce"] == pytest.approx(BASE2_VS_BASE_REL0)
    assert each.loc[("gaussian", 0.5, 0.0, 0), "baseline"] == "mlp64: noise_type=none, noise_scale=0, l2=0"
    assert each.loc[("gaussian", 0.5, 1e-4, 1), "baseline"] == "mlp64: noise_type=none, noise_scale=0, l2=0.0001"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BaselineWarning)
        summary = robustness_summary(table).set_index(["noise_type", "noise_scale", "l2"])
    assert summary.loc[("gaussian", 0.5, 1e-4), "mce_mean"] == pytest.approx((MCE2[0] + MCE2[1]) / 2)
    assert summary.loc[("none", 0.0, 1e-4), "mce_mean"] == pytest.approx(100)  # a clean config: itself
    assert summary.loc[("none", 0.0, 0.0), "relative_mce_mean"] == pytest.approx(100)


def test_the_grid_names_the_baseline_in_its_evaluate_section(tmp_path):
    import noisesweep

    exp = tmp_path / "exp"
    section = '{"baseline":{"l2":0,"noise_scale":0},"gaussian":[0.5],"seed":0}'
    write_l2_study(exp, evaluate=section)
    table = load_robustness(str(exp))
    assert set(table["evaluate"]) == {section}  # kept in the tidy table
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        each = trial_measures(table).set_index(["noise_type", "l2", "seed"])
        summary = noisesweep.load(str(exp)).robustness_summary().set_index(["noise_type", "l2"])
        wide = accuracy_table(table)
    # One baseline, l2 0's clean config, for every config: the l2 1e-4 noisy one's mCE is MODEL
    # against BASE as at l2 0, the l2 1e-4 clean one's BASE2 against BASE.
    assert set(each["baseline"]) == {"mlp64: noise_type=none, noise_scale=0, l2=0"}
    for seed in (0, 1):
        for l2 in (0.0, 1e-4):
            assert each.loc[("gaussian", l2, seed), "mce"] == pytest.approx(MCE[seed])
            assert each.loc[("gaussian", l2, seed), "relative_mce"] == pytest.approx(RMCE[seed])
        assert each.loc[("none", 1e-4, seed), "mce"] == pytest.approx(BASE2_VS_BASE)
    assert each.loc[("none", 1e-4, 0), "relative_mce"] == pytest.approx(BASE2_VS_BASE_REL0)
    assert BASE2_VS_BASE == pytest.approx(57.4750, abs=1e-4)
    assert summary.loc[("none", 1e-4), "mce_mean"] == pytest.approx(BASE2_VS_BASE)
    assert summary.loc[("none", 0.0), "mce_mean"] == pytest.approx(100)
    # `evaluate` is no axis: not a column of the summary, not in a config's name.
    assert "evaluate" not in summary.reset_index() and not any("evaluate" in str(c) for c in wide.columns)
    # A baseline passed wins over the grid's.
    passed = trial_measures(table, baseline={"noise_scale": 0, "l2": 1e-4})
    passed = passed.set_index(["noise_type", "l2", "seed"])
    assert passed.loc[("gaussian", 0.0, 0), "mce"] == pytest.approx(MCE2[0])

    # Configs naming different baselines (their evaluate differs): a warning, the first in the
    # table's order used (trial folder l2_0.0001_... sorts before l2_0_...: l2 1e-4's clean
    # config, for l2 0's configs too); the evaluate strings still no label.
    other = tmp_path / "other"
    write_l2_study(other, evaluate=lambda l2: section if l2 == 0 else section.replace('"l2":0', '"l2":0.0001'))
    table = load_robustness(str(other))
    with pytest.warns(BaselineWarning, match=r"name different baselines \(l2=0.0001, noise_scale=0; l2=0, "
                      r"noise_scale=0\); the first is used"):
        each = trial_measures(table).set_index(["noise_type", "l2", "seed"])
    assert each.loc[("gaussian", 0.0, 1), "mce"] == pytest.approx(MCE2[1])
    assert set(each["baseline"]) == {"mlp64: noise_type=none, noise_scale=0, l2=0.0001"}
    assert not any("evaluate" in str(c) for c in accuracy_table(table).columns)
    # A grid's baseline naming no config key: a warning, no mCE, no crash (the report goes on).
    table["evaluate"] = '{"baseline":{"speed":1},"gaussian":[0.5]}'
    with pytest.warns(BaselineWarning, match="the grid's evaluate: baseline: 'speed' no config key"):
        assert trial_measures(table)["mce"].isna().all()


def test_tidy_table_rows_values_and_pack_members(tmp_path):
    exp = tmp_path / "exp"
    trials = write_mce_study(exp)
    # A pack of two replicates: each member has its own folder, params.json and robustness/.
    pack = exp / "pack_mlp64_2m_00009"
    pack.mkdir()
    members = [config(noise_scale=1.0, seed=s) for s in (0, 1)]
    (pack / "params.json").write_text(json.dumps({"members": json.dumps(members)}))
    (pack / "members.json").write_text(json.dumps(["m0", "m1"]))
    for s, cfg in enumerate(members):
        write_scores(write_trial(pack, f"m{s}", cfg, curve(0.8)), scored(3, {CLEAN: 0.7 + s / 100, ("fog", 1): 0.5}))
    table = load_robustness(str(exp))
    assert len(table) == 4 * 5 + 2 * 2
    for column in ("experiment", "trial", "status", "suite", "condition", "severity", "epoch", "accuracy", "loss",
                   "noisy_mse", "denoised_mse", "seasoned_accuracy", "denoised_accuracy", "arch", "noise_scale",
                   "l2", "seed"):
        assert column in table, column
    row = table[(table["trial"] == "mlp64_model_s1_00001") & (table["condition"] == "blur") & (table["severity"] == 2)]
    assert len(row) == 1
    row = row.iloc[0]
    assert row["accuracy"] == pytest.approx(0.62) and row["loss"] == pytest.approx(0.38)
    assert row["suite"] == "cifar10_c" and row["epoch"] == 3 and row["seed"] == 1 and row["status"] == "finished"
    assert np.isnan(row["denoised_mse"]) and row["source"] == "train.csv" and row["experiment"] == "exp"
    clean = table[(table["trial"] == "pack_mlp64_2m_00009/m1") & (table["condition"] == "clean")].iloc[0]
    assert clean["suite"] == "" and clean["severity"] == 0 and clean["accuracy"] == pytest.approx(0.71)
    assert clean["noise_scale"] == 1.0
    # The corruption x config table: the mean over severities and seeds, clean first.
    wide = accuracy_table(table).set_index(["suite", "condition"])
    assert list(wide.index[:1]) == [("", "clean")]
    assert wide.loc[("cifar10_c", "fog"), "mlp64, noise_type=gaussian, noise_scale=0.5"] == \
        pytest.approx((0.85 + 0.75 + 0.83 + 0.71) / 4)
    assert wide.loc[("", "clean"), "mlp64, noise_type=none, noise_scale=0"] == pytest.approx(0.91)


def test_the_last_epoch_wins_then_the_later_file(tmp_path):
    exp = tmp_path / "exp"
    path = write_trial(exp, "t_00000", config(epochs=5), curve(0.9, epochs=5))
    fog = ("cifar10_c", "fog", 1)
    write_scores(path, [*scored(1, {CLEAN: 0.50, fog: 0.40}), *scored(2, {CLEAN: 0.60, fog: 0.45}),
                        *scored(3, {CLEAN: 0.70, fog: 0.41, ("cifar10_c", "blur", 1): 0.33})])
    # Two later scorings of epoch 3: the later file wins (evaluate-10 after evaluate-2, by number).
    write_scores(path, scored(3, {fog: 0.42, CLEAN: 0.71}), "evaluate-2.csv")
    write_scores(path, scored(3, {fog: 0.43}), "evaluate-10.csv")
    # An earlier file that scored a later epoch: the latest epoch wins over the later file.
    write_scores(path, scored(5, {CLEAN: 0.90}), "evaluate-1.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = load_robustness(str(exp)).set_index(["condition", "severity"])
    assert table.loc[("fog", 1), "accuracy"] == pytest.approx(0.43)
    assert table.loc[("fog", 1), "source"] == "evaluate-10.csv" and table.loc[("fog", 1), "epoch"] == 3
    assert table.loc[("clean", 0), "accuracy"] == pytest.approx(0.90) and table.loc[("clean", 0), "epoch"] == 5
    assert table.loc[("blur", 1), "epoch"] == 3 and len(table) == 3
    every = load_robustness(str(exp), all_epochs=True)
    fogs = every[every["condition"] == "fog"]
    assert fogs["epoch"].tolist() == [1, 2, 3] and fogs["accuracy"].tolist() == pytest.approx([0.40, 0.45, 0.43])
    cleans = every[every["condition"] == "clean"]
    assert cleans["epoch"].tolist() == [1, 2, 3, 5]
    assert cleans["accuracy"].tolist() == pytest.approx([0.50, 0.60, 0.71, 0.90])


def test_broken_csvs_are_skipped_with_a_warning_the_rest_read(tmp_path):
    exp = tmp_path / "exp"
    path = write_trial(exp, "t_00000", config(), curve(0.9))
    good = write_scores(path, scored(3, {CLEAN: 0.9, ("fog", 1): 0.8}))
    cut = write_scores(path, scored(3, {CLEAN: 0.1, ("fog", 1): 0.1, ("fog", 2): 0.1}), "evaluate-1.csv")
    text = open(cut).read()
    open(cut, "w").write(text[:text.rindex("fog") + 5])  # the last row cut short
    wrong = write_scores(path, scored(3, {CLEAN: 0.2}), "evaluate-2.csv")
    text = open(wrong).read()
    open(wrong, "w").write(text.replace("severity", "level"))
    words = write_scores(path, scored(3, {CLEAN: 0.3}), "evaluate-3.csv")
    text = open(words).read()
    open(words, "w").write(text.replace("0.3,", "high,"))
    empty = write_scores(path, [], "evaluate-4.csv")
    open(empty, "w").close()
    stray = write_scores(path, [], "notes.csv")
    (exp / "t_00000" / ROBUSTNESS_FOLDER / ".evaluate-5.csv.tmp").write_text("half")  # being written: passed over
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = load_robustness(str(exp))
    said = [str(w.message) for w in caught if issubclass(w.category, LogWarning)]
    assert f"{cut}: line 4 has 4 fields, its header 10 (cut short?); skipped" in said
    assert any(m.startswith(f"{wrong}: header ") and m.endswith("; skipped") for m in said)
    assert f"{words}: line 2: accuracy = 'high': not a number; skipped" in said
    assert f"{empty}: empty file; skipped" in said
    assert f"{stray}: neither train.csv nor evaluate-<n>.csv; skipped" in said
    assert len(said) == 5
    assert set(table["source"]) == {os.path.basename(good)}
    assert table.set_index("condition")["accuracy"].to_dict() == pytest.approx({"clean": 0.9, "fog": 0.8})


def write_noise_study(exp):
    """Training noise none / gaussian 0.3 / gaussian 0.6 x 2 seeds, scored under test Gaussian
    noise at 0.3 and 0.6 (listed by themselves) and a cifar10_c-like suite, every epoch."""
    acc = {}
    for train in (0.0, 0.3, 0.6):
        for seed in (0, 1):
            cfg = config(noise_type="none" if train == 0 else "gaussian", noise_scale=train, seed=seed)
            path = write_trial(exp, f"n{train}_s{seed}_0000{seed}", cfg, curve(0.9))
            rows = []
            for epoch in (1, 2, 3):
                levels = {CLEAN: 0.9 - train / 10 + seed / 100}
                for test in (0.3, 0.6):
                    levels[("", "gaussian", test)] = 0.9 - abs(train - test) / 2 - test / 10 + seed / 100
                levels[("fog", 1)] = 0.6 + train / 5
                levels[("fog", 2)] = 0.5 + train / 5
                levels = {k: v * epoch / 3 for k, v in levels.items()}
                rows += scored(epoch, levels)
                acc.update({(train, seed, epoch, k): v for k, v in levels.items()})
            write_scores(path, rows)
    return acc


def test_the_train_noise_by_test_noise_heatmap_holds_the_mean_accuracies(tmp_path):
    exp = tmp_path / "exp"
    acc = write_noise_study(exp)
    scores = load_robustness(str(exp), all_epochs=True)
    with figures.collected() as drawn:
        robustness_figures.train_vs_test_noise(scores, "")
    assert len(drawn) == 1
    grid = np.asarray(drawn[0].axes[0].images[0].get_array())
    labels = [t.get_text() for t in drawn[0].axes[0].get_yticklabels()]
    assert labels == ["none", "gaussian 0.3", "gaussian 0.6"]
    assert [t.get_text() for t in drawn[0].axes[0].get_xticklabels()] == ["0", "0.3", "0.6"]
    for i, train in enumerate((0.0, 0.3, 0.6)):
        for j, key in enumerate((CLEAN, ("", "gaussian", 0.3), ("", "gaussian", 0.6))):
            assert grid[i, j] == pytest.approx(np.mean([acc[(train, s, 3, key)] for s in (0, 1)]))
    levels = per_level(load_robustness(str(exp)))
    fog = levels[(levels["condition"] == "fog") & (levels["noise_scale"] == 0.3)]
    assert fog["severity"].tolist() == [0, 1, 2] and fog["n"].tolist() == [2, 2, 2]  # clean at severity 0
    assert fog["mean"].tolist() == pytest.approx([0.9 - 0.03 + 0.005, 0.66, 0.56])


def test_the_report_writes_robustness_files_only_when_there_are_scores(tmp_path):
    plain = tmp_path / "plain"
    for seed in (0, 1):
        write_trial(plain, f"t{seed}", config(seed=seed), curve(0.9))
    out = tmp_path / "out_plain"
    written = report.build([str(plain)], str(out), log=lambda line: None)
    assert not any("robustness" in os.path.basename(p) for p in written)
    assert not any("robustness" in n for n in os.listdir(out)) and not any(
        "robustness" in n for n in os.listdir(out / "figures"))
    assert "Robustness" not in (out / "report.md").read_text()

    exp = tmp_path / "exp"
    acc = write_noise_study(exp)
    out = tmp_path / "out"
    lines = []
    written = report.build([str(exp)], str(out), log=lines.append)
    for name in ("robustness.csv", "robustness_summary.csv", "robustness_accuracy.csv"):
        assert str(out / name) in written
    figs = set(os.listdir(out / "figures"))
    assert {"robustness_vs_severity_cifar10_c.png", "robustness_vs_severity.png", "robustness_heatmap_gaussian.png",
            "robustness_vs_epoch.png", "robustness_vs_epoch.pdf"} <= figs
    tidy = pd.read_csv(out / "robustness.csv", keep_default_na=False, na_values=[""])
    assert len(tidy) == 6 * 5 and set(tidy["epoch"]) == {3}
    summary = pd.read_csv(out / "robustness_summary.csv")
    row = summary[(summary["suite"] == "cifar10_c") & (summary["noise_scale"] == 0.6)].iloc[0]
    assert row["corruption_accuracy_mean"] == pytest.approx((0.72 + 0.62) / 2)
    # fog's error: (0.28 + 0.38) against the clean-trained baseline's (0.4 + 0.5)
    assert row["mce_mean"] == pytest.approx(100 * 0.66 / 0.9)
    assert row["baseline"] == "mlp64: noise_type=none, noise_scale=0"
    text = (out / "report.md").read_text()
    assert "## Robustness" in text and "![robustness_heatmap](figures/robustness_heatmap_gaussian.png)" in text
    assert "| mlp64 | gaussian | 0.6 |" in text and "| cifar10_c | fog |" in text
    assert text.index("## Robustness") < text.index("## Figures")
    assert not any("warning" in line for line in lines)


def test_the_report_names_a_broken_scores_file_and_the_api_reads_the_table(tmp_path):
    import noisesweep

    exp = tmp_path / "exp"
    trials = write_mce_study(exp)
    broken = os.path.join(trials[("model", 0)], ROBUSTNESS_FOLDER, "evaluate-1.csv")
    open(broken, "w").write(",".join(ROBUSTNESS_COLUMNS) + "\n3,cifar10_c,fog")
    lines = []
    report.build([str(exp)], str(tmp_path / "out"), log=lines.append)
    said = f"{broken}: line 2 has 3 fields, its header 10 (cut short?); skipped"
    assert f"warning: {said}" in lines and f"- {said}" in (tmp_path / "out" / "report.md").read_text()

    found = noisesweep.load(str(exp))
    with pytest.warns(LogWarning, match="evaluate-1.csv: line 2 has 3 fields"):
        assert len(found.robustness()) == 20
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogWarning)
        assert set(found.robustness(all_epochs=True)["epoch"]) == {3}
        summary = found.robustness_summary().set_index("noise_scale")
        assert summary.loc[0.5, "mce_mean"] == pytest.approx((MCE[0] + MCE[1]) / 2)
        assert {"robustness_vs_severity", "robustness_heatmap", "robustness_vs_epoch"} <= set(found.figure_names())
        figure = found.figure("robustness_vs_severity")
        assert figure.axes and figure.axes[0].get_title() == "blur"
        with pytest.raises(ValueError, match="robustness vs epoch: the configs were scored at fewer than two epochs"):
            found.figure("robustness_vs_epoch")
    plain = tmp_path / "plain"
    write_trial(plain, "t0", config(), curve(0.9))
    assert noisesweep.load(str(plain)).robustness().empty
    with pytest.raises(ValueError, match="no config's robustness scores"):
        noisesweep.load(str(plain)).figure("robustness_heatmap")


def test_the_robustness_report_runs_without_ray_or_tensorflow(tmp_path):
    exp = tmp_path / "exp"
    write_noise_study(exp)
    code = ("import runpy, sys; sys.argv = sys.argv[1:]\n"
            "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\nexcept SystemExit as e:\n    rc = e.code\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'tensorflow', 'keras', 'yaml')]\n"
            "assert {'analysis.robustness', 'analysis.robustness_measures', 'analysis.robustness_report',\n"
            "        'analysis.robustness_figures'} <= set(sys.modules)\n"
            "assert not bad, bad; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, "analysis/report.py", str(exp), "--out", str(tmp_path / "o")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "robustness_summary.csv").exists()


def test_a_one_level_suite_is_one_panel_and_a_denoiser_is_measured_by_its_denoised_accuracy(tmp_path):
    """MNIST-C's conditions have one level (severity 0): one panel, a point per condition.
    A denoiser writes no accuracy: its measures are of the denoised images' accuracy."""
    exp = tmp_path / "exp"
    for seed in (0, 1):
        cfg = config(arch="dae_dense", task="denoise", noise_type="salt_and_pepper", noise_scale=0.4, seed=seed,
                     epochs=1)
        path = write_trial(exp, f"dae_s{seed}_0000{seed}", cfg, [{"loss": 0.3, "val_loss": 0.31}])
        rows = [{"epoch": 1, "suite": s, "condition": c, "severity": 0, "loss": 0.1, "noisy_mse": 0.02,
                 "denoised_mse": 0.01, "seasoned_accuracy": 0.5, "denoised_accuracy": acc + seed / 100}
                for s, c, acc in (("", "clean", 0.95), ("mnist_c", "fog", 0.70), ("mnist_c", "shear", 0.80))]
        write_scores(path, rows)
    table = load_robustness(str(exp))
    assert table["accuracy"].isna().all() and len(table) == 6
    with pytest.warns(BaselineWarning, match="no clean-trained config .* to dae_dense, noise_type=salt_and_pepper"):
        row = robustness_summary(table).iloc[0]
    assert row["suite"] == "mnist_c" and row["corruption_accuracy_mean"] == pytest.approx(0.755)
    assert row["clean_accuracy_mean"] == pytest.approx(0.955) and row["n"] == 2
    with figures.collected() as drawn:
        robustness_figures.accuracy_vs_severity(load_robustness(str(exp), all_epochs=True), "")
    assert len(drawn) == 1 and len(drawn[0].axes) == 1
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["fog", "shear"]
    assert "denoised accuracy" in ax.get_ylabel()
