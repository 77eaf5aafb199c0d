"""A sweep's progress as a person reads it: configs per state, elapsed, an ETA, the best
mean so far per architecture, and one line per config.

The runner's live view (sweeps.console) feeds it from Ray Tune's events while the sweep
runs; `noisesweep status` (sweeps.status) feeds it from an experiment's logs alone. No
Ray, no TensorFlow here.

The ETA counts Tune trials (a pack trains its members' epochs together): each unfinished
one's epochs still to go, times its own median epoch time (the first epoch compiles: a
median ignores it; else the mean of trials of the same architecture and pack size, else
of the same architecture), plus, for each trial not started yet, the median
time finished trials spent beyond their epochs (starting, building, saving: most of a
tiny trial; each slot's first trial, which also started its worker, left out once others
ended), spread over the
trial slots, and never less than the longest single trial's remainder. Until every
architecture still to train has one measured epoch it says "estimating".
"""

from __future__ import annotations

import json
import statistics
import time

from sweeps import schema
from sweeps.packing import label

PENDING, RUNNING = "pending", "running"
# A config's states in the order the progress line shows them.
STATES = (schema.FINISHED, RUNNING, PENDING, schema.DIVERGED, schema.ERRORED, schema.UNFINISHED)


def config_key(config: dict) -> str:
    """A config's identity across the grid, a Tune trial's config and a params.json (Tune
    fills keys some trials lack with None: those are left out)."""
    return json.dumps({k: v for k, v in config.items() if v is not None}, sort_keys=True, default=str)


def logged_key(params: dict, keys: set) -> str:
    """config_key of a trial folder's params.json, read as the configs whose `keys` it is
    matched against (Tune's params hold keys other trials have, as None)."""
    return config_key({k: params.get(k) for k in keys})


