"""The runner's live view: one progress line (sweeps.progress) kept current while the
sweep runs, one line per config as it ends, divergences and errors as they happen.

On a terminal the progress line stays at the bottom (rich, which comes with Ray) and the
event lines scroll above it. In a Jupyter notebook (noisesweep.run from a cell) it is a
progress bar with the line beside it, one display updated in place above the event lines
(IPython's own display, as the kernel has it). Anywhere else (CI, nohup, a log file) everything is plain
lines with no control characters: the progress line when the first trial starts, when
the ETA is first known, every HEARTBEAT_S seconds and at the end. Ray Tune's own tables are shown
instead with -v.
"""

from __future__ import annotations

import os
import sys
import time

from ray import tune

from sweeps import packing, schema
from sweeps.progress import PENDING, RUNNING, Sweep, config_key, duration, failure

HEARTBEAT_S = 60.0
REFRESH_S = 0.5  # a terminal's progress line at most this often
WAITING_S = 180.0  # the "waiting for a GPU" line at most this often


class LiveView(tune.Callback):
    """Tune's events into `sweep` (a sweeps.progress.Sweep) and onto `out`."""

    def __init__(self, sweep: Sweep, out=None, heartbeat_s: float = HEARTBEAT_S, gpus: float = 0,
                 waiting_s: float = WAITING_S):
        self.sweep = sweep
        self.out = out or sys.stdout
        self.heartbeat_s = heartbeat_s
        self.gpus = gpus  # each Tune trial's GPUs
        self.waiting_s = waiting_s
        self.waited_at = time.time()
        self.live = None
        self.notebook = None  # the notebook's display of the progress line
        self.shown = ""
        self.printed_at = 0.0
        self.eta_known = False
        self.eta_checked_at = 0.0
        self.scanned_at = 0.0
        self.seen: set = set()  # ended trials already taken in (on_step_end)
        self.under_way = False  # the first trial has started

    # Tune pickles its run config (callbacks and all) into the experiment for --resume: the
    # restored view starts from the grid alone and learns the rest from Tune's trials.
    def __getstate__(self):
        return {"sweep": self.sweep, "heartbeat_s": self.heartbeat_s, "gpus": self.gpus, "waiting_s": self.waiting_s}

    def __setstate__(self, state):
        self.__init__(state["sweep"], heartbeat_s=state["heartbeat_s"], gpus=state.get("gpus", 0),
                      waiting_s=state.get("waiting_s", WAITING_S))

    # -- output ----------------------------------------------------------------------------
    def setup(self, **info):
        self.sweep.started = self.printed_at = time.time()  # the heartbeat counts from here
        if self.out.isatty():
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._text = Text
            self.live = Live(Text(self.sweep.line()), console=Console(file=self.out), transient=True,
                             auto_refresh=False)
            self.live.start()
        elif self.out is sys.stdout:
            self.notebook = _notebook_display(self._bar())

    def _bar(self, now: float | None = None) -> dict:
        """The progress line as a notebook shows it: a bar of configs done, and the line."""
        from html import escape

        line = self.sweep.line(now)
        n = self.sweep.counts()
        done = n[schema.FINISHED] + n[schema.DIVERGED]
        html = (f'<progress value="{done}" max="{len(self.sweep.configs)}" style="width: 12em"></progress> '
                f"<code>{escape(line)}</code>")
        return {"text/plain": line, "text/html": html}

    def say(self, line: str) -> None:
        if self.live:
            self.live.console.print(line, markup=False, highlight=False)
        else:
            print(line, file=self.out, flush=True)

    def progress(self, force: bool = False) -> None:
        # Called on every Tune event and step: the line (a pass over every config) is made
        # only when it is shown; made on every call, it took half the driver's time in a
        # 2,000-config sweep and kept the trial slots waiting.
        now = time.time()
        if self.live:
            if force or now - self.printed_at >= REFRESH_S:
                self.live.update(self._text(self.sweep.line(now)), refresh=True)
                self.printed_at = now
            return
        if self.notebook:
            if force or now - self.printed_at >= REFRESH_S:
                self.notebook.update(self._bar(now), raw=True)
                self.printed_at = now
            return
        newly_known = False
        if not self.eta_known and now - self.eta_checked_at >= REFRESH_S:
            self.eta_checked_at = now
            newly_known = self.eta_known = self.sweep.eta() is not None
        if force or newly_known or now - self.printed_at >= self.heartbeat_s:
            print(self.sweep.line(now), file=self.out, flush=True)
            self.printed_at = now

    # -- Tune's events ---------------------------------------------------------------------
    def _members(self, trial) -> list[tuple[int, str]]:
        """(config index, name shown) of each config the Tune trial trains: a pack's members
        under the folder names it reports (a pack restarted from an older version keeps
        its own)."""
        trained = packing.trained_configs(trial.config, os.path.basename(trial.path), trial.last_result)
        return [(self.sweep.index[config_key(config)], name) for name, config, _ in trained]

    def _unit(self, trial) -> int:
        return self.sweep.unit(packing.members_of(trial.config) or [trial.config])

    def on_trial_start(self, iteration, trials, trial, **info):
        self.sweep.set_unit(self._unit(trial), RUNNING)
        self.progress(force=not self.under_way)  # the first line says the sweep is under way
        self.under_way = True

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._take(trial, result, speak=True)
        self.progress()

    def _take(self, trial, result: dict, speak: bool) -> None:
        self.sweep.epoch_done(self._unit(trial), result.get("epoch_time_s"))
        for name, config, row in packing.trained_configs(trial.config, os.path.basename(trial.path), result):
            i = self.sweep.index[config_key(config)]
            if self.sweep.row(i, row) in (schema.DIVERGED, schema.FINISHED) and speak:
                self.say(self.sweep.config_line(i, name))

    def _ended(self, trial, state: str) -> None:
        error = os.path.join(trial.path, schema.ERROR_FILE) if state == schema.ERRORED else None
        names = dict(self._members(trial))
        note = outcome(trial, state)
        for i in self.sweep.set_unit(self._unit(trial), state):
            self.say(self.sweep.config_line(i, names[i], error, note=note))
        self.progress()

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.say(retry_line(trial))
        self.progress()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trial, schema.FINISHED)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trial, schema.ERRORED)

    def on_step_end(self, iteration, trials, **info):
        # A resumed experiment's trials that ended before: Tune sends them no event. Each
        # is taken in once, and the trials are looked over at most every REFRESH_S.
        now = time.time()
        if now - self.scanned_at >= REFRESH_S:
            self.scanned_at = now
            for trial in trials:
                if trial.status != "TERMINATED" or not trial.last_result or trial.trial_id in self.seen:
                    continue
                self.seen.add(trial.trial_id)
                members = self._members(trial)
                if all(self.sweep.state[i] not in (schema.FINISHED, schema.DIVERGED) for i, _ in members):
                    self._take(trial, trial.last_result, speak=False)
                    self.sweep.set_unit(self._unit(trial), schema.FINISHED)
        if self.gpus and now - self.waited_at >= self.waiting_s:
            self.waited_at = now
            self.say_waiting(now)
        self.progress()

    def say_waiting(self, now: float) -> None:
        """One line while trials wait for GPUs the cluster lacks (Ray's autoscaler says it
        every half minute, in its words; the runner leaves those out)."""
        n = self.sweep.counts()
        if not n[PENDING] or n[RUNNING]:
            return
        import ray

        # A trial's GPUs are on one node: the most any node has.
        have = max((node["Resources"].get("GPU", 0) for node in ray.nodes() if node["Alive"]), default=0)
        if have < self.gpus:
            self.say(f"waiting for a GPU: each Tune trial asks {self.gpus:g} on one node and this Ray cluster's "
                     f"nodes have at most {have:g}; {n[PENDING]} configs wait until a GPU node joins "
                     f"({duration(now - self.sweep.started)} so far)")

    def on_experiment_end(self, trials, **info):
        if self.live:
            self.live.stop()
            self.live = None
        if self.notebook:
            self.notebook.update(self._bar(), raw=True)
            self.notebook = None
            return
        print(self.sweep.line(), file=self.out, flush=True)


