"""Where the report's figures are drawn, each from the aggregated tables.

Every figure function takes the final-epoch summary, the per-epoch table,
the group keys and the metric, writes PNG and PDF files, and returns their
paths; it raises FigureSkipped, with the reason in one line, when the data
lacks the axis it plots. Lines are mean ± std over replicate seeds; colours
follow the architecture in every figure. The accuracy-vs-axis figures mark each
architecture's best cell (a star) and the cells that cannot be told apart from it (a ring).
"""

from __future__ import annotations

import contextlib

import math
import os
import sys
import textwrap

import matplotlib

if "ipykernel" not in sys.modules:  # a notebook keeps its inline backend (noisesweep's figures)
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.significance import ALPHA, BEST, SAME  # noqa: E402
from sweeps import schema  # noqa: E402

HINTON_MLP500_300 = 0.9847  # 1.53 % error, LeCun's MNIST table (seed 001 2d)
MAX_PANELS = 9
ROWS_PER_PAGE = 6
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "font.size": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
}

class FigureSkipped(Exception):
    """The data has no axis for this figure; the message says which."""


def the_task(table: pd.DataFrame | None) -> str | None:
    """The one task of a table's trials (None if several, or not known)."""
    tasks = set(table["task"].dropna()) if table is not None and "task" in table else set()
    return tasks.pop() if len(tasks) == 1 else None


def label(metric: str, table: pd.DataFrame | None = None) -> str:
    """The axis label of `metric`; a loss says what it measures when `table` holds one task."""
    return schema.label(metric, the_task(table))


def companion(metric: str) -> str:
    """The loss that goes with an accuracy metric and vice versa (val_accuracy <-> val_loss)."""
    return metric.replace("accuracy", "loss") if "accuracy" in metric else metric.replace("loss", "accuracy")


def arch_colours(table: pd.DataFrame) -> dict:
    archs = sorted(table["arch"].unique()) if "arch" in table else []
    return {a: plt.get_cmap("tab10")(i % 10) for i, a in enumerate(archs)}


