"""Experiment folders Ray Tune wrote -> one tidy DataFrame, one row per trial-epoch.

Reads `params.json` for the config and `result.json` for the epochs (falling
back to `progress.csv`). A damaged or half-written file is warned about,
naming it, and never crashes the load: the trial is kept and counted as
incomplete. Works on a sweep that is still running.

Denoise trials also write, after their last epoch, an evaluation over noise
levels and sample images into their folder (sweeps.schema's file names):
those are read by `load_evaluation` and `trial_file`, as are the older
experiments' (evaluation in the last result row, images in the last checkpoint).
Configs written before trials named their task are read in today's form.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings

import pandas as pd

from sweeps import schema
from sweeps.schema import CONTEXT, EVAL_COLUMNS, EVAL_METRICS, EVAL_REFERENCE

METRICS = tuple(schema.METRICS)
# Columns the loader adds; every other column is a config key.
BOOKKEEPING = ("experiment", "trial", "epoch", "status", "complete", *METRICS, *CONTEXT)


class LogWarning(UserWarning):
    """A trial file that could not be read in full."""


def _warn(message: str) -> None:
    warnings.warn(message, LogWarning, stacklevel=3)


def is_trial_dir(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "params.json"))


def pack_members(path: str) -> list[str] | None:
    """The member folders of a pack's folder (sweeps.schema.MEMBERS_FILE), None if `path`
    is not a pack's."""
    listed = os.path.join(path, schema.MEMBERS_FILE)
    if not os.path.isfile(listed):
        # Tune writes a pack's params.json (its members as one JSON string) as the pack
        # starts; until the pack lists its members, it has none to read, and is no trial.
        return [] if _packed_params(path) else None
    try:
        with open(listed, encoding="utf-8") as f:
            names = json.load(f)
    except (OSError, ValueError) as e:
        _warn(f"{listed}: unreadable ({e}); its members are found by their params.json")
        names = sorted(os.listdir(path))
    if not isinstance(names, list) or not all(schema.is_plain_name(n) for n in names):
        _warn(f"{listed}: not a list of folder names; its members are found by their params.json")
        names = sorted(os.listdir(path))
    members = [os.path.join(path, n) for n in names]
    return [m for m in members if os.path.isdir(m) and is_trial_dir(m)]


