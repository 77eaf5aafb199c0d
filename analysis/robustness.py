"""A config's scores under test-time corruptions and noise, read into the robustness table.

Each config's folder (a pack's member's own folder) may hold `robustness/`
(sweeps.schema.ROBUSTNESS_FOLDER) with one CSV per scoring: `train.csv`, written by
training, then `evaluate-1.csv`, `evaluate-2.csv`, ... by each later `noisesweep evaluate`.
Each has the header sweeps.schema.ROBUSTNESS_COLUMNS (epoch, suite, condition, severity,
then the metrics, empty where a task lacks one; further columns are ignored) and one row
per (epoch, suite, condition, severity).

Which row counts: per config and (suite, condition, severity), the row of the latest epoch
scored (the final weights); where two files give that key at the same epoch, the later
file wins (evaluate-2 over evaluate-1 over train), and within one file the later row. A
file that cannot be read whole (no header of those columns, a row cut short or not numbers
where numbers belong) is warned about (analysis.load.LogWarning), naming it, and left out.

The summary measures (mean corruption accuracy, mCE, relative mCE) are in
analysis.robustness_measures, the report's section in analysis.robustness_report. Only the
schema is taken from sweeps/ (no Ray, TensorFlow or YAML).
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings

import pandas as pd

from analysis.aggregate import REPLICATE_KEY, _hashable
from analysis.figures import format_value
from analysis.load import LogWarning, MAX_EPOCH, _base, experiment_labels, iter_trials, row_ids, trial_dirs
from sweeps.schema import CLEAN, FINISHED, ROBUSTNESS_COLUMNS, ROBUSTNESS_FOLDER, ROBUSTNESS_KEYS, ROBUSTNESS_METRICS

# Columns the loader adds; every other column is a config key (one named like these is
# renamed config/<key>).
RESERVED = ("experiment", "trial", "status", "complete", *ROBUSTNESS_COLUMNS, "source")
# The noise types a trial trains with (sweeps.noise.NOISES, which the analysis does not import):
# a condition of that name is test noise at scales, for the train x test noise heatmap.
NOISE_CONDITIONS = ("gaussian", "salt_and_pepper")
# A config's `evaluate:` section (sweeps.conditions), one JSON string: kept in the tidy
# table, but no axis (the same for a grid's configs), so neither a group key nor a label.
EVALUATE_KEY = "evaluate"
TRAIN_FILE = "train.csv"
EVALUATE_FILE = re.compile(r"evaluate-([0-9]+)\.csv")


def _warn(message: str, kind=LogWarning) -> None:
    warnings.warn(message, kind, stacklevel=3)


def file_rank(name: str) -> int | None:
    """A scoring file's place in the order later files win by: train.csv 0, evaluate-n.csv n;
    None for another name."""
    if name == TRAIN_FILE:
        return 0
    found = EVALUATE_FILE.fullmatch(name)
    return int(found.group(1)) if found and int(found.group(1)) >= 1 else None


def _number(text: str, what: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} = {text!r}: not a number") from None


def _parse(fields: dict) -> dict:
    """One CSV row as typed values; ValueError naming what is wrong."""
    epoch = _number(fields["epoch"], "epoch")
    if not math.isfinite(epoch) or epoch != int(epoch) or not 0 <= epoch <= MAX_EPOCH:
        raise ValueError(f"epoch = {fields['epoch']!r}: not an epoch number (0 to {MAX_EPOCH:,})")
    if not fields["condition"]:
        raise ValueError("no condition")
    severity = _number(fields["severity"], "severity")
    if not math.isfinite(severity):
        raise ValueError(f"severity = {fields['severity']!r}: not a finite number")
    row = {"epoch": int(epoch), "suite": fields["suite"], "condition": fields["condition"], "severity": severity}
    for m in ROBUSTNESS_METRICS:
        row[m] = _number(fields[m], m) if fields[m].strip() else math.nan
    return row


def read_scores(path: str) -> list[dict] | None:
    """The rows of one scoring CSV, or None (with a warning naming the file) when it cannot
    be read whole."""
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                _warn(f"{path}: empty file; skipped")
                return None
            missing = [c for c in ROBUSTNESS_COLUMNS if c not in header]
            if missing or len(set(header)) < len(header):
                _warn(f"{path}: header {','.join(header)!r} is not {','.join(ROBUSTNESS_COLUMNS)!r}; skipped")
                return None
            for fields in reader:
                if not fields:  # a blank line
                    continue
                if len(fields) != len(header):
                    _warn(f"{path}: line {reader.line_num} has {len(fields)} fields, its header {len(header)} "
                          "(cut short?); skipped")
                    return None
                try:
                    rows.append(_parse(dict(zip(header, fields))))
                except ValueError as e:
                    _warn(f"{path}: line {reader.line_num}: {e}; skipped")
                    return None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        _warn(f"{path}: unreadable ({e}); skipped")
        return None
    if not rows:
        _warn(f"{path}: no rows; skipped")
        return None
    return rows


def scoring_files(folder: str) -> list[tuple[int, str]]:
    """(rank, path) of a config's robustness/ CSVs, earliest first; a CSV of another name is
    warned about and left out (files being written, not ending .csv, are passed over)."""
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        _warn(f"{folder}: unreadable ({e}); skipped")
        return []
    found = []
    for name in names:
        if not name.endswith(".csv") or not os.path.isfile(os.path.join(folder, name)):
            continue
        rank = file_rank(name)
        if rank is None:
            _warn(f"{os.path.join(folder, name)}: neither {TRAIN_FILE} nor evaluate-<n>.csv; skipped")
            continue
        found.append((rank, os.path.join(folder, name)))
    return sorted(found)


def _has_scores(path: str) -> bool:
    folder = os.path.join(path, ROBUSTNESS_FOLDER)
    return os.path.isdir(folder) and any(n.endswith(".csv") for n in os.listdir(folder))


def any_scores(*experiments: str) -> bool:
    """Whether any config of the experiments has a robustness/ CSV (stats only, no logs read)."""
    return any(_has_scores(path) for exp in experiments for path in trial_dirs(exp))


def final_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Of an all-epochs table (load_robustness(all_epochs=True)), per config and (suite,
    condition, severity) the row of its latest epoch."""
    if table.empty:
        return table
    order = table.sort_values(["experiment", "trial", "suite", "condition", "severity", "epoch"], kind="stable")
    return order.drop_duplicates(["experiment", "trial", "suite", "condition", "severity"], keep="last") \
        .reset_index(drop=True)


