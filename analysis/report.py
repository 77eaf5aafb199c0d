"""`python -m analysis.report RUN_DIR [RUN_DIR ...] [--out DIR] [--metric val_accuracy]`.

Reads the experiment folders (a sweep still running is fine), writes the
tidy table (trials.parquet), summary.csv, per_epoch.csv, summary.md, with 2-10
replicate seeds replicates.csv (each seed's final value per group), the
figures and report.md that embeds them; for denoise trials also evaluation.csv
(one row per trial and test level), evaluation_summary.csv (mean ± std over
seeds per level) and the denoising figures; where configs were scored under
test-time corruptions (their robustness/ folders), robustness.csv,
robustness_summary.csv, robustness_accuracy.csv and the robustness figures
(analysis.robustness, analysis.robustness_measures, analysis.robustness_report). Bad
input gets one `error:` line and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass

if __package__ in (None, ""):
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import pandas as pd  # noqa: E402

from analysis import (denoise_figures, figures, robustness, robustness_figures, robustness_report,  # noqa: E402
                      search)
from analysis.aggregate import (DDOF, group_columns, per_epoch, per_level, replicates, summarize,  # noqa: E402
                                varying_columns)
from analysis.load import (METRICS, counted_once, experiment_dirs, experiment_labels, load_evaluation,  # noqa: E402
                           load_experiment)
from sweeps.schema import STATUSES, headline_metric  # noqa: E402


class ReportError(Exception):
    """Bad input: printed as one line, exit 2."""


def _row_keys(table: pd.DataFrame, varying: list[str]) -> list[str]:
    """The columns that name a row: the architecture, then the study's varying keys."""
    return [k for k in dict.fromkeys(["arch", *varying]) if k in table]


def _cell(row, metric) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None or pd.isna(mean):
        return "–"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f} ± {std:.4f}"


def _versus(row) -> str:
    mark, p = row.get("vs_best"), row.get("p_holm")
    if mark is None or pd.isna(mark):
        return ""
    return f"{mark} ({p:.3g})" if p is not None and not pd.isna(p) else str(mark)


