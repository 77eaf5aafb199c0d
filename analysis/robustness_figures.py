"""The robustness figures: accuracy against severity per corruption, the train-noise x
test-noise heatmap, and robustness over training.

Each function takes the all-epochs robustness table (analysis.robustness.load_robustness
with all_epochs=True; the final-epoch figures take each config's latest epoch from it),
writes PNG and PDF files and returns their paths, or raises FigureSkipped. Values are the
accuracy (a denoiser's: the denoised images' accuracy), mean ± std over finished replicate
seeds; a figure shows at most MAX_LINES configs, the best by mean accuracy, and says so.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from analysis import robustness as rb
from analysis.figures import STYLE, FigureSkipped, _paged, annotated_heatmap, format_value, pages, panel_grid, save
from analysis.robustness_measures import per_level
from sweeps.schema import CLEAN

MAX_LINES = 10
MAX_PANELS = 9


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-")


def _stem(prefix: str, suite: str, condition: str | None = None) -> str:
    parts = [prefix, *([_slug(condition)] if condition else []), *([_slug(suite)] if suite else [])]
    return "_".join(p for p in parts if p)


def _final(scores: pd.DataFrame, what: str):
    final = rb.final_scores(scores)
    metric = rb.score_metric(final)
    if metric is None:
        raise FigureSkipped(f"{what}: no config scored an accuracy")
    return final, metric


def _best(levels: pd.DataFrame, order: list[str]) -> tuple[list[str], str]:
    """The configs to draw, in `order` (every config's, by its keys): the best MAX_LINES by
    mean accuracy over the points drawn, and a note when some are left out."""
    ranked = levels.groupby("config", sort=False)["mean"].mean().sort_values(ascending=False, kind="stable")
    kept = set(ranked.index[:MAX_LINES])
    note = f" (best {MAX_LINES} of {len(ranked)} configs by mean accuracy)" if len(ranked) > MAX_LINES else ""
    return [c for c in order if c in kept], note


def _ylabel(metric: str) -> str:
    return f"{'test accuracy' if metric == 'accuracy' else 'denoised accuracy'}\n(mean ± std over seeds)"


def _colours(names) -> dict:
    """A colour per config, by its place among all the study's (the same in every figure)."""
    cmap = plt.get_cmap("tab10" if len(names) <= 10 else "tab20")
    return {name: cmap(i % cmap.N) for i, name in enumerate(names)}


def accuracy_vs_severity(scores: pd.DataFrame, out_dir: str) -> list[str]:
    """Per suite, a panel per corruption: accuracy against severity (0: the clean test set),
    one line per config, mean ± std over seeds. A suite whose conditions have one level each
    (MNIST-C's) is one panel, a point per condition."""
    final, metric = _final(scores, "robustness vs severity")
    levels = per_level(final, metric)
    if levels.empty:
        raise FigureSkipped("robustness vs severity: no finished replicate scored a corruption")
    paths = []
    every = list(dict.fromkeys(rb.config_names(rb._finished(final, metric)).values()))
    colours = _colours(every)
    with plt.rc_context(STYLE):
        for suite, rows in levels.groupby("suite", sort=True):
            names, note = _best(rows, every)
            rows = rows[rows["config"].isin(names)]
            stem = _stem("robustness_vs_severity", suite)
            title = f"suite {suite or '(conditions listed by themselves)'}{note}"
            if (rows.groupby("condition")["severity"].nunique() <= 1).all():
                paths += _per_condition(rows, names, colours, metric, title, stem, out_dir)
                continue
            panels = list(rows.groupby("condition", sort=True))
            for p, page in enumerate(pages(panels, MAX_PANELS)):
                fig, axes = panel_grid(len(page))
                for ax, (condition, sub) in zip(axes, page):
                    for name in names:
                        line = sub[sub["config"] == name].sort_values("severity")
                        if line.empty:
                            continue
                        x, mean, std = line["severity"], line["mean"], line["std"].fillna(0)
                        ax.plot(x, mean, "-o", ms=3, color=colours[name], label=name)
                        ax.fill_between(x, mean - std, mean + std, color=colours[name], alpha=0.15, lw=0)
                    ax.set_title(condition)
                    ax.set_xlabel("severity (a noise type's scale; 0: clean)")
                    ax.set_ylabel(_ylabel(metric))
                axes[0].legend(fontsize=7)
                fig.suptitle(title, fontsize=9)
                paths += save(fig, out_dir, stem if p == 0 else f"{stem}_{p + 1}")
    return paths


def _per_condition(rows, names, colours, metric, title, stem, out_dir) -> list[str]:
    conditions = sorted(rows["condition"].unique(), key=lambda c: (c != CLEAN, c))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(conditions) + 2), 3.6))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        line = rows[rows["config"] == name].set_index("condition").reindex(conditions)
        x = np.arange(len(conditions)) + (i - (len(names) - 1) / 2) * width
        ax.errorbar(x, line["mean"], yerr=line["std"].fillna(0), fmt="o", ms=4, capsize=2, color=colours[name],
                    label=name)
    ax.set_xticks(range(len(conditions)), conditions, rotation=45, ha="right")
    ax.set_ylabel(_ylabel(metric))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return save(fig, out_dir, stem)


def train_noise_label(row) -> str:
    kind = row.get("noise_type")
    if kind == "none":
        return "none"
    scale = format_value(row["noise_scale"]) if "noise_scale" in row else "?"
    return f"{kind} {scale}" if isinstance(kind, str) else scale