def load_robustness(*experiments: str, all_epochs: bool = False) -> pd.DataFrame:
    """The robustness table of the given experiment folders: one row per config (trial
    folder: a pack's member each) and (suite, condition, severity), at its latest epoch scored.

    Columns: `experiment`, `trial`, `status`, `complete` (as analysis.load's), `suite`,
    `condition`, `severity`, `epoch`, the metrics (`accuracy`, `loss`, the denoiser's
    `noisy_mse`, `denoised_mse`, `seasoned_accuracy`, `denoised_accuracy`: NaN where the
    task lacks one), `source` (the file the row came from), then the flat config (`arch`,
    `noise_type`, `noise_scale`, `l2`, `seed`, ...). `all_epochs=True`: every epoch scored,
    one row per (config, epoch, suite, condition, severity), for curves over training.

    Where a key is given twice for one epoch, the later file wins (evaluate-2.csv over
    evaluate-1.csv over train.csv), and within one file its later row; the latest epoch
    is then taken per key. Empty (no rows, the columns) when no config has scores.
    """
    records = []
    labels = experiment_labels(experiments)
    for exp, path, config, epochs, status in iter_trials(labels, where=_has_scores):
        base = _base(labels[exp], exp, path, status)
        config = {(f"config/{k}" if k in RESERVED else k): v for k, v in config.items()}
        for rank, file in scoring_files(os.path.join(path, ROBUSTNESS_FOLDER)):
            for n, row in enumerate(read_scores(file) or ()):
                records.append({**base, **row, "source": os.path.basename(file), "_rank": rank, "_row": n, **config})
    if not records:
        return pd.DataFrame(columns=list(RESERVED))
    table = pd.DataFrame.from_records(records)
    key = ["experiment", "trial", *ROBUSTNESS_KEYS]
    table = table.sort_values([*key, "_rank", "_row"], kind="stable").drop_duplicates(key, keep="last")
    table = table.drop(columns=["_rank", "_row"])
    table = table.sort_values(["experiment", "trial", "epoch", "suite", "condition", "severity"], kind="stable")
    table = table.reset_index(drop=True)
    return table if all_epochs else final_scores(table)