class SearchView(tune.Callback):
    """A search's events as plain lines (sweeps.search): each sampled config as it ends, with
    its replicates' mean and the best mean so far, and every `heartbeat_s` a line of where
    the search stands (configs ended and running, best so far, time run and budget left).

    Counts come from Tune's trials, not from the events this view saw: a resumed search's
    earlier configs count too, so "config 25/30" and the best so far read across restarts.
    `earlier`: the means (None: errored) of the configs a grown search's earlier steps tried,
    counted in the same way."""

    def __init__(self, spec: dict, out=None, heartbeat_s: float = HEARTBEAT_S, earlier: list | None = None):
        self.spec = spec
        self.out = out or sys.stdout
        self.heartbeat_s = heartbeat_s
        self.earlier = list(earlier or [])
        self.started = self.printed_at = time.time()

    def __getstate__(self):
        return {"spec": self.spec, "heartbeat_s": self.heartbeat_s, "earlier": self.earlier}

    def __setstate__(self, state):
        self.__init__(state["spec"], heartbeat_s=state.get("heartbeat_s", HEARTBEAT_S),
                      earlier=state.get("earlier"))

    def _say(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _value(self, trial):
        value = (trial.last_result or {}).get(f"mean_{self.spec['metric']}")
        return value if value is not None and value == value else None

    def _best(self, ended) -> float | None:
        values = [v for v in [*self.earlier, *map(self._value, ended)] if v is not None]
        if not values:
            return None
        return max(values) if self.spec["mode"] == "max" else min(values)

    def _ended(self, trials, trial, how: str) -> None:
        metric = f"mean_{self.spec['metric']}"
        value = self._value(trial)
        # Tune calls this before it marks the trial ended: count it in by hand.
        ended = [t for t in trials if t.status in ENDED or t is trial]
        best = self._best(ended)
        drawn = ", ".join(f"{k}={_shown(trial.config.get(k))}" for k in self.spec["space"])
        score = f"{metric} {value:.4f}" if value is not None else "no result"
        best = f" | best so far {best:.4f}" if best is not None else ""
        total = f"/{self.spec['configs']}" if self.spec["configs"] else ""
        epoch = (trial.last_result or {}).get("epoch", 0)
        self._say(f"  config {len(self.earlier) + len(ended)}{total} {how} after {epoch} epochs: {drawn}: "
                  f"{score}{best}")

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "ended")

    def on_trial_error(self, iteration, trials, trial, **info):
        self._ended(trials, trial, "errored")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._say(retry_line(trial))

    def line(self, trials, now: float | None = None) -> str:
        """Where the search stands, in one line."""
        now = time.time() if now is None else now
        ended = len(self.earlier) + sum(t.status in ENDED for t in trials)
        running = [t for t in trials if t.status == "RUNNING"]
        total = f"/{self.spec['configs']}" if self.spec["configs"] else ""
        parts = [f"search: {ended}{total} configs ended"]
        if running:
            epochs = ", ".join(f"{(t.last_result or {}).get('epoch', 0)}/{t.config.get('epochs')}" for t in running)
            parts.append(f"{len(running)} running (epoch {epochs})")
        best = self._best([t for t in trials if t.status in ENDED])
        if best is not None:
            parts.append(f"best so far {best:.4f}")
        parts.append(f"{duration(now - self.started)} run")
        if self.spec.get("time_budget_min"):
            parts.append(f"budget {self.spec['time_budget_min']:g} min")
        return "  " + ", ".join(parts)

    def on_step_end(self, iteration, trials, **info):
        now = time.time()
        if now - self.printed_at >= self.heartbeat_s:
            self._say(self.line(trials, now))
            self.printed_at = now


