"""An experiment folder as a Python object: its trials, summary, figures and report, read
from its files alone (no Ray, no TensorFlow), while it runs or after."""

from __future__ import annotations

import os


class Experiment:
    """The experiment in folder `path` (runs/NAME), as analysis reads it."""

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise ValueError(f"{path}: no such folder")
        self.path = os.path.abspath(path)

    def __repr__(self) -> str:
        return f"Experiment({self.path!r})"

    def _study(self, metric: str | None = None):
        from analysis.report import ReportError, study

        try:
            return study([self.path], metric, log=lambda line: None)
        except ReportError as e:
            raise ValueError(str(e)) from None

    @property
    def trials(self):
        """The tidy table: one row per trial and epoch, its metrics and config keys."""
        return self._study().df

    def summary(self, metric: str | None = None):
        """Mean ± std over replicate seeds per config, final epoch, ranked by `metric`
        (default: the trials' headline one), each cell marked against its architecture's best
        (Welch's t over seeds, Holm-corrected)."""
        return self._study(metric).summary

    def figure(self, name: str, metric: str | None = None):
        """The report's figure `name` (figure_names()) as a matplotlib Figure; ValueError
        where the data cannot make it (one noise scale for accuracy vs noise, say)."""
        from analysis import figures
        from analysis.report import ReportError, draw

        found = self._study(metric)
        with figures.collected() as drawn:
            try:
                draw(found, name, out_dir="")
            except (ReportError, figures.FigureSkipped) as e:
                raise ValueError(str(e)) from None
        for extra in drawn[1:]:  # a figure of many pages: the first
            import matplotlib.pyplot as plt

            plt.close(extra)
        return drawn[0]

    def _experiments(self) -> list[str]:
        from analysis.load import experiment_dirs

        return experiment_dirs(self.path) or [self.path]

    def robustness(self, all_epochs: bool = False):
        """The robustness table (analysis.robustness.load_robustness): one row per config,
        suite, condition and severity at the config's latest epoch scored; `all_epochs=True`:
        every epoch scored. Empty where no config was scored under test-time conditions."""
        from analysis.robustness import load_robustness

        return load_robustness(*self._experiments(), all_epochs=all_epochs)

    def robustness_summary(self, baseline: dict | None = None, metric: str | None = None):
        """Per config and suite over replicate seeds: clean accuracy, mean corruption accuracy,
        mCE and relative mCE (percent, Hendrycks & Dietterich 2019) against `baseline` (config
        key -> value; default: the grid's `evaluate: baseline:`, else each config's clean-trained
        twin, equal in every key but its noise), each config against its architecture's best
        (Welch over seeds, Holm-corrected)."""
        from analysis.robustness_measures import robustness_summary

        return robustness_summary(self.robustness(), baseline, metric)

    def evaluate(self, evaluate: dict | None = None, suite: str | None = None, data_dir: str | None = None,
                 cache_dir: str | None = None) -> dict:
        """Score every finished config under new test-time conditions without training, as
        `noisesweep evaluate` does: `evaluate` is an `evaluate:` section ({"gaussian": [0.5, 1],
        "suites": ["mnist_c"]}), or `suite` names one. Adds robustness/evaluate-N.csv to each
        config; rewrites nothing. Returns the counts: scored, unfinished, without weights.
        ValueError for bad input, naming it."""
        from sweeps import conditions
        from sweeps.evaluate import EvaluateError, evaluate as score, section_from

        if (evaluate is None) == (suite is None):
            raise ValueError("give one of evaluate= (an evaluate: section, as a dict) or suite= (a suite's name)")
        try:
            if suite is not None:
                section = section_from(None, suite)
            else:
                try:
                    section = conditions.check(evaluate)
                except conditions.ConditionError as e:
                    raise EvaluateError(f"evaluate.{e.key} = {e.value!r}: {e.why}") from None
            return score(self.path, section, data_dir, cache_dir, log=lambda *a, **k: None)
        except EvaluateError as e:
            raise ValueError(str(e)) from None

    @staticmethod
    def figure_names() -> list[str]:
        from analysis.report import figure_names

        return figure_names()

    def report(self, out: str | None = None, metric: str | None = None) -> list[str]:
        """Every table and figure, as `noisesweep report` writes them (default out: the
        experiment's report/ folder); the files written."""
        from analysis.report import ReportError, build

        try:
            return build([self.path], out, metric, log=lambda line: None)
        except ReportError as e:
            raise ValueError(str(e)) from None

    def status(self) -> str:
        """Where the experiment stands, as `noisesweep status` says it."""
        from sweeps.status import StatusError, report

        lines: list[str] = []
        try:
            report(self.path, out=lines.append)
        except StatusError as e:
            raise ValueError(str(e)) from None
        return "\n".join(lines)
