"""The robustness table's summary measures: mean corruption accuracy, mCE and relative mCE
per replicate and over replicate seeds, the mCE's baseline, and the per-level and
corruption x config tables. The table itself: analysis.robustness.

Measures, per finished replicate and suite, then mean ± std over replicate seeds per
config: clean accuracy; mean corruption accuracy (the mean over the suite's (condition,
severity) rows but clean); mCE and relative mCE as Hendrycks & Dietterich (2019,
"Benchmarking Neural Network Robustness to Common Corruptions and Perturbations") define
them, with a baseline config in AlexNet's place, in percent (100 x the ratio). With
error E = 1 - accuracy, for corruption c over its severities s:

    CE_c          = sum_s E_{s,c} / sum_s E^base_{s,c}
    relative CE_c = sum_s (E_{s,c} - E_clean) / sum_s (E^base_{s,c} - E^base_clean)

mCE and relative mCE are their means over the suite's corruptions. The baseline's errors
are its means over its replicate seeds; a config's mCE is computed per replicate, over the
baseline's (condition, severity) rows. Which config is a config's baseline: choose_baselines
(by default its clean-trained counterpart, equal to it in every key but the noise keys; or
the one a `baseline={key: value}`, or the grid's `evaluate: baseline:`, names). Only the
schema is taken from sweeps/ (no Ray, TensorFlow or YAML).
"""

from __future__ import annotations

import json
import math
import numbers

import pandas as pd

from analysis.aggregate import REPLICATE_KEY, _describe
from analysis.figures import format_value
from analysis.load import row_ids
from analysis.robustness import (EVALUATE_KEY, _clean_scores, _finished, _warn, config_keys, config_names,
                                 group_keys, score_metric)
from analysis.significance import against_best
from sweeps.schema import CLEAN

MEASURES = ("clean_accuracy", "corruption_accuracy", "mce", "relative_mce")
MINIMIZED = ("mce", "relative_mce")
MEASURE_LABELS = {"clean_accuracy": "clean accuracy", "corruption_accuracy": "mean corruption accuracy",
                  "mce": "mCE (%)", "relative_mce": "relative mCE (%)"}
# The keys that say how a config was trained with noise: a config's default baseline is equal
# to it in every config key but these (choose_baselines).
NOISE_KEYS = ("noise_type", "noise_scale", "noise_target", "noise_clip")


class BaselineWarning(UserWarning):
    """The mCE's baseline could not be chosen (or used) for some configs: they get NaN."""


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number) and not isinstance(a, bool):
        return float(a) == float(b)
    return a == b


def _describe_cell(cells: pd.DataFrame, row: pd.Series, keys: list[str]) -> str:
    """The baseline named by the keys that tell it from the other configs of its table."""
    shown = [k for k in keys if k != "arch" and cells[k].nunique(dropna=False) > 1]
    words = ", ".join(f"{k}={format_value(row[k])}" for k in shown) or "the only config"
    return f"{row['arch']}: {words}" if "arch" in row else words


def _clean_trained(cells: pd.DataFrame) -> pd.Series:
    """Whether each config was trained without noise: noise_type none or noise_scale 0."""
    match = pd.Series(False, index=cells.index)
    if "noise_type" in cells:
        match |= cells["noise_type"] == "none"
    if "noise_scale" in cells:
        match |= pd.to_numeric(cells["noise_scale"], errors="coerce") == 0
    return match


def _config_words(cells: pd.DataFrame, row: pd.Series, keys: list[str]) -> str:
    """A config as a warning names it: its architecture, its noise, the keys that vary."""
    shown = [k for k in keys if k != "arch"
             and (k in ("noise_type", "noise_scale") or cells[k].nunique(dropna=False) > 1)]
    words = [f"{k}={format_value(row[k])}" for k in shown]
    return ", ".join(([str(row["arch"])] if "arch" in row else []) + words) or "the only config"


