"""A grid's `search` section: a replicate-aware search over ranges of its axes.

Each sampled config trains as `replicates` seeds (0 .. R-1) in one pack
(sweeps.training.pack); the searcher (Optuna's TPE through Ray Tune's OptunaSearch) and
the early-stopping scheduler (Tune's ASHA) see the mean of the replicates' `metric`,
reported by the pack as `mean_<metric>` every epoch. Selection is on a hold-out of the
training images (`validation: holdout`), so the test split, scored once at each
member's end, stays apart from what chose the config.

    search:
      metric: val_accuracy        # on the hold-out; mode from it (accuracy up, loss down)
      replicates: 3
      configs: 24                 # the budget in sampled configs ...
      time_budget_min: 170        # ... and/or in minutes
      grace_epochs: 10            # ASHA: epochs every config trains before it may be stopped
      space:                      # axis: [distribution, ...]
        l2: [loguniform, 1.0e-6, 1.0e-3]
        momentum: [uniform, 0.0, 0.95]
        lr_schedule: [choice, null, cosine]

The grid's other axes take one value each: they are the base every sample starts from.
Only the parsing and checks are here at import; Ray's modules load when a search starts.

A finished search grows by its budget alone (`--resume --grid` with more `configs` or a
new `time_budget_min`): a new step (sweeps.growth's `grow-k/`) samples the configs still
owed, its Optuna study told every earlier config and its replicates' mean first
(`evaluated_rewards`), so TPE goes on from what the search has learnt. ASHA's rungs start
afresh in the new step, and a time budget is each step's own.
"""

from __future__ import annotations

import math

from sweeps.schema import REPLICATES_KEY, maximized
from sweeps.storage import Storage, StorageError

SECTION = "search"
KEYS = ("metric", "mode", "replicates", "configs", "time_budget_min", "grace_epochs", "seed", "space")
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
# What a search may not vary: the replicates are its seeds; a pack shares its task and data.
FIXED = ("seed", "arch", "dataset", "validation", "holdout_size", "train_subset", "test_subset")


class SearchError(ValueError):
    """A search section that cannot run (sweeps.grids adds the file)."""


def parse(section, base: dict) -> dict:
    """The `search` mapping of a grid -> its spec (JSON-able), every value checked.

    `base` is the grid's one expanded config (the values a sample does not draw).
    Distribution bounds and choices are checked as grid values of their axis by the caller
    (`values`); here, the section's own shape."""
    if not isinstance(section, dict):
        raise SearchError(f"search = {section!r}: must be a mapping of {', '.join(KEYS)}")
    unknown = [k for k in section if k not in KEYS]
    if unknown:
        raise SearchError(f"search.{unknown[0]}: unknown key; known: {', '.join(KEYS)}")
    metric = section.get("metric", "val_accuracy")
    if not isinstance(metric, str) or not metric.startswith("val_"):
        raise SearchError(f"search.metric = {metric!r}: must be a validation metric (val_accuracy, val_loss, ...): "
                          "the search selects on the hold-out")
    mode = section.get("mode", "max" if maximized(metric) else "min")
    if mode not in ("max", "min"):
        raise SearchError(f"search.mode = {mode!r}: must be max or min")
    spec = {"metric": metric, "mode": mode}
    # Two replicates at least: the search ranks configs by their replicates' mean.
    # At most: a pack of 1,000 replicates, the grid's most configs, a seed numpy takes.
    for key, default, least, most in (("replicates", 3, 2, 1000), ("configs", None, 1, 100_000),
                                      ("grace_epochs", 1, 1, 100_000), ("seed", 0, 0, 2**32 - 1)):
        value = section.get(key, default)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most):
            raise SearchError(f"search.{key} = {value!r}: must be an integer in [{least}, {most:,}]")
        spec[key] = value
    budget = section.get("time_budget_min")
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, (int, float)) or budget <= 0
                               or not math.isfinite(budget)):
        raise SearchError(f"search.time_budget_min = {budget!r}: must be a number of minutes > 0")
    spec["time_budget_min"] = budget
    if spec["configs"] is None and budget is None:
        raise SearchError("search: give a budget: configs (how many to sample) and/or time_budget_min")
    if base["validation"] != "holdout":
        raise SearchError("search: needs validation: holdout (it selects on a hold-out of the training images "
                          "and reports the chosen config's test accuracy apart)")
    space = section.get("space")
    if not isinstance(space, dict) or not space:
        raise SearchError(f"search.space = {space!r}: must map axes to [distribution, ...]")
    spec["space"] = {}
    for key, value in space.items():
        where = f"search.space.{key}"
        if key in FIXED:
            raise SearchError(f"{where}: not searched (a search keeps {', '.join(FIXED)} fixed; its replicates "
                              "are the seeds)")
        if not isinstance(value, list) or not value or value[0] not in DISTRIBUTIONS:
            raise SearchError(f"{where} = {value!r}: must be [distribution, ...] with a distribution among "
                              f"{', '.join(DISTRIBUTIONS)}")
        kind, args = value[0], value[1:]
        if kind == "choice":
            if not args:
                raise SearchError(f"{where} = {value!r}: choice needs at least one value")
        else:
            if len(args) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args) \
                    or not args[0] < args[1]:
                raise SearchError(f"{where} = {value!r}: {kind} needs two numbers, low < high")
            if kind == "loguniform" and args[0] <= 0:
                raise SearchError(f"{where} = {value!r}: loguniform needs low > 0")
            if kind == "randint" and not all(isinstance(a, int) for a in args):
                raise SearchError(f"{where} = {value!r}: randint needs two integers (high excluded)")
        spec["space"][key] = [kind, *args]
    return spec