ENDED = ("TERMINATED", "ERROR")


def _name(trial) -> str:
    members = packing.members_of(trial.config)
    name = os.path.basename(trial.path)
    return f"{name} ({len(members)} configs)" if members else name  # a pack's folder: pack_...


def retry_line(trial) -> str:
    """`NAME: worker lost; retry k of n from epoch e`: Tune restarts the trial from its
    latest checkpoint (its epoch e-1)."""
    k, n = trial.run_metadata.num_failures, trial.max_failures
    saved = trial.latest_checkpoint_result
    rows = packing.trained_configs(trial.config, "", saved.metrics) if saved else []
    start = 1 + max((int(row.get("epoch") or 0) for *_, row in rows), default=0)
    # Ray does not count an actor lost to its node's preemption (a spot node) as a failure.
    retry = f"retry {k}{f' of {n}' if n >= 0 else ''}" if k else "retry (a preemption: not counted as a failure)"
    return f"  {_name(trial)}: {failure(trial.error_file)}; {retry} from epoch {start}"


def outcome(trial, state: str) -> str:
    """What a retried or errored trial's end line adds: its retries, and for an error its cause."""
    k = trial.run_metadata.num_failures
    if state == schema.ERRORED:
        retries = k - 1
        return f"{failure(trial.error_file)}, {'no retries' if retries <= 0 else f'{retries} retries'} " \
               f"(--max-failures {trial.max_failures})"
    if k:
        return f"after {k} {'retry' if k == 1 else 'retries'}"
    return ""


def _notebook_display(first: dict):
    """A display handle showing `first` when this process is a Jupyter kernel, else None."""
    ipython = sys.modules.get("IPython")  # a kernel has imported it; a script need not
    shell = ipython.get_ipython() if ipython else None
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return None
    from IPython.display import display

    return display(first, raw=True, display_id=True)


def _shown(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
