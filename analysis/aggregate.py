"""Mean ± std over replicate seeds, for final-epoch metrics and for every epoch.

A group is every config key but the replicate `seed`. Statistics use the
group's finished replicates only: diverged ones are counted apart and
excluded (a NaN would poison the mean), incomplete ones (unfinished, errored)
are counted and the group is marked incomplete rather than silently
averaged over fewer seeds. The std is the sample std (ddof=1); the 95 %
confidence interval is mean ± t(0.975, n-1) · std / sqrt(n).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from analysis.load import METRICS, config_columns, row_ids
from analysis.significance import against_best
from sweeps.schema import DIVERGED, ERRORED, EVAL_METRICS, FINISHED, UNFINISHED

REPLICATE_KEY = "seed"
DDOF = 1


def group_columns(df: pd.DataFrame) -> list[str]:
    """Config keys that define a group: all but the replicate seed."""
    return [c for c in config_columns(df) if c != REPLICATE_KEY]


def varying_columns(df: pd.DataFrame, columns=None) -> list[str]:
    """The group keys that take more than one value: the axes of the study."""
    columns = group_columns(df) if columns is None else columns
    return [c for c in columns if df[c].nunique(dropna=False) > 1]


def metrics_in(df: pd.DataFrame) -> list[str]:
    return [m for m in METRICS if m in df.columns and df[m].notna().any()]


def _hashable(df: pd.DataFrame, columns) -> pd.DataFrame:
    # A foreign params.json may hold lists; groupby needs hashable keys.
    for c in columns:
        if df[c].map(lambda v: isinstance(v, (list, dict))).any():
            df[c] = df[c].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    return df


def early_stopping(df: pd.DataFrame) -> bool:
    """Whether any trial of the table was run with early stopping (a patience)."""
    return "patience" in df and bool(df["patience"].notna().any())


def final_epochs(df: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: its last reported epoch (a trial with none keeps its empty row)."""
    order = df.sort_values(["experiment", "trial", "epoch"], na_position="first")
    return order.drop_duplicates(["experiment", "trial"], keep="last").reset_index(drop=True)