def merge_clean_baseline(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of noise_type `none` are scale 0 of the one other noise type, if there is one,
    so a grid of `none` beside `gaussian` at five scales plots as one curve of six points."""
    if "noise_type" not in table:
        return table
    kinds = set(table["noise_type"].unique()) - {"none"}
    if len(kinds) != 1 or "none" not in set(table["noise_type"]):
        return table
    table = table.copy()
    table.loc[table["noise_type"] == "none", "noise_type"] = kinds.pop()
    return table


def noise_label(table: pd.DataFrame) -> str:
    kinds = set(table.get("noise_type", pd.Series(["gaussian"])).unique()) - {"none"}
    if kinds == {"salt_and_pepper"}:
        return "salt-and-pepper level (fraction of pixels replaced)"
    if kinds == {"gaussian"}:
        return "Gaussian noise std (pixels in [0, 1])"
    return "noise scale or level"


def varies(table: pd.DataFrame, column: str) -> bool:
    return column in table and table[column].nunique(dropna=False) > 1


def facet_keys(table: pd.DataFrame, keys, exclude) -> list[str]:
    """Keys that vary within an architecture, other than those plotted: one panel per combination.
    A key fixed by the architecture (the seeds' epochs per model) makes no panels."""
    hue = table.groupby("arch", dropna=False) if "arch" in table else None
    out = []
    for k in keys:
        if k in exclude or k == "arch" or not varies(table, k):
            continue
        if hue is None or hue[k].nunique(dropna=False).max() > 1:
            out.append(k)
    return out


def facets(table: pd.DataFrame, keys: list[str]):
    """(title, sub-table) for each combination of `keys`."""
    if not keys:
        return [("", table)]
    out = []
    for values, sub in table.groupby(keys, dropna=False, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        out.append((", ".join(f"{k}={format_value(v)}" for k, v in zip(keys, values)), sub))
    return out


def format_value(v) -> str:
    """A config value as tables and titles show it: 0.001 not 0.0010000, NaN as none."""
    if isinstance(v, float):
        return "none" if math.isnan(v) else f"{v:g}"
    return str(v)


def pages(items: list, per_page: int) -> list[list]:
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]


def panel_grid(n: int, width=4.2, height=3.2, ncols=None):
    ncols = ncols or min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


_collected: list | None = None  # figures kept open instead of written (collected())


@contextlib.contextmanager
def collected():
    """Within it, a figure drawn is kept open in the list it yields instead of written to
    files (the Python API hands a notebook the figure itself)."""
    global _collected
    outer, _collected = _collected, []
    try:
        yield _collected
    finally:
        _collected = outer


def save(fig, out_dir: str, stem: str) -> list[str]:
    if _collected is not None:
        fig.tight_layout()
        _collected.append(fig)
        plt.close(fig)  # the caller's now: a notebook shows it once, as what the cell returns
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = [os.path.join(out_dir, f"{stem}.{ext}") for ext in ("png", "pdf")]
    fig.tight_layout()
    for p in paths:
        fig.savefig(p)
    plt.close(fig)
    return paths


def _need(table: pd.DataFrame, column: str, what: str) -> None:
    if not varies(table, column):
        values = ", ".join(sorted({format_value(v) for v in table[column].unique()})) if column in table else "none"
        raise FigureSkipped(f"{what}: the data has one {column} value ({values})")


def _lines(ax, table, x, metric, colours, style="-o", suffix=""):
    for arch, sub in table.groupby("arch", sort=True):
        sub = sub.sort_values(x)
        ax.errorbar(sub[x], sub[f"{metric}_mean"], yerr=sub[f"{metric}_std"].fillna(0), fmt=style,
                    color=colours[arch], capsize=3, ms=4, label=f"{arch}{suffix}")


MARKS = {BEST: dict(marker="*", s=150, facecolors="black", label="best of its architecture"),
         SAME: dict(marker="o", s=120, facecolors="none",
                    label=f"≈ best (Welch over seeds, Holm p ≥ {ALPHA:g})")}


def significance_marks(ax, table, x, metric) -> dict:
    """Mark each architecture's best cell and the cells that cannot be told apart from it
    (analysis.significance, over `metric`, the one the summary ranks by). Returns
    {mark: [(x, mean), ...]} as drawn."""
    drawn = {}
    if "vs_best" not in table or f"{metric}_mean" not in table:
        return drawn
    for kind, style in MARKS.items():
        rows = table[table["vs_best"] == kind]
        if len(rows):
            ax.scatter(rows[x], rows[f"{metric}_mean"], edgecolors="black", linewidths=1.2, zorder=5, **style)
            drawn[kind] = list(zip(rows[x].tolist(), rows[f"{metric}_mean"].tolist()))
    return drawn


def _paged(name, panels, draw, out_dir):
    """Draw panels MAX_PANELS to a file; returns every file written."""
    paths = []
    for i, page in enumerate(pages(panels, MAX_PANELS)):
        fig, axes = panel_grid(len(page))
        for ax, (title, sub) in zip(axes, page):
            draw(ax, sub)
            if title:
                ax.set_title(title)
        paths += save(fig, out_dir, name if i == 0 else f"{name}_{i + 1}")
    return paths


def accuracy_vs_noise(summary, per_epoch, keys, metric, out_dir):
    """Final metric mean ± std vs noise scale, one line per architecture (seed 000)."""
    table = merge_clean_baseline(summary)
    _need(table, "noise_scale", "accuracy vs noise")
    colours = arch_colours(table)

    def draw(ax, sub):
        _lines(ax, sub, "noise_scale", metric, colours)
        significance_marks(ax, sub, "noise_scale", metric)
        ax.set_xlabel(noise_label(sub))
        ax.set_ylabel(f"final {label(metric, sub)}\n(mean ± std over seeds)")
        ax.legend()

    with plt.rc_context(STYLE):
        return _paged("accuracy_vs_noise", facets(table, facet_keys(table, keys, {"noise_scale", "noise_type"})),
                      draw, out_dir)


def loss_and_accuracy_vs_noise(summary, per_epoch, keys, metric, out_dir):
    """Seed 000's figure: loss (left axis, dashed) and accuracy (right axis) vs noise scale."""
    table = merge_clean_baseline(summary)
    _need(table, "noise_scale", "loss and accuracy vs noise")
    acc = metric if "accuracy" in metric else companion(metric)
    loss = companion(acc)
    if f"{loss}_mean" not in table or f"{acc}_mean" not in table:
        raise FigureSkipped(f"loss and accuracy vs noise: needs both {acc} and {loss}")
    colours = arch_colours(table)

    def draw(ax, sub):
        _lines(ax, sub, "noise_scale", loss, colours, style="--s", suffix=" loss")
        ax.set_xlabel(noise_label(sub))
        ax.set_ylabel(f"final {label(loss, sub)}")
        right = ax.twinx()
        _lines(right, sub, "noise_scale", acc, colours, suffix=" accuracy")
        if acc == metric:
            significance_marks(right, sub, "noise_scale", metric)
        right.set_ylabel(f"final {label(acc, sub)}")
        right.grid(False)
        handles = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], loc="center left")

    with plt.rc_context(STYLE):
        return _paged("loss_and_accuracy_vs_noise",
                      facets(table, facet_keys(table, keys, {"noise_scale", "noise_type"})), draw, out_dir)


