"""Where a denoising study's figures are drawn: accuracy and reconstruction error against
the noise level (seed 001 4c, seed 003), image strips (seed 001 4b) and the VAE's
decoded latent grid (seed 004).

Each function takes the evaluation table (analysis.load.load_evaluation), its
per-level statistics (analysis.aggregate.per_level) and the experiment folders,
writes PNG and PDF files and returns their paths, or raises FigureSkipped.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from analysis.aggregate import group_columns, varying_columns
from analysis.figures import STYLE, FigureSkipped, _paged, arch_colours, facet_keys, facets, format_value, save
from analysis.load import trial_file
from sweeps.schema import FINISHED, LATENT_GRID_FILE, SAMPLES_FILE

MAX_STRIP_LEVELS = 11


def level_label(table) -> str:
    kinds = set(table["noise_type"]) if "noise_type" in table else set()
    if kinds == {"salt_and_pepper"}:
        return "test salt-and-pepper level (fraction of pixels replaced)"
    if kinds == {"gaussian"}:
        return "test Gaussian noise std (pixels in [0, 1])"
    return "test noise level"


def _level_lines(ax, sub, colours, pairs):
    for arch, rows in sub.groupby("arch", sort=True):
        rows = rows.sort_values("level")
        for metric, style, name in pairs:
            if f"{metric}_mean" not in rows or rows[f"{metric}_mean"].isna().all():
                continue
            ax.errorbar(rows["level"], rows[f"{metric}_mean"], yerr=rows[f"{metric}_std"].fillna(0), fmt=style,
                        color=colours[arch], capsize=3, ms=4, label=f"{arch}: {name}")


def _vs_level(evaluation, levels, stem, pairs, ylabel, out_dir):
    colours = arch_colours(levels)

    def draw(ax, sub):
        _level_lines(ax, sub, colours, pairs)
        ax.set_xlabel(level_label(sub))
        ax.set_ylabel(ylabel)
        ax.legend()

    # A panel per combination of the study's other axes (latent_dim, training level, ...).
    keys = facet_keys(levels, group_columns(evaluation), {"level"})
    with plt.rc_context(STYLE):
        return _paged(stem, facets(levels, keys), draw, out_dir)


def accuracy_vs_level(evaluation, levels, experiments, out_dir):
    """The reference classifier's accuracy on seasoned (dashed) and denoised (solid) test
    images against the level, mean ± std over seeds (seed 001 4c)."""
    if "denoised_accuracy_mean" not in levels or levels["denoised_accuracy_mean"].isna().all():
        raise FigureSkipped("accuracy vs level: no denoise trial had a reference classifier")
    return _vs_level(evaluation, levels, "denoise_accuracy_vs_level",
                     [("denoised_accuracy", "-o", "denoised"), ("seasoned_accuracy", "--s", "seasoned (noisy)")],
                     "classifier accuracy (true-positive rate)\n(mean ± std over seeds)", out_dir)


def reconstruction_vs_level(evaluation, levels, experiments, out_dir):
    """Mean squared error to the clean images of the noisy input and of the denoiser's output."""
    if levels.empty:
        raise FigureSkipped("reconstruction error vs level: no denoise trial finished")
    return _vs_level(evaluation, levels, "denoise_mse_vs_level",
                     [("denoised_mse", "-o", "denoised"), ("noisy_mse", "--s", "noisy input")],
                     "mean squared error to the clean image\n(mean ± std over seeds)", out_dir)


def representatives(evaluation):
    """(title, slug, row) of one finished trial per group: its lowest seed."""
    finished = evaluation[evaluation["status"] == FINISHED].drop_duplicates(["experiment", "trial"])
    keys = group_columns(finished)
    shown = varying_columns(finished, keys)
    out = []
    for _, sub in finished.groupby(keys, dropna=False, sort=True) if keys else [(None, finished)]:
        row = sub.sort_values("seed").iloc[0] if "seed" in sub else sub.iloc[0]
        title = ", ".join(f"{k}={format_value(row[k])}" for k in (["arch", *[k for k in shown if k != "arch"]]))
        slug = "_".join(f"{k}-{format_value(row[k])}" for k in shown).replace("/", "-").replace(" ", "")
        out.append((title, slug, row))
    return out