def _describe(groups, metrics) -> pd.DataFrame:
    """n, mean, std (ddof=1), min, max and the t-based 95 % CI half-width per metric."""
    out = {}
    for m in metrics:
        agg = groups[m].agg(["count", "mean", "std", "min", "max"])
        n = agg["count"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
            half = t * agg["std"].to_numpy() / np.sqrt(n)
        for s in ("mean", "std", "min", "max"):
            out[f"{m}_{s}"] = agg[s]
        out[f"{m}_ci95"] = pd.Series(half, index=agg.index)
    return pd.DataFrame(out)


def summarize(df: pd.DataFrame, metric: str = "val_accuracy") -> pd.DataFrame:
    """Final-epoch statistics per group, best `metric` first within each architecture.

    Columns: the group keys, `n` (replicates used), `n_diverged`,
    `n_incomplete`, `complete`, `seeds`, with early stopping `stopped_at` (the epoch
    each finished replicate ended at, in seed order), then `{metric}_{mean,std,min,max,ci95}`
    for every metric present, `rank` (1 = best `metric` in its arch among cells of n >= 2, if
    any; a cell of one replicate ranks after them), and each cell
    against its architecture's best (analysis.significance: `vs_best`, the difference of
    means with its 95 % CI, Welch's t, df, p and Holm's adjusted p).
    """
    keys = group_columns(df)
    final = _hashable(final_epochs(df), keys)
    used = final[final["status"] == FINISHED]
    counts = final.groupby(keys, dropna=False, sort=False)["status"].value_counts().unstack(fill_value=0)
    table = pd.DataFrame(index=counts.index)
    table["n"] = counts.get(FINISHED, 0)
    table["n_diverged"] = counts.get(DIVERGED, 0)
    table["n_incomplete"] = counts.get(UNFINISHED, 0) + counts.get(ERRORED, 0)
    table["complete"] = table["n_incomplete"] == 0
    if REPLICATE_KEY in final:
        table["seeds"] = used.groupby(keys, dropna=False, sort=False)[REPLICATE_KEY].agg(
            lambda s: " ".join(str(v) for v in sorted(s)))
    if early_stopping(final):
        # The epoch each finished replicate ended at (stopped early, or at its last), by seed.
        ended = used.sort_values(REPLICATE_KEY) if REPLICATE_KEY in used else used
        table["stopped_at"] = ended.groupby(keys, dropna=False, sort=False)["epoch"].agg(
            lambda s: " ".join(str(int(v)) for v in s))
    table = table.join(_describe(used.groupby(keys, dropna=False, sort=False), metrics_in(df)))
    table = table.reset_index()
    table["n"] = table["n"].astype(int)
    by = [c for c in ("arch",) if c in table]
    # A cell with one finished replicate cannot be tested against another: it ranks after
    # the cells that can, so that a lucky single seed of a sweep under way is not "best".
    table["_thin"] = table["n"] < 2
    table = table.sort_values([*by, "_thin", f"{metric}_mean"],
                              ascending=[True] * len(by) + [True, metric.endswith("loss")],
                              na_position="last", kind="stable").drop(columns="_thin")
    table["rank"] = table.groupby(by, sort=False).cumcount() + 1 if by else range(1, len(table) + 1)
    table = table.reset_index(drop=True)
    # Each cell against its architecture's best, over the replicates' final values.
    table["_cell"] = row_ids(table, keys)
    values = {cell: g[metric].dropna().to_numpy() for cell, g in used.assign(_cell=row_ids(used, keys))
              .groupby("_cell", sort=False)} if metric in used else {}
    return table.join(against_best(table, values, metric)).drop(columns="_cell")


def per_epoch(df: pd.DataFrame) -> pd.DataFrame:
    """Statistics per group and epoch, for learning curves; diverged trials left out.

    `n` is the number of replicates that reported that epoch.
    """
    keys = group_columns(df)
    rows = _hashable(df[(df["status"] != DIVERGED) & df["epoch"].notna()].copy(), keys)
    metrics = metrics_in(rows)
    groups = rows.groupby([*keys, "epoch"], dropna=False, sort=True)
    table = groups.size().rename("n").to_frame().join(_describe(groups, metrics))
    return table.reset_index()


def per_level(evaluation: pd.DataFrame) -> pd.DataFrame:
    """A denoise study's evaluation per group and noise level, over finished replicates:
    `n`, then `{metric}_{mean,std,min,max,ci95}` for the seasoned and denoised accuracies
    and reconstruction errors."""
    keys = group_columns(evaluation)
    rows = _hashable(evaluation[evaluation["status"] == FINISHED].copy(), keys)
    metrics = [m for m in EVAL_METRICS if m in rows and rows[m].notna().any()]
    groups = rows.groupby([*keys, "level"], dropna=False, sort=True)
    table = groups.size().rename("n").to_frame().join(_describe(groups, metrics))
    if REPLICATE_KEY in rows:
        table["seeds"] = groups[REPLICATE_KEY].agg(lambda s: " ".join(str(v) for v in sorted(s)))
    return table.reset_index()


def replicates(df: pd.DataFrame, metric: str, summary: pd.DataFrame) -> pd.DataFrame:
    """Each group's final `metric` per replicate seed, in the shape of the seeds' own tables
    (seed 002's: one row per cell, each replicate, then the mean).

    Columns: the group keys; per seed s, `seed s` (the value, NaN unless that replicate
    finished), `seed s status` and with early stopping `seed s epoch` (its last); then `{metric}_mean`, `{metric}_std`, `n` and
    `n_diverged` from `summary`, whose row order it keeps.
    """
    keys = group_columns(df)
    final = _hashable(final_epochs(df), keys)
    final["_cell"] = row_ids(final, keys)
    seeds = sorted(final[REPLICATE_KEY].dropna().unique()) if REPLICATE_KEY in final else []
    order = row_ids(summary, keys).tolist()
    stopping = early_stopping(final)
    rows = []
    for cell in order:
        trials = final[final["_cell"] == cell]
        row = trials.iloc[0][keys].to_dict()
        for s in seeds:
            t = trials[trials[REPLICATE_KEY] == s]
            status = t["status"].iloc[0] if len(t) else None
            row[f"seed {s}"] = float(t[metric].iloc[0]) if status == FINISHED and metric in t else np.nan
            row[f"seed {s} status"] = status
            if stopping:
                row[f"seed {s} epoch"] = int(t["epoch"].iloc[0]) if len(t) and pd.notna(t["epoch"].iloc[0]) else None
        rows.append(row)
    table = pd.DataFrame(rows)
    stats_ = summary.set_index(pd.Index(order))
    for col in (f"{metric}_mean", f"{metric}_std", "n", "n_diverged"):
        table[col] = stats_[col].to_numpy() if col in stats_ else np.nan
    return table