def values(spec: dict) -> dict:
    """{axis: the values to check it takes}: each choice, and each range's ends
    (randint's high is excluded, so its last value)."""
    out = {}
    for key, (kind, *args) in spec["space"].items():
        out[key] = list(args) if kind == "choice" else [args[0], args[1] - 1 if kind == "randint" else args[1]]
    return out


def max_epochs(base: dict, spec: dict) -> int:
    drawn = spec["space"].get("epochs")
    return int(max(values(spec)["epochs"])) if drawn else base["epochs"]


def describe(spec: dict) -> str:
    """One line: the budget, the replicates, the metric and the space."""
    budget = " and ".join(b for b in (f"{spec['configs']} configs" if spec["configs"] else "",
                                      f"{spec['time_budget_min']:g} min" if spec["time_budget_min"] else "") if b)
    space = ", ".join(f"{k} {kind}{tuple(args)}" for k, (kind, *args) in spec["space"].items())
    return (f"search of {budget}, {spec['replicates']} replicates each, {spec['mode']} mean {spec['metric']} "
            f"(Optuna TPE, ASHA after {spec['grace_epochs']} epochs): {space}")


def param_space(base: dict, spec: dict) -> dict:
    """The Tune config space: the base config, the space's axes as Tune distributions, and
    the replicates each sample trains as."""
    from ray import tune

    make = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
    space = {k: tune.choice(args) if kind == "choice" else make[kind](*args)
             for k, (kind, *args) in spec["space"].items()}
    return {**base, **space, REPLICATES_KEY: spec["replicates"]}


GROWABLE = ("configs", "time_budget_min")  # what a search may change when it grows


def growth_change(old: dict, new: dict) -> list[str]:
    """The keys of `new` (a grid's search spec) that differ from `old` (the experiment's)
    and that no growth may change; empty when `new` only asks for a larger budget."""
    return [k for k in sorted(set(old) | set(new)) if k not in GROWABLE and old.get(k) != new.get(k)]


def saved_trials(folder: str) -> list:
    """The trials (ray.tune.experiment.Trial) of a Tune experiment's saved state; none for a
    step stopped before Tune saved any. A saved state that cannot be read is StorageError:
    taken for none, a grown search's budget and its exit status would come out wrong."""
    from ray.tune import ExperimentAnalysis

    try:
        return ExperimentAnalysis(folder).trials
    except (ValueError, OSError) as e:
        if not any(name.startswith("experiment_state") for name in Storage(folder).names()):
            return []
        raise StorageError(f"{folder}: Tune's saved state of the search could not be read ({e})") from None


def in_flight(folder: str) -> set[str]:
    """The ids of a search step's trials that Ctrl-C (or a lost driver) left in flight
    (started or only sampled).

    In memory every trial reads TERMINATED once Tune has cleaned up, whether ASHA stopped
    it, the time budget ran out or the run was interrupted. The experiment state on disk
    tells them apart: Tune saves it before it stops in-flight trials on an interrupt (so
    --resume restarts them), and after it marks them ended on ASHA's or the budget's stop."""
    return {t.trial_id for t in saved_trials(folder) if t.status not in ("TERMINATED", "ERROR")}


def tried(folders: list[str], spec: dict) -> list[tuple[dict, float | None]]:
    """(drawn values, the replicates' last mean of the metric or None if it errored or
    never reported) of every config the searches in `folders` (Tune experiments) sampled."""
    metric = f"mean_{spec['metric']}"
    out = []
    for folder in folders:
        for trial in saved_trials(folder):
            value = (trial.last_result or {}).get(metric)
            ok = trial.status != "ERROR" and value is not None and value == value
            out.append(({k: trial.config[k] for k in spec["space"]}, float(value) if ok else None))
    return out


def tune_config(spec: dict, base: dict, max_concurrent: int | None, before: list | None = None, **kw):
    """TuneConfig for the search: Optuna's TPE (seeded) and ASHA on the replicates' mean.
    `before`: sweeps.search.tried of the steps this one grows (their scored configs warm
    Optuna's study; the budget left is the configs not yet sampled)."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from sweeps.quiet import verbose

    if not verbose():
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory"
    metric = f"mean_{spec['metric']}"
    before = before or []
    scored = [(point, value) for point, value in before if value is not None]
    # A grown step's sampler is seeded past the configs before it: with the search's own
    # seed, TPE's random start-up would draw the first step's first configs again.
    searcher = OptunaSearch(seed=spec["seed"] + len(before), points_to_evaluate=[p for p, _ in scored] or None,
                            evaluated_rewards=[v for _, v in scored] or None)
    if max_concurrent:
        searcher = ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)
    longest = max_epochs(base, spec)
    scheduler = ASHAScheduler(time_attr="epoch", max_t=longest, grace_period=min(spec["grace_epochs"], longest))
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, metric=metric, mode=spec["mode"],
                           num_samples=spec["configs"] - len(before) if spec["configs"] else -1,
                           time_budget_s=spec["time_budget_min"] * 60 if spec["time_budget_min"] else None, **kw)


def replicate_members(config: dict) -> list[dict] | None:
    """A sampled config's pack: one member per replicate seed; None if it is not a sample."""
    r = config.get(REPLICATES_KEY)
    if not r:
        return None
    rest = {k: v for k, v in config.items() if k != REPLICATES_KEY}
    return [{**rest, "seed": s} for s in range(r)]
