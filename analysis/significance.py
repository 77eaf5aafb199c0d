"""Which cells can be told apart from the best: Welch's t-test over replicate seeds.

Within each architecture (one table of the report), every cell's final metric is
compared with the best cell's (Welch's unequal-variance t-test, two-sided), and the
p-values of that table are adjusted together with Holm's step-down method. A cell whose
adjusted p is at least ALPHA cannot be told apart from the best ("≈ best"); below it,
the cell is worse. Cells with fewer than 2 finished replicates (or a best cell with
fewer) are not tested and say so.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
BEST, SAME, WORSE, UNTESTED = "best", "≈ best", "worse", "not tested (n < 2)"


def welch(a, b) -> dict:
    """Welch's two-sided t-test of mean(a) - mean(b): t, Welch-Satterthwaite degrees of
    freedom, p, the difference and the half-width of its 95 % CI."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = a.mean() - b.mean()
    se2 = va + vb
    if se2 == 0:  # identical replicates on both sides: no spread to test against
        return {"diff": diff, "diff_ci95": 0.0, "t": math.nan, "df": math.nan, "p": 1.0 if diff == 0 else 0.0}
    df = se2**2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = diff / math.sqrt(se2)
    p = 2 * stats.t.sf(abs(t), df)
    return {"diff": diff, "diff_ci95": stats.t.ppf(0.975, df) * math.sqrt(se2), "t": t, "df": df, "p": p}


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjustment of one family of p-values (same order as given)."""
    p = np.asarray(pvalues, float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def against_best(table: pd.DataFrame, values: dict, metric: str) -> pd.DataFrame:
    """Columns for `table` (one row per cell, `rank` 1 = best in its architecture, `_cell`
    its id): `vs_best` (best / ≈ best / worse / not tested), `{metric}_diff` (cell - best)
    with `{metric}_diff_ci95`, `welch_t`, `welch_df`, `p` and `p_holm`. `values` maps a
    cell id to its replicates' final `metric`."""
    out = pd.DataFrame(index=table.index, columns=["vs_best", f"{metric}_diff", f"{metric}_diff_ci95", "welch_t",
                                                    "welch_df", "p", "p_holm"], dtype=object)
    by = table["arch"] if "arch" in table else pd.Series(0, index=table.index)
    for _, rows in table.groupby(by, sort=False):
        best = rows.loc[rows["rank"].idxmin()]
        out.loc[best.name, "vs_best"] = BEST
        reference = values.get(best["_cell"], [])
        tested = []
        for i, row in rows.drop(index=best.name).iterrows():
            mine = values.get(row["_cell"], [])
            if len(mine) < 2 or len(reference) < 2:
                out.loc[i, "vs_best"] = UNTESTED
                continue
            result = welch(mine, reference)
            out.loc[i, [f"{metric}_diff", f"{metric}_diff_ci95", "welch_t", "welch_df", "p"]] = [
                result["diff"], result["diff_ci95"], result["t"], result["df"], result["p"]]
            tested.append(i)
        if tested:
            adjusted = holm(out.loc[tested, "p"].astype(float))
            out.loc[tested, "p_holm"] = adjusted
            out.loc[tested, "vs_best"] = [SAME if p >= ALPHA else WORSE for p in adjusted]
    return out.infer_objects()