def accuracy_vs_l2(summary, per_epoch, keys, metric, out_dir):
    """Final metric mean ± std vs L2 factor on a log axis, with Hinton's 0.9847 for the
    500-300 MLP on MNIST (seed 001 2d)."""
    _need(summary, "l2", "accuracy vs L2")
    colours = arch_colours(summary)
    positive = summary.loc[summary["l2"] > 0, "l2"]

    def draw(ax, sub):
        _lines(ax, sub, "l2", metric, colours)
        significance_marks(ax, sub, "l2", metric)
        if (sub["l2"] == 0).any() and len(positive):
            # A log axis has no 0: linear below the smallest factor, so l2 = 0 still shows.
            ax.set_xscale("symlog", linthresh=positive.min())
            ax.set_xlabel("L2 factor (log scale; 0 on a linear stretch)")
        else:
            ax.set_xscale("log")
            ax.set_xlabel("L2 factor (log scale)")
        hinton = ("arch" in sub and (sub["arch"] == "mlp500_300").any()
                  and sub.get("dataset", pd.Series(["mnist"])).eq("mnist").all() and "accuracy" in metric)
        if hinton:
            ax.axhline(HINTON_MLP500_300, ls="--", color="grey", lw=1, label="Hinton (LeCun MNIST table)")
        ax.set_ylabel(f"final {label(metric, sub)}\n(mean ± std over seeds)")
        ax.legend()

    with plt.rc_context(STYLE):
        return _paged("accuracy_vs_l2", facets(summary, facet_keys(summary, keys, {"l2"})), draw, out_dir)


def panel_order(summary: pd.DataFrame, shown: list[str], max_groups: int) -> pd.DataFrame:
    """The groups a figure draws a panel each for: the best `max_groups` by rank, in the
    order of the study's axes (numbers by value, not as text and not best first)."""
    best = summary if len(summary) <= max_groups else summary.nsmallest(max_groups, "rank", keep="first")
    return best.sort_values([k for k in ("arch", *shown) if k in best], kind="stable", na_position="first")