def _packed_params(path: str) -> bool:
    try:
        with open(os.path.join(path, "params.json"), encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return False
    if not isinstance(saved, dict):
        return False
    replicates = saved.get(schema.REPLICATES_KEY)
    return bool(saved.get(schema.MEMBERS_KEY)) or (isinstance(replicates, int) and replicates > 1)


def trial_dirs(experiment: str) -> list[str]:
    """Trial folders of an experiment, in name order: one per config, so a pack's members
    (folders inside the pack's) stand in for the pack, and the trials of the experiment's
    growth steps (folders grow-2/, grow-3/, ...: sweeps.growth) are the experiment's."""
    out = []
    for name in sorted(os.listdir(experiment)):
        path = os.path.join(experiment, name)
        if not os.path.isdir(path):
            continue
        if is_trial_dir(path):
            members = pack_members(path)
            out.extend([path] if members is None else members)
        elif schema.is_growth_folder(name):
            out.extend(trial_dirs(path))
    return out


def experiment_dirs(path: str) -> list[str]:
    """`path` itself if it holds trials, else its subfolders that do (a storage root like runs/)."""
    if trial_dirs(path):
        return [path]
    subs = (os.path.join(path, n) for n in sorted(os.listdir(path)))
    return [s for s in subs if os.path.isdir(s) and trial_dirs(s)]


# More epochs than any run can have (sweeps.grids.MAX_EPOCHS is 100,000): a row claiming
# more is damaged, and would make every epoch up to it looked for.
MAX_EPOCH = 1_000_000


def read_json_lines(path: str) -> tuple[list[dict], bool]:
    """Rows of a JSON-lines file and whether it read cleanly; a bad line (not JSON, not a row,
    an epoch that is no epoch number) is skipped with a warning (a sweep still writing leaves
    its last line half-written)."""
    rows, clean = [], True
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                clean = False
                _warn(f"{path}: line {n} is not valid JSON (truncated?); skipped")
                continue
            problem = _row_problem(row)
            if problem:
                clean = False
                _warn(f"{path}: line {n}: {problem}; skipped")
                continue
            rows.append(row)
    return rows, clean


def _row_problem(row) -> str | None:
    """Why `row` is no epoch's row, or None."""
    if not isinstance(row, dict):
        return f"{type(row).__name__}, not a row of metrics"
    epoch = row.get("epoch", row.get("training_iteration"))
    if epoch is not None and _epoch(row) is None:
        return f"epoch = {epoch!r}: not an epoch number (1 to {MAX_EPOCH:,})"
    return None


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
            saved = json.load(f)
        if not isinstance(saved, dict):
            _warn(f"{params}: a {type(saved).__name__}, not a config; trial skipped")
            return {}, [], False
        # Beside a pack, Tune gives a lone config the space's `members` key, empty.
        if isinstance(saved, dict) and saved.get("members", ...) is None:
            del saved["members"]
        config = _flatten(schema.upgrade_config(saved))
        # A config key named like a metric or a bookkeeping column must not clobber it.
        config = {(f"config/{k}" if k in BOOKKEEPING else k): v for k, v in config.items()}
    except (OSError, json.JSONDecodeError) as e:
        _warn(f"{params}: unreadable ({e}); trial skipped")
        return {}, [], False
    result, progress = os.path.join(path, "result.json"), os.path.join(path, "progress.csv")
    if os.path.isfile(result) and os.path.getsize(result):
        rows, clean = read_json_lines(result)
        if not _from_first_epoch(rows) and os.path.isfile(progress):
            # A trial Tune retried within a run: its driver replaced result.json with the
            # storage's older copy before appending the retry's rows, while progress.csv
            # kept every row. The epochs result.json lacks come from progress.csv.
            have = {_epoch(r) for r in rows}
            rows = [r for r in _read_progress(progress)[0] if _epoch(r) not in have] + rows
    elif os.path.isfile(progress) and os.path.getsize(progress):
        rows, clean = _read_progress(progress)
    else:
        _warn(f"{path}: no epochs reported (result.json and progress.csv missing or empty)")
        rows, clean = [], False
    return config, rows, clean


def _epoch(row: dict) -> int | None:
    """A row's epoch as a whole number in [1, MAX_EPOCH], or None (none, or damaged)."""
    e = row.get("epoch", row.get("training_iteration"))
    if isinstance(e, bool) or not isinstance(e, numbers.Real) or not math.isfinite(e) or e != int(e):
        return None
    return int(e) if 1 <= e <= MAX_EPOCH else None


def _from_first_epoch(rows: list[dict]) -> bool:
    """Whether rows hold every epoch from the first to their last."""
    epochs = {e for e in map(_epoch, rows) if e is not None}
    return not epochs or epochs == set(range(1, max(epochs) + 1))


def _read_progress(path: str) -> tuple[list[dict], bool]:
    try:
        rows = pd.read_csv(path).to_dict("records")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        _warn(f"{path}: unreadable ({e})")
        return [], False
    kept = [r for r in rows if not _row_problem(r)]
    if len(kept) < len(rows):
        _warn(f"{path}: {len(rows) - len(kept)} rows without an epoch number (1 to {MAX_EPOCH:,}); skipped")
    return kept, len(kept) == len(rows)


def trial_status(path: str, config: dict, epochs: dict, clean: bool) -> str:
    """sweeps.schema.trial_status of a trial folder: errored if Tune left an error file."""
    # A pack that failed beyond its retries leaves its error beside its members' folders.
    pack = os.path.dirname(path)
    errored = any(os.path.exists(os.path.join(p, schema.ERROR_FILE))
                  for p in (path, *([pack] if os.path.isfile(os.path.join(pack, schema.MEMBERS_FILE)) else [])))
    return schema.trial_status(max(epochs) if epochs else None, config.get("epochs"),
                               any(bool(r.get("diverged")) for r in epochs.values()),
                               errored=errored, clean=clean, stopped=bool(epochs and epochs[max(epochs)].get("stopped")))


def iter_trials(experiments, where=None):
    """(experiment, trial folder, flat config, {epoch: report row}, status) for every readable
    trial (`where`, if given: only the trial folders for which where(folder) is true, the
    others' logs unread)."""
    for exp in experiments:
        for path in trial_dirs(exp):
            if where is not None and not where(path):
                continue
            config, rows, clean = read_trial(path)
            if not config:
                continue
            epochs = {}
            for r in rows:
                epoch = _epoch(r)
                if epoch is not None:
                    epochs[epoch] = r
            yield exp, path, config, epochs, trial_status(path, config, epochs, clean)


def distinct(experiments) -> list[str]:
    """The experiment folders given, each once (the same folder named twice, or by two paths,
    would count its replicates twice)."""
    seen, out = set(), []
    for e in experiments:
        if os.path.realpath(e) not in seen:
            seen.add(os.path.realpath(e))
            out.append(e)
    return out


def experiment_labels(experiments) -> dict[str, str]:
    """Each experiment folder -> the name tables give it: its folder's name, or with as many
    parent folders as tell it from another given folder of that name (laptop/noise and
    cluster/noise), so that two copies of one study stay two experiments."""
    parts = {e: os.path.realpath(e).strip(os.sep).split(os.sep) for e in distinct(experiments)}
    labels = {}
    for e, mine in parts.items():
        depth = 1
        while depth < len(mine) and any("/".join(other[-depth:]) == "/".join(mine[-depth:])
                                        for o, other in parts.items() if o != e):
            depth += 1
        labels[e] = "/".join(mine[-depth:])
    return labels


def _base(label: str, exp: str, path: str, status: str) -> dict:
    # A pack's member is named by its path in the experiment: PACK/MEMBER.
    return {"experiment": label, "trial": os.path.relpath(path, exp),
            "status": status, "complete": status in schema.COMPLETE}


def load_experiment(*experiments: str) -> pd.DataFrame:
    """Tidy table of every trial-epoch in the given experiment folders.

    Columns: `experiment`, `trial`, `epoch`, the metrics, context (node,
    pid, diverged), `status` (one of sweeps.schema.STATUSES), `complete` (status is
    finished or diverged), then the flat config keys (`arch`, `noise_scale`,
    `l2`, `seed`, ...). A trial with no epochs keeps one row with epoch NaN.
    An epoch reported twice (a trial restarted from an older checkpoint)
    keeps its last report.
    """
    records = []
    labels = experiment_labels(experiments)
    for exp in labels:
        for name in sorted(os.listdir(exp)):
            folder = os.path.join(exp, name)
            if os.path.isdir(folder) and not os.listdir(folder):
                _warn(f"{folder}: empty folder, no trial in it")
    for exp, path, config, epochs, status in iter_trials(labels):
        base = _base(labels[exp], exp, path, status)
        for epoch, row in sorted(epochs.items()) or [(None, {})]:
            metrics = {k: row[k] for k in (*METRICS, *CONTEXT) if k in row}
            records.append({**base, "epoch": epoch, **metrics, **config})
    df = pd.DataFrame.from_records(records)
    if not df.empty:
        df["epoch"] = df["epoch"].astype("Int64")
    return df


def _evaluation(path: str, epochs: dict) -> tuple[list | None, dict]:
    """(rows per level, reference note) a trial wrote to its EVALUATION_FILE, or, from
    an older experiment, reported in its last row; (None, {}) if it has none."""
    file = os.path.join(path, schema.EVALUATION_FILE)
    if os.path.isfile(file):
        try:
            with open(file, encoding="utf-8") as f:
                saved = json.load(f)
            return saved.get("levels"), {k: saved[k] for k in EVAL_REFERENCE if k in saved}
        except (OSError, ValueError, AttributeError) as e:
            _warn(f"{file}: unreadable ({e}); its evaluation is left out")
            return None, {}
    last = epochs[max(epochs)] if epochs else {}
    return last.get("eval"), {k: last[k] for k in EVAL_REFERENCE if k in last}


def load_evaluation(*experiments: str) -> pd.DataFrame:
    """One row per denoise trial and evaluation level: `experiment`, `trial`, `status`,
    `complete`, the EVAL_COLUMNS, then the flat config. Empty if no trial wrote one.

    A trial writes its evaluation after its last epoch; a trial without it (still
    running, diverged, errored) has no rows here.
    """
    records = []
    labels = experiment_labels(experiments)
    for exp, path, config, epochs, status in iter_trials(labels):
        evaluation, extra = _evaluation(path, epochs)
        if not isinstance(evaluation, list):
            continue
        base = _base(labels[exp], exp, path, status)
        for level in evaluation:
            if isinstance(level, dict) and "level" in level:
                records.append({**base, **{k: level.get(k) for k in ("level", *EVAL_METRICS)}, **extra, **config})
    return pd.DataFrame.from_records(records)


def trial_file(experiment: str, trial: str, name: str) -> str | None:
    """A file a trial wrote at its end (sweeps.schema's names): in its folder, or in an
    older experiment, its newest `checkpoint_*/`; None if it has none."""
    folder = os.path.join(experiment, trial)
    if os.path.isfile(os.path.join(folder, name)):
        return os.path.join(folder, name)
    for sub in sorted((d for d in os.listdir(folder) if d.startswith("checkpoint_")), reverse=True):
        path = os.path.join(folder, sub, name)
        if os.path.isfile(path):
            return path
    return None


def config_columns(df: pd.DataFrame) -> list[str]:
    """The config keys of a tidy table (or of an evaluation table), in their order."""
    return [c for c in df.columns if c not in BOOKKEEPING and c not in EVAL_COLUMNS]


def row_ids(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """One string per row naming its values in `columns` (NaN, None and lists included),
    to match rows of two tables by those columns."""
    if df.empty:  # agg over no rows gives a frame, not a series
        return pd.Series([], index=df.index, dtype=object)
    return df[columns].map(_value_id).agg("\x1f".join, axis=1)


def _value_id(value) -> str:
    # A missing value reads as None in one table and NaN in another (a groupby key);
    # a number as int or float, numpy or not.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def counted_once(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The table with each config once, and what was dropped, in words.

    The same study given twice (a laptop's experiment and a cluster's copy, or two
    experiments that ran some configs in common): a config trained in more than one of
    them keeps one trial, one that finished if any did, the earliest experiment given
    first; its others leave the table, so no replicate is counted twice.
    """
    if df.empty or df["experiment"].nunique() < 2:
        return df, []
    columns = config_columns(df)
    trials = df.drop_duplicates(["experiment", "trial"]).copy()
    trials["_config"] = row_ids(trials, columns)
    trials["_rank"] = trials["experiment"].map({e: i for i, e in enumerate(df["experiment"].unique())})
    trials["_finished"] = trials["status"] == schema.FINISHED  # before a diverged copy, then any complete one
    trials = trials.sort_values(["_config", "_finished", "complete", "_rank"], ascending=[True, False, False, True],
                                kind="stable")
    repeated = trials.duplicated("_config", keep="first")
    if not repeated.any():
        return df, []
    dropped = trials[repeated]
    kept = trials[~repeated].set_index("_config")
    notes = []
    states = dropped["status"].where(dropped["complete"], "not finished")  # finished or diverged, else not
    for (where, state), group in dropped.groupby([dropped["experiment"], states]):
        sources = sorted(set(kept.loc[group["_config"], "experiment"]))
        notes.append(f"{len(group)} configs {state} in {where} were also trained in {', '.join(sources)}: "
                     f"counted once, from {', '.join(sources)}")
    keep = pd.MultiIndex.from_frame(trials.loc[~repeated, ["experiment", "trial"]])
    rows = pd.MultiIndex.from_frame(df[["experiment", "trial"]])
    return df[rows.isin(keep)].reset_index(drop=True), notes