def train_vs_test_noise(scores: pd.DataFrame, out_dir: str) -> list[str]:
    """Mean accuracy over seeds of each training noise (rows: noise_type and noise_scale)
    at each level of a test-noise condition (columns: its scales, 0 the clean test set), a
    panel per architecture (and the study's other axes), a file per test-noise condition."""
    final, metric = _final(scores, "train x test noise heatmap")
    if "noise_scale" not in final and "noise_type" not in final:
        raise FigureSkipped("train x test noise heatmap: the configs have no noise_type or noise_scale key")
    levels = per_level(final, metric)
    trained = set(final["noise_type"].dropna()) if "noise_type" in final else set()
    kinds = (set(rb.NOISE_CONDITIONS) | {k for k in trained if isinstance(k, str)}) - {"none", CLEAN}
    # Test noise as a grid lists it (a benchmark folder's conditions are its own images).
    rows = levels[levels["condition"].isin(kinds) & ~levels["suite"].str.startswith("folder:")] \
        if not levels.empty else levels
    if rows.empty:
        raise FigureSkipped(f"train x test noise heatmap: no test-noise condition ({', '.join(sorted(kinds))}) "
                            "scored by a finished replicate")
    keys = [k for k in rb.group_keys(final) if k in rows]
    rows = rows.copy()
    rows["_train"] = rows.apply(train_noise_label, axis=1)
    kind = rows["noise_type"] if "noise_type" in rows else pd.Series("", index=rows.index)
    scale = pd.to_numeric(rows["noise_scale"], errors="coerce") if "noise_scale" in rows else 0.0
    # none first, then by noise type and scale
    rows["_order"] = list(zip(kind != "none", kind.astype(str), pd.Series(scale, index=rows.index).fillna(0)))
    vmin, vmax = np.nanmin(rows["mean"]), np.nanmax(rows["mean"])
    paths = []

    def draw(ax, sub):
        order = list(dict.fromkeys(sub.sort_values("_order", kind="stable")["_train"]))
        grid = sub.pivot_table(index="_train", columns="severity", values="mean", aggfunc="mean").reindex(order)
        annotated_heatmap(ax, grid, list(grid.index), f"test {sub['condition'].iloc[0]} noise scale (0: clean)",
                          "training noise", vmin, vmax, _ylabel(metric).split("\n")[0] + " (mean over seeds)", 100)

    with plt.rc_context(STYLE):
        for (suite, condition), sub in rows.groupby(["suite", "condition"], sort=True):
            panel = [k for k in keys if k not in ("noise_type", "noise_scale")
                     and (k == "arch" or sub[k].nunique(dropna=False) > 1)]
            paths += _paged(_stem("robustness_heatmap", suite, condition), _facets(sub, panel), draw, out_dir)
    return paths


def _facets(table, keys):
    if not keys:
        return [("", table)]
    out = []
    for values, sub in table.groupby(keys, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        out.append((", ".join(format_value(v) if k == "arch" else f"{k}={format_value(v)}"
                              for k, v in zip(keys, values)), sub))
    return out


def robustness_vs_epoch(scores: pd.DataFrame, out_dir: str) -> list[str]:
    """Robustness over training: per epoch scored, the clean accuracy and each suite's mean
    corruption accuracy, one line per config, mean with a ±std band over seeds."""
    metric = rb.score_metric(scores)
    if metric is None:
        raise FigureSkipped("robustness vs epoch: no config scored an accuracy")
    rows = rb._finished(scores, metric)
    if rows.empty or rows["epoch"].nunique() < 2:
        raise FigureSkipped("robustness vs epoch: the configs were scored at fewer than two epochs")
    trial = ["experiment", "trial", "_cell", "epoch"]
    rows["_panel"] = np.where(rows["condition"] == CLEAN, "clean test set",
                              "mean corruption accuracy, suite " + rows["suite"].where(rows["suite"] != "", "(listed)"))
    each = rows.groupby([*trial, "_panel"], sort=False)["_score"].mean().reset_index()
    curves = each.groupby(["_cell", "_panel", "epoch"])["_score"].agg(["mean", "std"]).reset_index()
    names = rb.config_names(rows)
    curves["config"] = curves["_cell"].map(names)
    last = curves.sort_values("epoch").groupby(["config", "_panel"]).tail(1)
    every = list(dict.fromkeys(names.values()))
    chosen, note = _best(last, every)
    colours = _colours(every)
    panels = sorted(curves["_panel"].unique(), key=lambda p: (p != "clean test set", p))

    def draw(ax, sub):
        for name in chosen:
            line = sub[sub["config"] == name].sort_values("epoch")
            x, mean, std = line["epoch"].astype(float), line["mean"], line["std"].fillna(0)
            ax.plot(x, mean, "-o", ms=3, color=colours[name], label=name)
            ax.fill_between(x, mean - std, mean + std, color=colours[name], alpha=0.15, lw=0)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(_ylabel(metric))
        ax.legend(fontsize=7)

    with plt.rc_context(STYLE):
        return _paged("robustness_vs_epoch", [(p + note, curves[curves["_panel"] == p]) for p in panels], draw,
                      out_dir)


FIGURES = {
    "robustness_vs_severity": accuracy_vs_severity,
    "robustness_heatmap": train_vs_test_noise,
    "robustness_vs_epoch": robustness_vs_epoch,
}