def of_seeds(k: int) -> str:
    """What a best mean is taken over, as the live view and status say it."""
    return f"mean of {k} seeds" if k > 1 else "1 seed"


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Sweep:
    """The configs of one experiment grouped into its Tune trials (`units`: lists of
    indices into `configs`, a pack or a lone config), and what is known of each."""

    def __init__(self, configs: list[dict], units: list[list[int]], slots: int, started: float | None = None):
        self.configs = configs
        self.units = units
        self.slots = max(1, slots)
        self.started = time.time() if started is None else started
        self.state = [PENDING] * len(configs)
        self.epochs = [0] * len(configs)  # epochs done
        self.last: list[dict] = [{} for _ in configs]  # each config's last row
        self.seconds: list[list[float]] = [[] for _ in units]  # each unit's epoch times
        self.index = {config_key(c): i for i, c in enumerate(configs)}
        self.unit_of = {i: u for u, members in enumerate(units) for i in members}
        self.began: dict = {}  # unit -> (when it started, its epoch times by then)
        self.overheads: list[float] = []  # finished units' time beyond their epochs

    def __setstate__(self, state: dict) -> None:
        # Tune pickles the live view, and this with it, into the experiment: a sweep resumed
        # by a newer version starts from a new Sweep's fields, then takes the saved ones.
        fresh = Sweep(state["configs"], state["units"], state["slots"], state.get("started"))
        self.__dict__.update({**fresh.__dict__, **state})

    # -- what happened ------------------------------------------------------------------------
    def unit(self, members: list[dict]) -> int:
        """The unit whose configs these are."""
        return self.unit_of[self.index[config_key(members[0])]]

    def epoch_done(self, unit: int, seconds: float | None) -> None:
        if seconds is not None:
            self.seconds[unit].append(float(seconds))

    def row(self, i: int, row: dict) -> str | None:
        """Config i reported `row` (its epoch, diverged, metrics); returns its new state if
        that changed to one worth saying (diverged; finished by early stopping, which a pack
        member does while its pack goes on)."""
        self.last[i] = {**self.last[i], **{k: v for k, v in row.items() if v is not None}}
        self.epochs[i] = max(self.epochs[i], int(row.get("epoch") or 0))
        if row.get("diverged"):
            changed = self.state[i] != schema.DIVERGED
            self.state[i] = schema.DIVERGED
            return schema.DIVERGED if changed else None
        if row.get("stopped"):
            changed = self.state[i] != schema.FINISHED
            self.state[i] = schema.FINISHED
            return schema.FINISHED if changed else None
        if self.state[i] == PENDING:
            self.state[i] = RUNNING
        return None

    def set_unit(self, unit: int, state: str) -> list[int]:
        """A unit started (RUNNING), ended (FINISHED: each member's own end state) or failed
        (ERRORED, or UNFINISHED when stopped). Returns the configs whose state changed."""
        if state == RUNNING:
            self.began[unit] = (time.time(), len(self.seconds[unit]))
        elif unit in self.began:
            started, known = self.began.pop(unit)
            if state == schema.FINISHED:
                self.overheads.append(max(0.0, time.time() - started - sum(self.seconds[unit][known:])))
        changed = []
        for i in self.units[unit]:
            if self.state[i] in (schema.DIVERGED, schema.FINISHED):
                continue
            new = state
            if state == schema.FINISHED:
                new = schema.trial_status(self.epochs[i] or None, self.configs[i]["epochs"],
                                          bool(self.last[i].get("diverged")), errored=False,
                                          stopped=bool(self.last[i].get("stopped")))
            if new != self.state[i]:
                self.state[i] = new
                changed.append(i)
        return changed

    # -- what it adds up to ----------------------------------------------------------------------
    def counts(self) -> dict:
        return {s: self.state.count(s) for s in STATES}

    def planned(self, i: int) -> int:
        """Config i's epochs: those it ran once it ended (diverged or stopped early), else its
        grid's."""
        return self.epochs[i] if self.state[i] in schema.COMPLETE else self.configs[i]["epochs"]

    def _unit_left(self, u: int) -> int:
        return max((self.configs[i]["epochs"] - self.epochs[i] for i in self.units[u]
                    if self.state[i] in (PENDING, RUNNING)), default=0)

    def eta(self) -> float | None:
        """Seconds until every config still to train is done; None while estimating; 0.0
        when nothing is left."""
        def kind(u, size=True):
            c = self.configs[self.units[u][0]]
            return (c["arch"], len(self.units[u])) if size else c["arch"]

        measured: dict = {}
        for u, secs in enumerate(self.seconds):
            if secs:
                for key in (kind(u), kind(u, False)):
                    measured.setdefault(key, []).append(statistics.median(secs))
        work, longest = 0.0, 0.0
        # Each slot's first trial also starts its worker (TensorFlow's import and more), which
        # reused workers do not: left out once later trials have ended.
        later = self.overheads[self.slots:] or self.overheads
        overhead = statistics.median(later) if later else 0.0
        for u in range(len(self.units)):
            left = self._unit_left(u)
            if not left:
                continue
            start = overhead if all(self.state[i] == PENDING for i in self.units[u]) else 0.0
            if self.seconds[u]:
                per = statistics.median(self.seconds[u])
            elif kind(u) in measured or kind(u, False) in measured:
                per = statistics.fmean(measured.get(kind(u)) or measured[kind(u, False)])
            else:
                return None
            work += left * per + start
            longest = max(longest, left * per + start)
        return max(work / self.slots, longest)

    def best(self) -> dict:
        """Per architecture: (metric, mean, replicates, the config group's label) of the
        config group (configs differing only in seed) with the best mean final metric among
        finished configs."""
        groups: dict = {}
        for i, c in enumerate(self.configs):
            if self.state[i] != schema.FINISHED:
                continue
            metric = schema.headline_metric(self.last[i])
            if self.last[i].get(metric) is None:
                continue
            key = json.dumps({k: v for k, v in c.items() if k != "seed"}, sort_keys=True, default=str)
            groups.setdefault((c["arch"], metric, key), (c, []))[1].append(self.last[i][metric])
        best: dict = {}
        ranks: dict = {}
        for (arch, metric, _), (c, values) in groups.items():
            mean = statistics.fmean(values)
            # As the report ranks: a group of one replicate only when no group has two.
            rank = (len(values) >= 2, mean if metric == "val_accuracy" else -mean)
            if arch not in ranks or rank > ranks[arch]:
                ranks[arch], best[arch] = rank, (metric, mean, len(values), group_label(c))
        return best

    # -- how it reads --------------------------------------------------------------------------
    def line(self, now: float | None = None) -> str:
        """One plain line: configs per state, elapsed, ETA, best mean so far."""
        now = time.time() if now is None else now
        n = self.counts()
        done = n[schema.FINISHED] + n[schema.DIVERGED]
        parts = [f"{done}/{len(self.configs)} configs done"]
        parts += [f"{n[s]} {s}" for s in (RUNNING, PENDING, schema.DIVERGED, schema.ERRORED, schema.UNFINISHED) if n[s]]
        eta = self.eta()
        when = "estimating" if eta is None else duration(eta)
        text = f"[{', '.join(parts)}] elapsed {duration(now - self.started)}, ETA {when}"
        best = self.best()
        if best:
            shown = "; ".join(f"{arch} {lab}, {m} {mean:.4f} ({of_seeds(k)})"
                              for arch, (m, mean, k, lab) in sorted(best.items()))
            text += f" | best so far: {shown}"
        return text

    def config_line(self, i: int, name: str, error_file: str | None = None, note: str = "") -> str:
        """A config's state, epochs and last headline metric, as the summary and the live
        view print it; `note`: what the live view knows of its retries and error."""
        m = self.last[i]
        metric = schema.headline_metric(m)
        shown = f", {metric} {m[metric]:.4f}" if m.get(metric) is not None else ""
        note = f", {note}" if note else ""
        error = f", error in {error_file}" if error_file and self.state[i] == schema.ERRORED else ""
        early = " (stopped early)" if m.get("stopped") else ""
        return (f"  {name}: {self.state[i]}, epochs {self.epochs[i]}/{self.configs[i]['epochs']}{early}"
                f"{shown}{note}{error}")


def failure(error_file: str | None) -> str:
    """A trial's latest failure in a few words, from the error.txt Tune appends each one to
    (a lost worker's or node's message, or a task's traceback whose last line says it)."""
    try:
        with open(error_file or "", errors="replace") as f:
            text = f.read().rsplit("Failure # ", 1)[-1]
    except OSError:
        return "no error file"
    if "node has died" in text or "NodeDiedError" in text:
        return "node lost"
    if "worker process has died" in text or "ActorDiedError" in text or "died unexpectedly" in text:
        return "worker lost"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].endswith(")") and "occurred at" in lines[0]:
        lines = lines[1:]  # Tune's "1 (occurred at ...)" header
    last = lines[-1] if lines else "empty error file"
    return last if len(last) <= 120 else last[:117] + "..."


def group_label(config: dict) -> str:
    """A config group (all seeds) as a person reads it: noise and L2 (and a chosen optimizer
    or activation): its folder name less the architecture and the seed."""
    shown_arch = config["arch"].rsplit(":", 1)[-1]  # a builder by import path is named by its function
    return label(config)[len(shown_arch) + 1:].rsplit("_s", 1)[0]