def learning_curves(summary, per_epoch, keys, metric, out_dir, max_groups=12):
    """Train and validation accuracy and loss per epoch, mean with a ±std band, a row per group
    (seed 001 2c, seed 004). The best `max_groups` groups by `metric` when there are more."""
    if per_epoch.empty or per_epoch["epoch"].nunique() < 2:
        raise FigureSkipped("learning curves: the trials reported fewer than two epochs")
    shown = [k for k in keys if varies(summary, k)]
    best = panel_order(summary, shown, max_groups)
    colours = {"train": "tab:blue", "val": "tab:orange"}
    # Denoisers report no accuracy: their rows show the loss alone.
    kinds = [k for k in ("accuracy", "loss") if f"{k}_mean" in per_epoch or f"val_{k}_mean" in per_epoch]
    paths = []
    with plt.rc_context(STYLE):
        for p, page in enumerate(pages(list(best.iterrows()), ROWS_PER_PAGE)):
            fig, axes = plt.subplots(len(page), len(kinds), figsize=(4.5 * len(kinds), 2.6 * len(page)), squeeze=False)
            for (_, group), row_axes in zip(page, axes):
                mask = np.ones(len(per_epoch), bool)
                for k in keys:
                    v = group[k]
                    mask &= per_epoch[k].isna().to_numpy() if pd.isna(v) else (per_epoch[k] == v).to_numpy()
                sub = per_epoch[mask].sort_values("epoch")
                for ax, kind in zip(row_axes, kinds):
                    for split, m in (("train", kind), ("val", f"val_{kind}")):
                        if f"{m}_mean" not in sub:
                            continue
                        x, mean, std = sub["epoch"].astype(float), sub[f"{m}_mean"], sub[f"{m}_std"].fillna(0)
                        ax.plot(x, mean, "-o", ms=3, color=colours[split], label=split)
                        ax.fill_between(x, mean - std, mean + std, color=colours[split], alpha=0.2, lw=0)
                    ax.set_xlabel("epoch")
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                    ax.set_ylabel(label(kind, per_epoch).replace("training ", ""))
                    ax.legend()
                title = ", ".join(f"{k}={format_value(group[k])}" for k in shown) or "all trials"
                row_axes[0].set_title(textwrap.fill(title, 75 if len(kinds) > 1 else 40), loc="left", fontsize=8)
            paths += save(fig, out_dir, "learning_curves" if p == 0 else f"learning_curves_{p + 1}")
    return paths


def annotated_heatmap(ax, grid, rows: list[str], xlabel: str, ylabel: str, vmin, vmax, colorbar: str,
                      annotated: int = 64) -> None:
    """`grid` (a pivot table) drawn on `ax` in one colour scale, its cells written in where
    there are at most `annotated` of them; `rows`: the row labels."""
    image = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(grid.shape[1]), [format_value(v) for v in grid.columns], rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), rows)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    if grid.size <= annotated:
        for (i, j), v in np.ndenumerate(grid.to_numpy()):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=7,
                        color="white" if v < (vmin + vmax) / 2 else "black")
    plt.colorbar(image, ax=ax, label=colorbar)


def heatmap_noise_l2(summary, per_epoch, keys, metric, out_dir):
    """Mean final metric over noise scale x L2 factor, a panel per architecture."""
    table = merge_clean_baseline(summary)
    _need(table, "noise_scale", "noise x L2 heatmap")
    _need(table, "l2", "noise x L2 heatmap")
    panel_keys = ["arch", *facet_keys(table, keys, {"noise_scale", "l2", "noise_type"})]
    values = table[f"{metric}_mean"]
    vmin, vmax = np.nanmin(values), np.nanmax(values)

    def draw(ax, sub):
        grid = sub.pivot_table(index="noise_scale", columns="l2", values=f"{metric}_mean", aggfunc="mean")
        annotated_heatmap(ax, grid, [format_value(v) for v in grid.index], "L2 factor", noise_label(sub), vmin, vmax,
                          f"mean final {label(metric, sub)}")

    with plt.rc_context(STYLE):
        return _paged("heatmap_noise_l2", facets(table, panel_keys), draw, out_dir)


# The figures that compare cells along a grid's axes (a search has no such cells).
ALONG_AXES = ("accuracy_vs_noise", "loss_and_accuracy_vs_noise", "accuracy_vs_l2", "heatmap_noise_l2")
FIGURES = {
    "accuracy_vs_noise": accuracy_vs_noise,
    "loss_and_accuracy_vs_noise": loss_and_accuracy_vs_noise,
    "accuracy_vs_l2": accuracy_vs_l2,
    "learning_curves": learning_curves,
    "heatmap_noise_l2": heatmap_noise_l2,
}
