"""A search's part of the report (sweeps.search): its trajectory, and the chosen config
with its test accuracy apart from the hold-out figure it was chosen on.

Read from the experiment's record (sweeps.schema.SPEC_FILE, JSON) and the tidy table; no
Ray, no TensorFlow. A sampled config is its replicates (configs differing only in seed);
its place in the search is when its first epoch was reported (the rows' `timestamp`).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from analysis.aggregate import final_epochs, group_columns
from analysis.load import row_ids
from sweeps.schema import FINISHED, SPEC_FILE


def spec_of(experiments: list[str]) -> dict | None:
    """The search spec of the first experiment that ran one, else None: its last search
    step's (a grown search's budget counts every config sampled in every step)."""
    for exp in experiments:
        path = os.path.join(exp, SPEC_FILE)
        if not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                steps = json.load(f).get("steps", [])
        except (OSError, ValueError, AttributeError):
            continue
        searches = [step["search"] for step in steps if isinstance(step, dict) and step.get("search")]
        if searches:
            return searches[-1]
    return None


def configs(df: pd.DataFrame, spec: dict) -> pd.DataFrame:
    """One row per sampled config, in the order the search tried them: its drawn values,
    `order`, `n` replicates, `complete` (every replicate trained to its last epoch),
    `{metric}_mean`/`_std` on the hold-out, `test_accuracy_mean`/`_std` and the replicates'
    test accuracies, and `best_so_far` (over complete configs)."""
    metric = spec["metric"]
    final = final_epochs(df)
    keys = group_columns(df)
    final["_config"] = row_ids(final, keys)
    started = df.assign(_config=row_ids(df, keys)).groupby("_config")["timestamp"].min() \
        if "timestamp" in df else pd.Series(dtype=float)
    final["_order"] = final["_config"].map(started)  # NaN (not started yet) sorts last
    rows = []
    for _, trials in final.groupby("_config", sort=False):
        trials = trials.sort_values("seed")
        complete = bool((trials["status"] == FINISHED).all())
        row = {k: trials.iloc[0][k] for k in spec["space"] if k in trials}
        row.update(order=float(trials["_order"].min()), n=len(trials), complete=complete,
                   last_epoch=int(trials["epoch"].max()) if trials["epoch"].notna().any() else 0)
        for m in (metric, "test_accuracy"):
            values = trials[m].astype(float) if m in trials else pd.Series(dtype=float)
            row[f"{m}_mean"] = values.mean() if complete else np.nan
            row[f"{m}_std"] = values.std(ddof=1) if complete and len(values) > 1 else np.nan
        row["test_accuracies"] = " ".join(f"{v:.4f}" for v in trials.get("test_accuracy", pd.Series(dtype=float))
                                          if complete and pd.notna(v))
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("order", kind="stable").reset_index(drop=True)
    scores = table[f"{metric}_mean"]
    running = scores.cummax() if spec["mode"] == "max" else scores.cummin()
    table["best_so_far"] = running.ffill()  # a config stopped early leaves the best as it was
    return table


def chosen(table: pd.DataFrame, spec: dict):
    """The complete config with the best hold-out mean (None if none is complete)."""
    done = table[table["complete"] & table[f"{spec['metric']}_mean"].notna()]
    if done.empty:
        return None
    column = done[f"{spec['metric']}_mean"]
    return done.loc[column.idxmax() if spec["mode"] == "max" else column.idxmin()]


def trajectory_figure(table: pd.DataFrame, spec: dict, out_dir: str) -> list[str]:
    """Each config's hold-out mean in the order tried, and the best mean so far."""
    # matplotlib only here: `noisesweep status` reads a search through this module and
    # should not pay for (or need) a plotting library.
    import matplotlib.pyplot as plt

    from analysis import figures

    metric = spec["metric"]
    with plt.rc_context(figures.STYLE):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        x = np.arange(1, len(table) + 1)
        done = table["complete"].to_numpy()
        ax.plot(x[done], table.loc[done, f"{metric}_mean"], "o", color="tab:blue", ms=4,
                label=f"a config: mean over {spec['replicates']} replicates")
        ax.step(x, table["best_so_far"], where="post", color="black", lw=1.2, label="best so far")
        for i in x[~done]:
            ax.axvline(i, color="grey", alpha=0.15, lw=3)
        ax.set_xlabel("configs tried (grey: stopped early by ASHA)")
        ax.xaxis.set_major_locator(figures.MaxNLocator(integer=True))
        ax.set_ylabel(f"{figures.label(metric)}\n(on the hold-out)")
        ax.legend()
        return figures.save(fig, out_dir, "search_trajectory")


def section(df: pd.DataFrame, spec: dict, out_dir: str) -> tuple[str, list[str], pd.DataFrame]:
    """(the report's markdown for the search, the figure files, the per-config table)."""
    from analysis.figures import format_value

    table = configs(df, spec)
    metric = spec["metric"]
    paths = trajectory_figure(table, spec, out_dir) if len(table) else []
    best = chosen(table, spec)
    lines = [f"{len(table)} configs tried, {int(table['complete'].sum())} trained to their last epoch "
             f"(the others stopped early by ASHA on the replicates' mean {metric}); each config is "
             f"{spec['replicates']} replicate seeds. The search chose on the hold-out; the test accuracy "
             "below was not used to choose.", ""]
    if best is None:
        lines.append("No config has finished every replicate yet.")
        return "\n".join(lines), paths, table
    drawn = [k for k in spec["space"] if k in best]
    header = [*drawn, f"{metric} (hold-out): mean ± std", "test accuracy: mean ± std (n)",
              "test accuracy per seed"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    cells = [format_value(best[k]) if not isinstance(best[k], float) else f"{best[k]:.4g}"
             for k in drawn]
    test = (f"{best['test_accuracy_mean']:.4f} ± {best['test_accuracy_std']:.4f} ({best['n']})"
            if pd.notna(best["test_accuracy_mean"]) else "–")
    lines.append("| " + " | ".join([*cells, f"{best[f'{metric}_mean']:.4f} ± {best[f'{metric}_std']:.4f}", test,
                                    best["test_accuracies"] or "–"]) + " |")
    lines += ["", f"![search trajectory]({os.path.join('figures', 'search_trajectory.png')})"]
    return "\n".join(lines), paths, table
