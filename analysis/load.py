"""Experiment folders Ray Tune wrote -> one tidy DataFrame, one row per trial-epoch.

Reads `params.json` for the config and `result.json` for the epochs (falling
back to `progress.csv`). A damaged or half-written file is warned about,
naming it, and never crashes the load: the trial is kept, marked incomplete.
Works on a sweep that is still running.
"""

from __future__ import annotations

import json
import math
import os
import warnings

import pandas as pd

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "epoch_time_s")
CONTEXT = ("node_id", "hostname", "pid", "trial_id", "diverged")


class LogWarning(UserWarning):
    """A trial file that could not be read in full."""


def is_trial_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "params.json"))


def trial_dirs(experiment: str) -> list[str]:
    """Trial folders directly under an experiment folder, in name order."""
    return sorted(p for p in (os.path.join(experiment, n) for n in os.listdir(experiment)) if is_trial_dir(p))


def read_json_lines(path: str) -> tuple[list[dict], bool]:
    """Rows of a JSON-lines file and whether it read cleanly; a bad line is skipped
    with a warning (a sweep still writing leaves its last line half-written)."""
    rows, clean = [], True
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                clean = False
                warnings.warn(f"{path}: line {n} is not valid JSON (truncated?); skipped", LogWarning, stacklevel=2)
    return rows, clean


def read_trial(path: str) -> tuple[dict, list[dict], bool]:
    """(config, per-epoch rows, read cleanly) of one trial folder."""
    try:
        with open(os.path.join(path, "params.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        warnings.warn(f"{os.path.join(path, 'params.json')}: unreadable ({e}); trial skipped", LogWarning, stacklevel=2)
        return {}, [], False
    result, progress = os.path.join(path, "result.json"), os.path.join(path, "progress.csv")
    if os.path.isfile(result) and os.path.getsize(result):
        rows, clean = read_json_lines(result)
    elif os.path.isfile(progress) and os.path.getsize(progress):
        try:
            rows, clean = pd.read_csv(progress).to_dict("records"), True
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            warnings.warn(f"{progress}: unreadable ({e})", LogWarning, stacklevel=2)
            rows, clean = [], False
    else:
        warnings.warn(f"{path}: no result.json or progress.csv rows yet", LogWarning, stacklevel=2)
        rows, clean = [], False
    return config, rows, clean


def load_experiment(*experiments: str) -> pd.DataFrame:
    """Tidy table of every trial-epoch in the given experiment folders.

    Columns: `experiment`, `trial`, the flattened config keys, `epoch`, the
    metrics and context (node, pid, diverged), and `complete` (the trial
    reported all its configured epochs, or diverged, and its files read cleanly).
    An epoch reported twice (a trial restarted from an older checkpoint)
    keeps its last report.
    """
    frames = []
    for exp in experiments:
        for path in trial_dirs(exp):
            config, rows, clean = read_trial(path)
            if not config:
                continue
            flat = pd.json_normalize(config, sep="/").iloc[0].to_dict()
            records = [
                {"epoch": r.get("epoch", r.get("training_iteration")),
                 **{k: r[k] for k in (*METRICS, *CONTEXT) if k in r}}
                for r in rows
            ]
            df = pd.DataFrame(records or [{"epoch": math.nan}])
            df = df.drop_duplicates("epoch", keep="last") if records else df
            epochs_done = int(df["epoch"].max()) if records else 0
            diverged = bool(df.get("diverged", pd.Series([False])).fillna(False).astype(bool).any())
            expected = flat.get("epochs")
            df["complete"] = clean and (diverged or expected is None or epochs_done >= expected)
            df.insert(0, "trial", os.path.basename(path))
            df.insert(0, "experiment", os.path.basename(os.path.normpath(exp)))
            for key, value in flat.items():
                if key not in df:
                    df[key] = value
            frames.append(df)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)