def grid_baseline(table: pd.DataFrame) -> dict | None:
    """The baseline a grid names in its `evaluate:` section (`baseline: {key: value}`, held in
    each config's `evaluate` JSON string, sweeps.conditions), or None where no config's names
    one (no `evaluate` column, None, or a section without `baseline`). Where configs name
    different ones (experiments of two grids, say), a BaselineWarning says so and the first
    one in the table's order (by experiment, then trial folder) is used; an `evaluate` that is
    not JSON is warned about and passed over."""
    if EVALUATE_KEY not in table or table.empty:
        return None
    configs = table.drop_duplicates(["experiment", "trial"]) if {"experiment", "trial"} <= set(table) else table
    found, seen = [], set()
    for value in configs[EVALUATE_KEY]:
        text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else value
        if not isinstance(text, str) or not text.strip() or text in seen:
            continue
        seen.add(text)
        try:
            section = json.loads(text)
        except ValueError:
            _warn(f"mCE: a config's evaluate {text[:80]!r} is not JSON; its baseline (if any) not read",
                  BaselineWarning)
            continue
        named = section.get("baseline") if isinstance(section, dict) else None
        if isinstance(named, dict) and named and named not in found:
            found.append(named)
    if len(found) > 1:
        _warn("mCE: the configs' evaluate: sections name different baselines (" + "; ".join(
            ", ".join(f"{k}={format_value(v)}" for k, v in b.items()) for b in found) + "); the first is used",
              BaselineWarning)
    return found[0] if found else None


def choose_baselines(rows: pd.DataFrame, baseline: dict | None, named_by: str = "baseline") -> dict:
    """Config cell id -> (its baseline's cell id, the baseline's description) for each config
    that has a baseline; a BaselineWarning for those that have none (or several), whose mCE
    is then NaN. `rows`: _finished's.

    `baseline` None, the default: PER CONFIG, its clean-trained counterpart: the config equal
    to it in every group key (every config key but `seed` and `evaluate`) except the noise
    keys (noise_type, noise_scale, noise_target, noise_clip: NOISE_KEYS, those the table has)
    and trained without noise (noise_type none or noise_scale 0). So in a noise x L2 sweep
    each L2's (and architecture's) noisy configs are compared with the clean config of that
    L2 (and architecture), and a clean config with itself. Where several such configs exist
    (noise_type none and a noise type at scale 0, or clean configs that differ only in
    noise_target or noise_clip), the one of noise_type none is taken, else the first in the
    table's order (by experiment, then trial folder), without a warning; the `baseline`
    column names the one taken. Where none exists, a warning names the configs left NaN.

    `baseline` a mapping, config key -> value (as passed to robustness_summary, or the
    grid's `evaluate: baseline:`, grid_baseline): PER ARCHITECTURE, the one config of the
    architecture matching it is every config of that architecture's baseline (a warning
    where none or several match); one that names an `arch` is every architecture's baseline
    (one reference, as AlexNet is in the paper). A key that is no group key is a ValueError
    (`named_by` "baseline", passed by the caller) or a BaselineWarning and no baseline
    (named by the grid: a report goes on)."""
    keys = group_keys(rows)
    cells = rows.drop_duplicates("_cell")
    if baseline is None:
        return _clean_counterparts(cells, keys)
    unknown = [k for k in baseline if k not in keys]
    if unknown:
        message = f"{', '.join(map(repr, unknown))} no config key; known: {', '.join(keys)}"
        if named_by == "baseline":
            raise ValueError(f"baseline: {message}")
        _warn(f"mCE: {named_by}: {message}; mCE left NaN", BaselineWarning)
        return {}
    match = pd.Series(True, index=cells.index)
    for k, v in baseline.items():
        match &= cells[k].map(lambda x, v=v: _same(x, v))
    what = (f"config matching {named_by} " if named_by == "baseline" else f"config matching {named_by}: ") + \
        ", ".join(f"{k}={format_value(v)}" for k, v in baseline.items())
    chosen = {}
    across = "arch" in baseline
    for arch, mine in cells.groupby("_arch", sort=True):
        found = cells[match] if across else mine[match[mine.index]]
        named = f"arch {arch}: " if arch != "" else ""
        if len(found) == 1:
            row = found.iloc[0]
            words = _describe_cell(cells if across else mine, row, keys)
            chosen.update({cell: (row["_cell"], words) for cell in mine["_cell"]})
            continue
        if not len(found):
            _warn(f"mCE: {named}no {what}; its mCE is left NaN", BaselineWarning)
        else:
            differ = [k for k in keys if found[k].nunique(dropna=False) > 1]
            _warn(f"mCE: {named}{len(found)} configs are a {what} (they differ in {', '.join(differ)}); its mCE is "
                  "left NaN (pass baseline={key: value, ...} naming one)", BaselineWarning)
    return chosen


