"""An experiment that grows: the grids it has run (its steps), and for a grid given to
`--resume`, which configs are done, which to continue and which are new.

Ray Tune cannot add trials to an experiment it has run (Tuner.restore refuses a changed
search space), so each growth is a Tune experiment of its own inside the experiment's
folder: the first at its top, as every experiment starts, the k-th in `grow-k/`. The
record (noisesweep.json) lists every step with its configs and packs. A config is known by
its content (sweeps.progress.config_key), never by its place in a grid: a config finished
in any step is never trained again. analysis.load reads the step folders as part of the
experiment. No Ray, no TensorFlow here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

from sweeps import schema
from sweeps.progress import config_key, logged_key

STEP_PREFIX = schema.GROWTH_PREFIX


def steps(spec: dict) -> list[dict]:
    """The steps an experiment's record lists: {folder ("" for the top), grid, grid_path,
    overrides, trials, packs}. A record from before growth is one step at the top (its
    configs alone if it also predates packs)."""
    if "steps" in spec:
        out = [dict(s) for s in spec["steps"]]
        if not out:
            raise KeyError("steps")  # a record lists at least the step that made it
    else:
        trials = spec["trials"]
        out = [{"folder": "", "grid": spec["grid"], "grid_path": spec["grid_path"],
                "overrides": spec.get("overrides", {}), "trials": trials,
                "packs": spec.get("packs") or [[i] for i in range(len(trials))]}]
    for i, s in enumerate(out):
        if s["folder"] != "" and not schema.is_growth_folder(s["folder"]):  # it becomes a path
            raise ValueError(f"steps[{i}].folder = {s['folder']!r}: not a step's folder (grow-2, grow-3, ...)")
        # An experiment started before trials named their task reads as one that did.
        s["trials"] = [schema.upgrade_config(t) for t in s["trials"]]
    return out


def record(previous: list[dict], step: dict) -> dict:
    """The experiment's record with `step` added."""
    return {"steps": [*previous, step]}


def next_folder(previous: list[dict]) -> str:
    return "" if not previous else f"{STEP_PREFIX}{len(previous) + 1}"


def logged_states(exp_path: str, configs: list[dict]) -> dict[str, str]:
    """config_key -> status (sweeps.schema.STATUSES) of each of `configs` that has a trial
    folder in the experiment (any step), read from its logs."""
    from analysis.load import LogWarning, iter_trials

    keys = set().union(*configs) if configs else set()
    wanted = {config_key(c) for c in configs}
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogWarning)  # a trial just started has no rows yet
        for _, _, config, _, status in iter_trials([exp_path]):
            key = logged_key(config, keys)
            if key in wanted:
                out[key] = status
    return out


@dataclass
class Growth:
    """What a grid given to `--resume` means for an experiment."""

    done: list[dict] = field(default_factory=list)  # finished or diverged: skipped
    to_continue: dict[str, list[dict]] = field(default_factory=dict)  # step folder -> its unfinished configs
    new: list[dict] = field(default_factory=list)  # in no step: a new step runs them
    not_in_grid: list[dict] = field(default_factory=list)  # the experiment's, kept, not named now
    # New configs that are one of the experiment's but for what they are scored on (their
    # `evaluate:`): they train again; `noisesweep evaluate` would score the old ones instead.
    rescored: list[dict] = field(default_factory=list)

    @property
    def continued(self) -> list[dict]:
        return [c for configs in self.to_continue.values() for c in configs]


def plan(previous: list[dict], states: dict[str, str], wanted: list[dict]) -> Growth:
    """Sort `wanted` (a grid's configs) by what the experiment's steps and logs say of each."""
    step_of = {config_key(t): s["folder"] for s in previous for t in s["trials"]}
    growth = Growth()
    for config in wanted:
        key = config_key(config)
        if key not in step_of:
            growth.new.append(config)
        elif states.get(key) in schema.COMPLETE:
            growth.done.append(config)
        else:  # unfinished, errored, or never started: its step goes on
            growth.to_continue.setdefault(step_of[key], []).append(config)
    named = {config_key(c) for c in wanted}
    growth.not_in_grid = [t for s in previous for t in s["trials"] if config_key(t) not in named]
    trained = {config_key(_unscored(t)) for s in previous for t in s["trials"]}
    growth.rescored = [c for c in growth.new if config_key(_unscored(c)) in trained]
    return growth


def _unscored(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in ("evaluate", "evaluate_every")}
