"""Experiment folders Ray Tune wrote -> one tidy DataFrame, one row per trial-epoch.

Reads `params.json` for the config and `result.json` for the epochs (falling
back to `progress.csv`). A damaged or half-written file is warned about,
naming it, and never crashes the load: the trial is kept and counted as
incomplete. Works on a sweep that is still running.
"""

from __future__ import annotations

import json
import os
import warnings

import pandas as pd

METRICS = ("loss", "accuracy", "val_loss", "val_accuracy", "test_loss", "test_accuracy", "epoch_time_s")
CONTEXT = ("node_id", "hostname", "gpus", "pid", "diverged")
# Columns the loader adds; every other column is a config key.
BOOKKEEPING = ("experiment", "trial", "epoch", "status", "complete", *METRICS, *CONTEXT)
STATUSES = ("finished", "diverged", "errored", "running")


class LogWarning(UserWarning):
    """A trial file that could not be read in full."""


def _warn(message: str) -> None:
    warnings.warn(message, LogWarning, stacklevel=3)


def is_trial_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "params.json"))


def trial_dirs(experiment: str) -> list[str]:
    """Trial folders directly under an experiment folder, in name order."""
    names = sorted(os.listdir(experiment))
    return [p for p in (os.path.join(experiment, n) for n in names) if os.path.isdir(p) and is_trial_dir(p)]


def experiment_dirs(path: str) -> list[str]:
    """`path` itself if it holds trials, else its subfolders that do (a storage root like runs/)."""
    if trial_dirs(path):
        return [path]
    subs = (os.path.join(path, n) for n in sorted(os.listdir(path)))
    return [s for s in subs if os.path.isdir(s) and trial_dirs(s)]


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
                _warn(f"{path}: line {n} is not valid JSON (truncated?); skipped")
    return rows, clean


def _flatten(config: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[prefix + key] = value
    return out


def read_trial(path: str) -> tuple[dict, list[dict], bool]:
    """(flat config, report rows, read cleanly) of one trial folder."""
    params = os.path.join(path, "params.json")
    try:
        with open(params, encoding="utf-8") as f:
            config = _flatten(json.load(f))
        # A config key named like a metric or a bookkeeping column must not clobber it.
        config = {(f"config/{k}" if k in BOOKKEEPING else k): v for k, v in config.items()}
    except (OSError, json.JSONDecodeError) as e:
        _warn(f"{params}: unreadable ({e}); trial skipped")
        return {}, [], False
    result, progress = os.path.join(path, "result.json"), os.path.join(path, "progress.csv")
    if os.path.isfile(result) and os.path.getsize(result):
        rows, clean = read_json_lines(result)
    elif os.path.isfile(progress) and os.path.getsize(progress):
        try:
            rows, clean = pd.read_csv(progress).to_dict("records"), True
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            _warn(f"{progress}: unreadable ({e})")
            rows, clean = [], False
    else:
        _warn(f"{path}: no epochs reported (result.json and progress.csv missing or empty)")
        rows, clean = [], False
    return config, rows, clean


def trial_status(path: str, config: dict, epochs: dict, clean: bool) -> str:
    """finished (all configured epochs), diverged (a NaN loss ended it), errored
    (Tune left an error file), or running (still going, or stopped early)."""
    if any(bool(r.get("diverged")) for r in epochs.values()):
        return "diverged"
    wanted = config.get("epochs")
    if clean and epochs and (wanted is None or max(epochs) >= wanted):
        return "finished"
    if os.path.exists(os.path.join(path, "error.txt")):
        return "errored"
    return "running"


def load_experiment(*experiments: str) -> pd.DataFrame:
    """Tidy table of every trial-epoch in the given experiment folders.

    Columns: `experiment`, `trial`, `epoch`, the metrics, context (node,
    pid, diverged), `status` (one of STATUSES), `complete` (status is
    finished or diverged), then the flat config keys (`arch`, `noise_scale`,
    `l2`, `seed`, ...). A trial with no epochs keeps one row with epoch NaN.
    An epoch reported twice (a trial restarted from an older checkpoint)
    keeps its last report.
    """
    records = []
    for exp in experiments:
        for name in sorted(os.listdir(exp)):
            folder = os.path.join(exp, name)
            if os.path.isdir(folder) and not os.listdir(folder):
                _warn(f"{folder}: empty folder, no trial in it")
        for path in trial_dirs(exp):
            config, rows, clean = read_trial(path)
            if not config:
                continue
            epochs = {}
            for r in rows:
                epoch = r.get("epoch", r.get("training_iteration"))
                if epoch is not None:
                    epochs[int(epoch)] = {k: r[k] for k in (*METRICS, *CONTEXT) if k in r}
            status = trial_status(path, config, epochs, clean)
            base = {"experiment": os.path.basename(os.path.normpath(exp)), "trial": os.path.basename(path),
                    "status": status, "complete": status in ("finished", "diverged")}
            for epoch, metrics in sorted(epochs.items()) or [(None, {})]:
                records.append({**base, "epoch": epoch, **metrics, **config})
    df = pd.DataFrame.from_records(records)
    if not df.empty:
        df["epoch"] = df["epoch"].astype("Int64")
    return df


def config_columns(df: pd.DataFrame) -> list[str]:
    """The config keys of a tidy table, in their order."""
    return [c for c in df.columns if c not in BOOKKEEPING]