def markdown_table(summary: pd.DataFrame, keys: list[str], metric: str) -> str:
    """`mean ± std (n)` per group, best first within each architecture."""
    shown = _row_keys(summary, varying_columns(summary, keys))
    stopping = "stopped_at" in summary
    header = [*shown, f"{metric}: mean ± std (n)", "95 % CI", "vs best (Holm p)", "diverged", "incomplete",
              *(["last epoch, per seed"] if stopping else [])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cell, ci = _cell(row, metric), row.get(f"{metric}_ci95")
        cell = cell if cell == "–" else f"{cell} ({row['n']})"
        interval = "–" if pd.isna(ci) else f"± {ci:.4f}"
        values = [figures.format_value(row[k]) for k in shown]
        ended = [row["stopped_at"] if isinstance(row["stopped_at"], str) else "–"] if stopping else []
        lines.append("| " + " | ".join([*values, cell, interval, _versus(row), str(row["n_diverged"]),
                                         str(row["n_incomplete"]) if row["n_incomplete"] else "", *ended]) + " |")
    return "\n".join(lines)


# A table with a column per replicate is for a handful of them, as the seeds' tables were.
MAX_REPLICATE_COLUMNS = 10


def replicate_table(table: pd.DataFrame, keys: list[str], metric: str) -> str:
    """One row per group: each replicate's final value (or why it has none: diverged,
    unfinished, errored) and, with early stopping, the epoch it ended at; then mean ± std (n)
    and how many diverged."""
    shown = _row_keys(table, varying_columns(table, keys))
    seeds = [c for c in table if c.startswith("seed ") and not c.endswith((" status", " epoch"))]
    header = [*shown, *seeds, f"{metric}: mean ± std (n)", "diverged"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in table.iterrows():
        # A status is a word, or missing where the group has no trial with that seed.
        words = [row[f"{s} status"] if isinstance(row[f"{s} status"], str) else "–" for s in seeds]
        cells = [f"{row[s]:.4f}" if not pd.isna(row[s]) else word for s, word in zip(seeds, words)]
        cells = [c + (f" (epoch {row[s + ' epoch']:.0f})" if not pd.isna(row.get(s + " epoch", None)) else "")
                 for s, c in zip(seeds, cells)]
        total = sum(word != "–" for word in words)
        mean = _cell(row, metric)
        lines.append("| " + " | ".join([*(figures.format_value(row[k]) for k in shown), *cells,
                                         mean if mean == "–" else f"{mean} ({row['n']})",
                                         f"{row['n_diverged']} of {total}"]) + " |")
    return "\n".join(lines)


def level_table(evaluation: pd.DataFrame, levels: pd.DataFrame) -> str:
    """Per group and test level: seasoned and denoised accuracy and MSE, mean ± std (n)."""
    shown = _row_keys(levels, varying_columns(evaluation, group_columns(evaluation)))
    metrics = [m for m in ("seasoned_accuracy", "denoised_accuracy", "noisy_mse", "denoised_mse")
               if f"{m}_mean" in levels and levels[f"{m}_mean"].notna().any()]
    header = [*shown, "level", *metrics, "n"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in levels.iterrows():
        values = [figures.format_value(row[k]) for k in shown] + [f"{row['level']:g}"]
        lines.append("| " + " | ".join([*values, *(_cell(row, m) for m in metrics), str(row["n"])]) + " |")
    return "\n".join(lines)


def write_report(out: str, runs, df, summary, metric, keys, drawn, skipped, problems, denoising="",
                 repeated=(), each="", searched="", robust="") -> str:
    status = df.drop_duplicates(["experiment", "trial"])["status"].value_counts()
    parts = [
        "# Sweep report",
        "",
        "Experiments: " + ", ".join(f"`{r}`" for r in runs),
        "",
        # One per config (a pack's members each), in the words the runner uses.
        "Configs: " + ", ".join(f"{status.get(s, 0)} {s}" for s in STATUSES),
        "",
        *[f"Counted once: {note}." for note in repeated],
        *([""] if repeated else []),
        f"Statistics over replicate seeds of the final epoch's metrics: std is the sample std (ddof={DDOF}); "
        "the 95 % CI is mean ± t(0.975, n-1)·std/√n; n counts finished replicates. Diverged replicates "
        "(NaN loss) are counted apart and excluded from the mean; groups with unfinished replicates "
        "(unfinished or errored) are marked in the incomplete column. "
        "Vs best: each cell against its architecture's best by Welch's t-test over replicate seeds, the "
        "p-values of one architecture adjusted together by Holm's method; \"≈ best\" (adjusted p ≥ 0.05) "
        "means the cell cannot be told apart from the best with these replicates, \"worse\" that it can. "
        "The accuracy-vs-noise and accuracy-vs-L2 figures mark the best cell with a star and each ≈ best "
        "cell with a ring."
        + (" Early stopping: the final epoch is the one each replicate stopped at (Keras's rule: its "
           "monitored metric no better than its best for `patience` epochs) or its last allowed one; "
           "\"last epoch, per seed\" lists them." if "stopped_at" in summary else ""),
        "",
        *([
            "## Search: the chosen config",
            "",
            searched,
            "",
        ] if searched else []),
        f"## Final {figures.label(metric, df)}, best first within each architecture",
        "",
        markdown_table(summary, keys, metric),
        "",
        *([
            f"## Each replicate's final {figures.label(metric, df)}",
            "",
            "A diverged replicate (NaN loss) is named, not averaged; the mean is over the finished ones.",
            "",
            each,
            "",
        ] if each else []),
        *([
            "## Denoising: the test set at each noise level",
            "",
            "Seasoned: the reference classifier on the noisy test images; denoised: the composite "
            "noisy -> denoiser -> classifier. MSE: mean squared error to the clean images. "
            "Mean ± std over finished seeds.",
            "",
            denoising,
            "",
        ] if denoising else []),
        *([robust] if robust else []),
        "## Figures",
        "",
    ]
    for name, paths in drawn.items():
        for png in (p for p in paths if p.endswith(".png")):
            parts += [f"![{name}]({os.path.relpath(png, out)})", ""]
    if skipped:
        parts += ["Not drawn:", "", *[f"- {reason}" for reason in skipped], ""]
    if problems:
        parts += ["## Problems reading the logs", "", *[f"- {p}" for p in problems], ""]
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(parts))
    return path


@dataclass
class Study:
    """Experiments read for a report: their tidy table, its summary and curves."""

    runs: list
    experiments: list
    df: pd.DataFrame
    metric: str
    keys: list
    summary: pd.DataFrame
    curves: pd.DataFrame
    problems: list
    repeated: list


def study(runs: list[str], metric: str | None = None, log=print, timings: dict | None = None) -> Study:
    """The experiments in (or below) `runs` read and summarised over replicates, ranked by
    `metric` (default: the headline one the trials report). Raises ReportError on bad input."""
    timings = {} if timings is None else timings
    clock = time.perf_counter()
    experiments = []
    for run in runs:
        if not os.path.isdir(run):
            raise ReportError(f"{run}: no such folder")
        found = experiment_dirs(run)
        if not found:
            raise ReportError(f"{run}: no trial folders (folders with params.json) in it or below it")
        experiments += found
    if metric is not None and metric not in METRICS:
        raise ReportError(f"--metric {metric}: unknown; known: {', '.join(METRICS)}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df = load_experiment(*experiments)
    timings["load"] = time.perf_counter() - clock
    problems = [str(w.message) for w in caught]
    for p in problems:
        log(f"warning: {p}")
    if df.empty:
        raise ReportError(f"{', '.join(runs)}: no readable trials")
    df, repeated = counted_once(df)
    for note in repeated:
        log(f"note: {note}")
    if metric is None:
        metric = headline_metric({c for c in df if df[c].notna().any()})
    if metric not in df or df[metric].isna().all():
        raise ReportError(f"--metric {metric}: no trial reported it")
    clock = time.perf_counter()
    found = Study(list(runs), experiments, df, metric, group_columns(df), summarize(df, metric), per_epoch(df),
                  problems, repeated)
    timings["aggregate"] = time.perf_counter() - clock
    return found


def figure_names() -> list[str]:
    """Every figure a report may draw, by name."""
    return [*figures.FIGURES, *denoise_figures.FIGURES, *robustness_figures.FIGURES]


def kept_trials(table: pd.DataFrame, df: pd.DataFrame) -> pd.DataFrame:
    """The rows of `table` whose trial is in the tidy table `df` (counted_once's choice)."""
    if table.empty:
        return table
    kept = pd.MultiIndex.from_frame(df[["experiment", "trial"]].drop_duplicates())
    return table[pd.MultiIndex.from_frame(table[["experiment", "trial"]]).isin(kept)].reset_index(drop=True)


def draw(found: Study, name: str, out_dir: str) -> list[str]:
    """The figure `name` of a study, drawn to `out_dir` (figures.FigureSkipped where the
    data cannot make it); the files written."""
    if name in figures.FIGURES:
        return figures.FIGURES[name](found.summary, found.curves, found.keys, found.metric, out_dir)
    if name in robustness_figures.FIGURES:
        scores = kept_trials(robustness.load_robustness(*found.experiments, all_epochs=True), found.df)
        if scores.empty:
            raise figures.FigureSkipped(f"{name.replace('_', ' ')}: no config's robustness scores in the data")
        return robustness_figures.FIGURES[name](scores, out_dir)
    if name not in denoise_figures.FIGURES:
        raise ReportError(f"figure {name!r}: unknown; known: {', '.join(figure_names())}")
    evaluation = load_evaluation(*found.experiments)
    if evaluation.empty:
        raise figures.FigureSkipped(f"{name.replace('_', ' ')}: no denoise trial's evaluation in the data")
    folders = {label: e for e, label in experiment_labels(found.experiments).items()}
    return denoise_figures.FIGURES[name](evaluation, per_level(evaluation), folders, out_dir)


def build(runs: list[str], out: str | None = None, metric: str | None = None, log=print,
          timings: dict | None = None) -> list[str]:
    """Everything the CLI does; returns the files written. Raises ReportError on bad input.

    `timings`, if given, receives the seconds spent loading, aggregating and drawing.
    """
    timings = {} if timings is None else timings
    found = study(runs, metric, log, timings)
    experiments, df, metric, keys = found.experiments, found.df, found.metric, found.keys
    summary, curves, problems, repeated = found.summary, found.curves, found.problems, found.repeated
    out = out or os.path.join(runs[0], "report")
    os.makedirs(out, exist_ok=True)
    clock = time.perf_counter()
    written = []
    tidy = os.path.join(out, "trials.parquet")
    df.to_parquet(tidy, index=False)
    for name, table in (("summary.csv", summary), ("per_epoch.csv", curves)):
        table.to_csv(os.path.join(out, name), index=False)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(markdown_table(summary, keys, metric) + "\n")
    written += [tidy, *(os.path.join(out, n) for n in ("summary.csv", "per_epoch.csv", "summary.md"))]
    each = ""
    if "seed" in df and 2 <= df["seed"].nunique() <= MAX_REPLICATE_COLUMNS:
        table = replicates(df, metric, summary)
        table.to_csv(os.path.join(out, "replicates.csv"), index=False)
        each = replicate_table(table, keys, metric)
        written.append(os.path.join(out, "replicates.csv"))
    timings["tables"] = time.perf_counter() - clock
    clock = time.perf_counter()

    drawn, skipped = {}, []
    spec = search.spec_of(experiments)
    for name, draw in figures.FIGURES.items():
        if spec and name in figures.ALONG_AXES:
            # A search's configs are points drawn from its space, each its own group: a
            # figure along an axis would draw one point per line. Its section shows them.
            reason = f"{name.replace('_', ' ')}: a search's configs are no grid (its section has them)"
            skipped.append(reason)
            log(f"figure skipped: {reason}")
            continue
        try:
            drawn[name] = draw(summary, curves, keys, metric, os.path.join(out, "figures"))
        except figures.FigureSkipped as e:
            skipped.append(str(e))
            log(f"figure skipped: {e}")
    denoising = ""
    evaluation = load_evaluation(*experiments)
    if repeated and not evaluation.empty:  # the trials counted_once left out leave this table too
        kept = pd.MultiIndex.from_frame(df[["experiment", "trial"]].drop_duplicates())
        evaluation = evaluation[pd.MultiIndex.from_frame(evaluation[["experiment", "trial"]]).isin(kept)]
    if not evaluation.empty:
        levels = per_level(evaluation)
        for name, table in (("evaluation.csv", evaluation), ("evaluation_summary.csv", levels)):
            table.to_csv(os.path.join(out, name), index=False)
            written.append(os.path.join(out, name))
        denoising = level_table(evaluation, levels)
        folders = {label: e for e, label in experiment_labels(experiments).items()}
        for name, draw in denoise_figures.FIGURES.items():
            try:
                drawn[name] = draw(evaluation, levels, folders, os.path.join(out, "figures"))
            except figures.FigureSkipped as e:
                skipped.append(str(e))
                log(f"figure skipped: {e}")
    robust = ""
    if robustness.any_scores(*experiments):  # else not a file or a line more than without them
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            scores = kept_trials(robustness.load_robustness(*experiments, all_epochs=True), df)
        for w in caught:
            if issubclass(w.category, robustness.LogWarning):
                problems.append(str(w.message))
                log(f"warning: {w.message}")
        if not scores.empty:
            robust, paths = robustness_report.section(scores, out)
            written += paths
            for name, draw in robustness_figures.FIGURES.items():
                try:
                    drawn[name] = draw(scores, os.path.join(out, "figures"))
                except figures.FigureSkipped as e:
                    skipped.append(str(e))
                    log(f"figure skipped: {e}")
    searched = ""
    if spec:
        searched, paths, table = search.section(df, spec, os.path.join(out, "figures"))
        table.to_csv(os.path.join(out, "search.csv"), index=False)
        written += [*paths, os.path.join(out, "search.csv")]
    written += [p for paths in drawn.values() for p in paths]
    written.append(write_report(out, runs, df, summary, metric, keys, drawn, skipped, problems, denoising,
                                repeated, each, searched, robust))
    timings["figures"] = time.perf_counter() - clock
    return written


def main(argv=None, prog: str = "python -m analysis.report") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="experiment folders, or a folder of them (runs/)")
    p.add_argument("--out", default=None, help="where to write (default RUN_DIR/report)")
    p.add_argument("--metric", default=None,
                   help="the metric tables and figures rank by (default val_accuracy, or val_loss if no trial reports it)")
    args = p.parse_args(argv)
    try:
        written = build(args.runs, args.out, args.metric)
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files to {os.path.dirname(written[-1])}:")
    for path in written:
        print(f"  {os.path.relpath(path, os.path.dirname(written[-1]))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