def config_keys(table: pd.DataFrame) -> list[str]:
    """The config keys of a robustness table, in their order."""
    return [c for c in table.columns if c not in RESERVED and not c.startswith("_")]


def group_keys(table: pd.DataFrame) -> list[str]:
    """The config keys that make a group: all but the replicate seed and `evaluate` (the
    grid's scoring section as a JSON string: the same for a grid's configs, so no axis, and
    no useful label where it differs; it stays a column of the tidy table)."""
    return [c for c in config_keys(table) if c not in (REPLICATE_KEY, EVALUATE_KEY)]


def score_metric(table: pd.DataFrame) -> str | None:
    """The accuracy the measures are of: a classifier's `accuracy`, else the denoiser
    composite's `denoised_accuracy`; None if no row has either."""
    for m in ("accuracy", "denoised_accuracy"):
        if m in table and table[m].notna().any():
            return m
    return None


def _finished(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    rows = table[table["status"] == FINISHED].copy() if "status" in table else table.copy()
    keys = config_keys(rows)
    rows = _hashable(rows, keys)
    rows["_arch"] = rows["arch"] if "arch" in rows else ""
    rows["_cell"] = row_ids(rows, group_keys(rows))
    rows["_score"] = pd.to_numeric(rows[metric], errors="coerce").astype(float)
    rows["_error"] = 1 - rows["_score"]
    return rows


def _clean_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """Per trial and suite of its non-clean rows, its clean accuracy: the suite's own clean
    row, else the mean of the trial's clean rows (the one clean test set)."""
    trial = ["experiment", "trial"]
    pairs = rows[rows["condition"] != CLEAN][[*trial, "suite"]].drop_duplicates()
    clean = rows[rows["condition"] == CLEAN]
    own = clean.groupby([*trial, "suite"])["_score"].mean().rename("_own")
    anywhere = clean.groupby(trial)["_score"].mean().rename("_any")
    pairs = pairs.join(own, on=[*trial, "suite"]).join(anywhere, on=trial)
    pairs["clean_accuracy"] = pairs["_own"].fillna(pairs["_any"])
    return pairs.drop(columns=["_own", "_any"])

def config_labels(cells: pd.DataFrame, keys: list[str]) -> pd.Series:
    """A short name per config: its architecture, then the keys that vary."""
    shown = [k for k in keys if k != "arch" and cells[k].nunique(dropna=False) > 1]

    def name(row):
        words = [f"{k}={format_value(row[k])}" for k in shown]
        return ", ".join(([str(row["arch"])] if "arch" in row else []) + words) or "all"

    return cells.apply(name, axis=1) if len(cells) else pd.Series([], dtype=object)


def config_names(rows: pd.DataFrame) -> dict:
    """Cell id -> short name (config_labels) of each config of `rows` (with `_cell`: as
    _finished gives them), ordered by architecture, then the config keys."""
    keys = group_keys(rows)
    cells = rows.drop_duplicates("_cell")
    cells = cells.sort_values(list(dict.fromkeys(k for k in ("arch", *keys) if k in cells)), kind="stable")
    return dict(zip(cells["_cell"], config_labels(cells, keys)))