def _file_of(row, experiments, name):
    folder = experiments.get(row["experiment"])
    return trial_file(folder, row["trial"], name) if folder else None


def _each_saved(evaluation, experiments, name, stem, draw, out_dir, missing):
    """For each group's lowest-seed trial that saved `name`: draw(arrays, title) -> figure,
    saved as `stem_SLUG`. FigureSkipped(missing) if no trial saved one."""
    paths = []
    for title, slug, row in representatives(evaluation):
        path = _file_of(row, experiments, name)
        if path is None:
            continue
        with np.load(path, allow_pickle=False) as f:  # data only (docs/trust.md)
            arrays = {k: f[k] for k in f.files}
        with plt.rc_context(STYLE):
            paths += save(draw(arrays, title), out_dir, f"{stem}_{slug}" if slug else stem)
    if not paths:
        raise FigureSkipped(missing)
    return paths


def _strips(arrays, title):
    original, noisy, denoised, lv = arrays["original"], arrays["noisy"], arrays["denoised"], arrays["levels"]
    labels = arrays.get("labels", [None] * len(original))
    if len(lv) > MAX_STRIP_LEVELS:
        keep = np.unique(np.linspace(0, len(lv) - 1, MAX_STRIP_LEVELS).round().astype(int))
        lv, noisy, denoised = lv[keep], noisy[keep], denoised[keep]
    ncols, nrows = len(lv) + 1, 2 * len(original)
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.85 * ncols + 0.9, 0.85 * nrows + 0.6), squeeze=False)
    for d in range(len(original)):
        for r, (kind, images) in enumerate((("noisy", noisy), ("denoised", denoised))):
            row_axes = axes[2 * d + r]
            if r == 0:  # the original once, beside its noisy row
                row_axes[0].imshow(original[d], cmap="gray", vmin=0, vmax=255)
            for j in range(len(lv)):
                row_axes[j + 1].imshow(images[j][d], cmap="gray", vmin=0, vmax=255)
            name = f"label {labels[d]}" if labels[d] is not None else f"image {d}"
            row_axes[0].set_ylabel(f"{name}\n{kind}" if r == 0 else kind, fontsize=7, rotation=0,
                                   ha="right", va="center")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
        ax.set_facecolor("none")
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0][0].set_title("original", fontsize=7)
    for j, level in enumerate(lv):
        axes[0][j + 1].set_title(f"{level:g}", fontsize=7)
    fig.suptitle(f"{title}: test images by noise level (noisy row, then denoised)", fontsize=8)
    return fig


def image_strips(evaluation, levels, experiments, out_dir):
    """Per group, for the fixed test images: the original, then noisy and denoised at each
    level (seed 001 4b), from the samples its lowest-seed trial saved."""
    return _each_saved(evaluation, experiments, SAMPLES_FILE, "strips", _strips, out_dir,
                       "image strips: no finished denoise trial saved sample images")


def _latent_mosaic(arrays, title):
    images, z1, z2 = arrays["images"], arrays["z1"], arrays["z2"]
    n, m, h, w = images.shape
    mosaic = images.transpose(0, 2, 1, 3).reshape(n * h, m * w)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=255)
    ticks = np.arange(0, m, max(1, m // 5))
    ax.set_xticks(ticks * w + w / 2, [f"{z1[i]:.1f}" for i in ticks])
    ax.set_yticks(ticks * h + h / 2, [f"{z2[i]:.1f}" for i in ticks])
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    ax.grid(False)
    ax.set_title(f"{title}: decoded latent grid", fontsize=8)
    return fig


def latent_grid(evaluation, levels, experiments, out_dir):
    """The VAE decoder's images over a grid of its 2-d latent space (seed 004 plot 3)."""
    return _each_saved(evaluation, experiments, LATENT_GRID_FILE, "latent_grid", _latent_mosaic, out_dir,
                       "latent grid: no finished vae trial with latent_dim 2")


FIGURES = {
    "denoise_accuracy_vs_level": accuracy_vs_level,
    "denoise_mse_vs_level": reconstruction_vs_level,
    "image_strips": image_strips,
    "latent_grid": latent_grid,
}