def _clean_counterparts(cells: pd.DataFrame, keys: list[str]) -> dict:
    """choose_baselines' default: each config's clean-trained config of the same non-noise keys."""
    if "noise_type" not in cells and "noise_scale" not in cells:
        _warn("mCE: no noise_type or noise_scale key, so no clean-trained config to compare with; mCE left "
              "NaN (pass baseline={key: value} to choose one)", BaselineWarning)
        return {}
    clean = _clean_trained(cells)
    noise = [k for k in keys if k in NOISE_KEYS]
    rest = [k for k in keys if k not in NOISE_KEYS]
    same = row_ids(cells, rest) if rest else pd.Series("", index=cells.index)
    chosen = {}
    for _, mine in cells.groupby(same.to_numpy(), sort=False):
        found = mine[clean[mine.index]]
        if len(found) > 1 and "noise_type" in found and (found["noise_type"] == "none").any():
            found = found[found["noise_type"] == "none"]
        if not len(found):
            named = "; ".join(_config_words(cells, row, keys) for _, row in mine.iterrows())
            _warn(f"mCE: no clean-trained config (noise_type none or noise_scale 0) equal in every key but "
                  f"{', '.join(noise)} to {named}; its mCE is left NaN (pass baseline={{key: value}} to choose one)",
                  BaselineWarning)
            continue
        row = found.iloc[0]
        words = _describe_cell(cells, row, keys)
        chosen.update({cell: (row["_cell"], words) for cell in mine["_cell"]})
    return chosen


def trial_measures(table: pd.DataFrame, baseline: dict | None = None, metric: str | None = None) -> pd.DataFrame:
    """The measures of each finished replicate, per suite: one row per (trial, suite) with
    `experiment`, `trial`, the config keys, `suite`, `clean_accuracy`, `corruption_accuracy`,
    `mce` and `relative_mce` (percent; NaN without a baseline), and `baseline` (the config
    the mCE is against). `table`: load_robustness's (final epochs); `metric`: the accuracy
    column (default score_metric's choice).

    `baseline`: choose_baselines'. None: the one the grid names (its `evaluate:` section's
    `baseline:`, grid_baseline), used as if passed; where no config's section names one,
    each config's clean-trained counterpart (equal to it in every key but the noise keys)."""
    metric = metric or score_metric(table)
    keys = config_keys(table)
    trial = ["experiment", "trial"]
    columns = [*trial, *keys, "suite", *MEASURES, "baseline"]
    if metric is None or table.empty:
        return pd.DataFrame(columns=columns)
    rows = _finished(table, metric)
    corrupted = rows[rows["condition"] != CLEAN]
    if corrupted.empty:
        return pd.DataFrame(columns=columns)
    out = corrupted.groupby([*trial, "suite"], sort=False)["_score"].mean().rename("corruption_accuracy").reset_index()
    out = out.merge(_clean_scores(rows), on=[*trial, "suite"], how="left")
    out = out.merge(rows.drop_duplicates(trial)[[*trial, *keys, "_arch", "_cell"]], on=trial)
    out["mce"], out["relative_mce"], out["baseline"] = math.nan, math.nan, ""
    named_by = "baseline"
    if baseline is None:
        baseline = grid_baseline(table)
        named_by = "the grid's evaluate: baseline"
    chosen = choose_baselines(rows, baseline, named_by)
    if chosen:
        out = _mce(out, corrupted, chosen)
    return out[columns]


