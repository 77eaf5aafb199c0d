"""The report's robustness section: the tidy table, the summary and the corruption x config
table written as CSVs, and their markdown (analysis.robustness's table,
analysis.robustness_measures' measures)."""

from __future__ import annotations

import os
import warnings

import pandas as pd

from analysis.figures import format_value
from analysis.robustness import final_scores, group_keys, score_metric
from analysis.robustness_measures import (MEASURE_LABELS, MEASURES, MINIMIZED, BaselineWarning, accuracy_table,
                                          robustness_summary, suite_name)


def _cell(row, m, digits) -> str:
    mean, std = row.get(f"{m}_mean"), row.get(f"{m}_std")
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.{digits}f}" if pd.isna(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def summary_markdown(summary: pd.DataFrame, keys: list[str]) -> str:
    """A table per suite: the config, then each measure's mean ± std (n) and the mCE's
    mark against the best (Holm p)."""
    shown = [k for k in dict.fromkeys(["arch", *keys]) if k in summary
             and (k == "arch" or summary[k].nunique(dropna=False) > 1)]
    blocks = []
    for suite, rows in summary.groupby("suite", sort=True):
        header = [*shown, *(MEASURE_LABELS[m] for m in MEASURES), "mCE vs best (Holm p)", "n"]
        lines = [f"Suite {suite_name(suite)}:", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for _, row in rows.iterrows():
            mark, p = row.get("mce_vs_best"), row.get("mce_p_holm")
            versus = "" if mark is None or pd.isna(mark) else (f"{mark} ({p:.3g})" if not pd.isna(p) else str(mark))
            cells = [_cell(row, m, 1 if m in MINIMIZED else 4) for m in MEASURES]
            lines.append("| " + " | ".join([*(format_value(row[k]) for k in shown), *cells, versus,
                                             str(row["n"])]) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def accuracy_markdown(wide: pd.DataFrame) -> str:
    """The corruption x config table in markdown."""
    configs = [c for c in wide.columns if c not in ("suite", "condition")]
    header = ["suite", "condition", *configs]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in wide.iterrows():
        values = ["–" if pd.isna(row[c]) else f"{row[c]:.4f}" for c in configs]
        lines.append("| " + " | ".join([row["suite"] or "–", row["condition"], *values]) + " |")
    return "\n".join(lines)


def section(scores: pd.DataFrame, out: str, baseline: dict | None = None) -> tuple[str, list[str]]:
    """The report's robustness tables, from an all-epochs table: robustness.csv (the final
    epochs), robustness_summary.csv, robustness_accuracy.csv (corruption x config) written to
    `out`; returns the markdown section and the files written."""
    final = final_scores(scores)
    metric = score_metric(final)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BaselineWarning)
        summary = robustness_summary(final, baseline, metric)
    notes = [str(w.message) for w in caught if issubclass(w.category, BaselineWarning)]
    wide = accuracy_table(final, metric)
    written = []
    for name, table in (("robustness.csv", final), ("robustness_summary.csv", summary),
                        ("robustness_accuracy.csv", wide)):
        table.to_csv(os.path.join(out, name), index=False)
        written.append(os.path.join(out, name))
    label = {"denoised_accuracy": "the denoised images' accuracy (the reference classifier's, after the "
             "denoiser)"}.get(metric, "the test accuracy")
    parts = [
        "## Robustness: the test set under corruptions and noise",
        "",
        f"Of {label}, at each config's latest epoch scored (robustness.csv). Per suite, over finished "
        "replicate seeds (mean ± std, ddof=1): the clean test set's accuracy; the mean corruption accuracy (over "
        "the suite's conditions and severities but clean); mCE and relative mCE in percent (Hendrycks & "
        "Dietterich 2019, with a baseline config in AlexNet's place: 100 = the baseline's errors; lower is more "
        "robust). The baseline: the one the grid's `evaluate: baseline:` names (per architecture), else each "
        "config's clean-trained counterpart (equal to it in every key but the noise); the summary's `baseline` "
        "column names it. Each config against its architecture's best by Welch's t-test over "
        "seeds, Holm-adjusted within an architecture and suite (robustness_summary.csv has every measure's).",
        "",
        *([*(f"- {n}" for n in notes), ""] if notes else []),
    ]
    if metric is None:
        parts += ["No config scored an accuracy (a denoiser's loss alone, say): robustness.csv has the scores.", ""]
    else:
        parts += [
            summary_markdown(summary, group_keys(final)) if not summary.empty
            else "No finished replicate scored a condition other than clean.",
            "",
            f"Mean {'accuracy' if metric == 'accuracy' else 'denoised accuracy'} per condition (over its "
            "severities and the finished replicates), a column per config (robustness_accuracy.csv):",
            "",
            accuracy_markdown(wide) if not wide.empty else "No finished replicate was scored.",
            "",
        ]
    return "\n".join(parts), written
