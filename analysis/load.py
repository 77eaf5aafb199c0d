"""Experiment folders Ray Tune wrote -> one tidy DataFrame, one row per trial-epoch.

Reads `params.json` for the config and `result.json` for the epochs (falling
back to `progress.csv`). A damaged or half-written file is warned about,
naming it, and never crashes the load: the trial is kept and counted as
incomplete. Works on a sweep that is still running.

Denoise trials also report, with their last epoch, an evaluation over noise
levels (`eval`) and save sample images in their last checkpoint: those are
read by `load_evaluation` and `trial_file`.
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
# A denoise trial's evaluation, one row per level (sweeps.denoise.evaluate_levels).
EVAL_METRICS = ("noisy_mse", "denoised_mse", "seasoned_accuracy", "denoised_accuracy")
EVAL_COLUMNS = ("level", *EVAL_METRICS, "reference", "reference_sha256_16")


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


def iter_trials(experiments):
    """(experiment, trial folder, flat config, {epoch: report row}, status) for every readable trial."""
    for exp in experiments:
        for path in trial_dirs(exp):
            config, rows, clean = read_trial(path)
            if not config:
                continue
            epochs = {}
            for r in rows:
                epoch = r.get("epoch", r.get("training_iteration"))
                if epoch is not None:
                    epochs[int(epoch)] = r
            yield exp, path, config, epochs, trial_status(path, config, epochs, clean)


def _base(exp: str, path: str, status: str) -> dict:
    return {"experiment": os.path.basename(os.path.normpath(exp)), "trial": os.path.basename(path),
            "status": status, "complete": status in ("finished", "diverged")}


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
    for exp, path, config, epochs, status in iter_trials(experiments):
        base = _base(exp, path, status)
        for epoch, row in sorted(epochs.items()) or [(None, {})]:
            metrics = {k: row[k] for k in (*METRICS, *CONTEXT) if k in row}
            records.append({**base, "epoch": epoch, **metrics, **config})
    df = pd.DataFrame.from_records(records)
    if not df.empty:
        df["epoch"] = df["epoch"].astype("Int64")
    return df


def load_evaluation(*experiments: str) -> pd.DataFrame:
    """One row per denoise trial and evaluation level: `experiment`, `trial`, `status`,
    `complete`, the EVAL_COLUMNS, then the flat config. Empty if no trial reported one.

    A trial's evaluation comes with its last epoch; a trial without it (still running,
    diverged, errored) has no rows here.
    """
    records = []
    for exp, path, config, epochs, status in iter_trials(experiments):
        last = epochs[max(epochs)] if epochs else {}
        evaluation = last.get("eval")
        if not isinstance(evaluation, list):
            continue
        base = _base(exp, path, status)
        extra = {k: last[k] for k in ("reference", "reference_sha256_16") if k in last}
        for level in evaluation:
            if isinstance(level, dict) and "level" in level:
                records.append({**base, **{k: level.get(k) for k in ("level", *EVAL_METRICS)}, **extra, **config})
    return pd.DataFrame.from_records(records)


def trial_file(experiment: str, trial: str, name: str) -> str | None:
    """The newest `checkpoint_*/name` of a trial (files a trial saves at its end), or None."""
    folder = os.path.join(experiment, trial)
    for sub in sorted((d for d in os.listdir(folder) if d.startswith("checkpoint_")), reverse=True):
        path = os.path.join(folder, sub, name)
        if os.path.isfile(path):
            return path
    return None


def config_columns(df: pd.DataFrame) -> list[str]:
    """The config keys of a tidy table (or of an evaluation table), in their order."""
    return [c for c in df.columns if c not in BOOKKEEPING and c not in EVAL_COLUMNS]