def _mce(out, corrupted, chosen) -> pd.DataFrame:
    """`out` with its mce and relative_mce filled in against each config's baseline
    (`chosen`: choose_baselines')."""
    trial = ["experiment", "trial"]
    level = ["suite", "condition", "severity"]
    out["_ref"] = out["_cell"].map({cell: ref for cell, (ref, _) in chosen.items()})
    out["baseline"] = out["_cell"].map({cell: words for cell, (_, words) in chosen.items()}).fillna("")
    named = {ref: words for ref, words in chosen.values()}
    # The baseline's mean error over its replicates per (condition, severity), and its mean
    # clean error, per baseline config.
    base = corrupted[corrupted["_cell"].isin(named)]
    base_error = base.groupby(["_cell", *level])["_error"].mean().rename("_base_error").reset_index()
    base_error = base_error.rename(columns={"_cell": "_ref"})
    base_clean = 1 - out[out["_cell"].isin(named)].groupby(["_cell", "suite"])["clean_accuracy"].mean()
    base_clean = base_clean.rename("_base_clean").reset_index().rename(columns={"_cell": "_ref"})
    used = out.loc[out["_ref"].notna(), ["_ref", "suite"]].drop_duplicates()
    used = used.merge(base_error[["_ref", "suite"]].drop_duplicates(), how="left", indicator=True)
    for ref, suite in used.loc[used["_merge"] == "left_only", ["_ref", "suite"]].itertuples(index=False):
        _warn(f"mCE: the baseline {named[ref]} has no scores in suite {suite_name(suite)}; mCE left NaN there for "
              "the configs compared with it", BaselineWarning)
    # Every (trial, condition, severity) the baseline has: a trial without one has no mCE.
    need = out.loc[out["_ref"].notna(), [*trial, "_ref", "suite", "clean_accuracy"]]
    need = need.merge(base_error, on=["_ref", "suite"])
    need = need.merge(corrupted[[*trial, *level, "_error"]], on=[*trial, *level], how="left")
    need = need.merge(base_clean, on=["_ref", "suite"], how="left")
    need["_rel"] = need["_error"] - (1 - need["clean_accuracy"])
    need["_base_rel"] = need["_base_error"] - need["_base_clean"]
    # (A sum skips NaN: a missing score is flagged apart.)
    need["_missing"], need["_no_clean"] = need["_error"].isna(), need["_rel"].isna() | need["_base_rel"].isna()
    each = need.groupby([*trial, "_ref", "suite", "condition"], sort=False)
    per = each[["_error", "_base_error", "_rel", "_base_rel"]].sum().join(each[["_missing", "_no_clean"]].max())
    per["ce"] = (per["_error"] / per["_base_error"]).where(per["_base_error"] > 0)
    per["rce"] = (per["_rel"] / per["_base_rel"]).where(per["_base_rel"] > 0)
    per = per.reset_index()
    for column, why in (("_base_error", "its baseline's errors under them sum to 0"),
                        ("_base_rel", "its baseline's error under them is not above its clean error")):
        idle = per[per[column] <= 0].groupby(["_ref", "suite"])["condition"].unique()
        for (ref, suite), conditions in idle.items():
            _warn(f"{'mCE' if column == '_base_error' else 'relative mCE'}: baseline {named[ref]}, "
                  f"suite {suite_name(suite)}: {', '.join(sorted(conditions))} left out ({why})", BaselineWarning)
    whole = per.groupby([*trial, "suite"], sort=False)
    mce = whole["ce"].mean() * 100
    rmce = whole["rce"].mean() * 100
    missing = whole["_missing"].max().astype(bool)
    lacking = missing[missing]
    if len(lacking):
        _warn(f"mCE: {len(lacking)} trials lack some of their baseline's (condition, severity) scores (first: "
              f"{lacking.index[0][1]}, suite {suite_name(lacking.index[0][2])}); their mCE is left NaN",
              BaselineWarning)
    mce[missing] = math.nan
    rmce[missing | whole["_no_clean"].max().astype(bool)] = math.nan
    out = out.drop(columns=["mce", "relative_mce"]).join(mce.rename("mce"), on=[*trial, "suite"])
    return out.join(rmce.rename("relative_mce"), on=[*trial, "suite"])


def suite_name(suite: str) -> str:
    """A suite as the report names it: the conditions a grid listed by themselves have none."""
    return f"`{suite}`" if suite else "(conditions listed by themselves)"


def robustness_summary(table: pd.DataFrame, baseline: dict | None = None, metric: str | None = None
                       ) -> pd.DataFrame:
    """The measures per config and suite over finished replicate seeds.

    Columns: the group keys (every config key but `seed`), `suite`, `n` (replicates),
    `seeds`, `baseline`, then for each measure (`clean_accuracy`, `corruption_accuracy`,
    `mce`, `relative_mce`: trial_measures) its `_mean`, `_std` (ddof=1), `_min`, `_max` and
    `_ci95`, `rank` (1 = best mean corruption accuracy of its architecture and suite), and
    per measure each config against the best of its architecture and suite as the summary
    does (analysis.significance: Welch over seeds, Holm within the architecture and suite):
    `{measure}_vs_best`, `_diff`, `_diff_ci95`, `_welch_t`, `_welch_df`, `_p`, `_p_holm`.
    """
    measures = trial_measures(table, baseline, metric)
    keys = group_keys(table)
    if measures.empty:
        return pd.DataFrame(columns=[*keys, "suite", "n", "seeds", "baseline"])
    by = [*keys, "suite"]
    for m in MEASURES:
        measures[m] = measures[m].astype(float)
    groups = measures.groupby(by, dropna=False, sort=False)
    summary = groups.size().rename("n").to_frame()
    if REPLICATE_KEY in measures:
        summary["seeds"] = groups[REPLICATE_KEY].agg(lambda s: " ".join(str(v) for v in sorted(s)))
    summary["baseline"] = groups["baseline"].first()
    summary = summary.join(_describe(groups, MEASURES)).reset_index()
    arch = [c for c in ("arch",) if c in summary]
    summary = summary.sort_values(["suite", *arch, "corruption_accuracy_mean"],
                                  ascending=[True] * (1 + len(arch)) + [False], kind="stable", na_position="last")
    summary["rank"] = summary.groupby(["suite", *arch], sort=False).cumcount() + 1
    summary = summary.reset_index(drop=True)
    summary["_cell"] = row_ids(summary, by)
    measures["_cell"] = row_ids(measures, by)
    for m in MEASURES:
        summary = summary.join(_versus_best(summary, measures, m, arch))
    return summary.drop(columns="_cell")


def _versus_best(summary, measures, m, arch) -> pd.DataFrame:
    """analysis.significance.against_best on measure `m`, per suite, its columns named for `m`."""
    values = {cell: g[m].dropna().to_numpy() for cell, g in measures.groupby("_cell", sort=False)}
    names = {"vs_best": f"{m}_vs_best", "welch_t": f"{m}_welch_t", "welch_df": f"{m}_welch_df", "p": f"{m}_p",
             "p_holm": f"{m}_p_holm"}
    parts = []
    for _, sub in summary[summary[f"{m}_mean"].notna()].groupby("suite", sort=False):
        sub = sub.assign(_thin=[len(values.get(c, ())) < 2 for c in sub["_cell"]])
        sub = sub.sort_values([*arch, "_thin", f"{m}_mean"], ascending=[True] * len(arch) + [True, m in MINIMIZED],
                              kind="stable")
        sub["rank"] = sub.groupby(arch, sort=False).cumcount() + 1 if arch else range(1, len(sub) + 1)
        parts.append(against_best(sub, values, m).rename(columns=names))
    columns = [names["vs_best"], f"{m}_diff", f"{m}_diff_ci95", *list(names.values())[1:]]
    found = pd.concat(parts) if parts else pd.DataFrame(columns=columns)
    return found.reindex(index=summary.index, columns=columns)

def per_level(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Mean ± std over finished replicates per config, suite, condition and severity of the
    accuracy (`metric`): columns the group keys, `config` (its short name), `suite`,
    `condition`, `severity`, `n`, `mean`, `std`. Each corruption also gets its trials' clean
    accuracy at severity 0 (unless it has a severity-0 row of its own), so a line over
    severities starts from the clean test set."""
    metric = metric or score_metric(table)
    if metric is None or table.empty:
        return pd.DataFrame()
    rows = _finished(table, metric)
    keys = group_keys(rows)
    trial = ["experiment", "trial"]
    clean = _clean_scores(rows)
    corrupted = rows[rows["condition"] != CLEAN]
    starts = corrupted[[*trial, "suite", "condition"]].drop_duplicates().merge(clean, on=[*trial, "suite"])
    have = corrupted.loc[corrupted["severity"] == 0, [*trial, "suite", "condition"]].drop_duplicates()
    starts = starts.merge(have, how="left", indicator=True)
    starts = starts[starts["_merge"] == "left_only"].drop(columns="_merge")
    starts = starts.rename(columns={"clean_accuracy": "_score"}).assign(severity=0.0)
    info = rows.drop_duplicates(trial)[[*trial, *keys, "_cell"]]
    levels = pd.concat([corrupted[[*trial, "suite", "condition", "severity", "_score"]],
                        starts[[*trial, "suite", "condition", "severity", "_score"]]]).merge(info, on=trial)
    by = [*keys, "suite", "condition", "severity"]
    stats = levels.groupby(by, dropna=False, sort=True)["_score"].agg(["count", "mean", "std"])
    stats = stats.rename(columns={"count": "n"}).reset_index()
    stats.insert(len(keys), "config", row_ids(stats, keys).map(config_names(rows)) if keys else "all")
    return stats


def accuracy_table(table: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """The corruption x config table: a row per (suite, condition), clean first, a column per
    config (its short name), each cell the mean accuracy over the condition's severities and
    the config's finished replicates."""
    metric = metric or score_metric(table)
    if metric is None or table.empty:
        return pd.DataFrame()
    rows = _finished(table, metric)
    trial = ["experiment", "trial"]
    each = rows.groupby([*trial, "_cell", "suite", "condition"], sort=False)["_score"].mean().reset_index()
    names = config_names(rows)
    each["config"] = each["_cell"].map(names)
    wide = each.pivot_table(index=["suite", "condition"], columns="config", values="_score", aggfunc="mean")
    wide = wide.reindex(columns=list(dict.fromkeys(names.values())))
    wide = wide.reset_index()
    wide["_clean"] = wide["condition"] != CLEAN
    wide = wide.sort_values(["suite", "_clean", "condition"], kind="stable").drop(columns="_clean")
    wide.columns.name = None
    return wide.reset_index(drop=True)
