"""What a run would do, printed without starting it (--dry-run), and what a grid given to
--resume means for the experiment: the table of configs and their packs, each model's
parameter count, the growth of an experiment, the reference classifiers it needs.
"""

from __future__ import annotations

from models import options_of
from sweeps import search, tasks
from sweeps.grids import AXES, trial_config
from sweeps.packing import label
from sweeps.planning import Plan
from sweeps.progress import config_key

# Columns of the dry-run table, in reading order; each task names its own (TABLE).
TABLE_COLUMNS = tuple(dict.fromkeys((
    "dataset", "arch", "activation", "noise_type", "noise_scale", "noise_target", "l2", "optimizer", "lr", "momentum", "nesterov",
    "lr_schedule", "batch_size", "epochs", "patience", *(k for t in tasks.all_tasks().values() for k in t.TABLE), "seed")))


def table_columns(trials: list[dict]) -> list[str]:
    """The dry-run table's columns for these configs: TABLE_COLUMNS, with the options of
    their builders after `arch`, less any column no config gives a value; then, before
    `seed`, every other key some config sets apart from its architecture's default (noise_clip,
    standardize, a tiny variant's subsets...): whatever changes a run is shown."""
    options = list(dict.fromkeys(o for t in trials for o in options_of(t["arch"]) if o not in TABLE_COLUMNS))
    at = TABLE_COLUMNS.index("arch") + 1
    columns = [*TABLE_COLUMNS[:at], *options, *TABLE_COLUMNS[at:]]
    columns = [c for c in columns if any(t.get(c) is not None for t in trials)]
    own = {arch: trial_config({"arch": arch}, {}) for arch in {t["arch"] for t in trials}}
    set_apart = [k for k in AXES if k not in columns and k != "evaluate"  # its own lines (print_scoring)
                 and any(t.get(k) != own[t["arch"]].get(k) for t in trials)]
    at = columns.index("seed") if "seed" in columns else len(columns)
    return [*columns[:at], *set_apart, *columns[at:]]


def print_table(trials: list[dict], packs: list[list[int]]) -> None:
    """One row per config; a `pack` column numbers the packs trained together ("-": alone),
    `start` says when its Tune trial starts (1: first; --order)."""
    # A column no trial gives a value (a base key left at null, such as activation) is left out.
    columns = table_columns(trials)
    together = [p for p in packs if len(p) > 1]
    pack_of = {i: str(n) for n, pack in enumerate(together) for i in pack}
    start = {i: str(n + 1) for n, pack in enumerate(packs) for i in pack}  # the Tune trial's place in line

    def shown(t, c):
        v = t.get(c, "")
        return f"{v:g}" if isinstance(v, float) else "" if v is None else str(v)

    rows = [[str(i)] + [shown(t, c) for c in columns] + ([pack_of.get(i, "-")] if together else []) + [start[i]]
            for i, t in enumerate(trials)]
    header = ["#", *columns] + (["pack"] if together else []) + ["start"]
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    if together:
        print(f"{len(packs)} Tune trials: {len(together)} packs of configs trained together "
              f"(sizes {', '.join(str(len(p)) for p in together)}), {len(packs) - len(together)} alone")


def print_scoring(trials: list[dict]) -> None:
    """What the configs are scored on after training (their `evaluate:`), each distinct
    section once: its conditions by kind and how many test images they make."""
    from sweeps import conditions

    sections = {}
    for t in trials:
        if t.get("evaluate"):
            sections.setdefault(t["evaluate"], []).append(t)
    for text, configs in sections.items():
        section = conditions.section_of(configs[0])
        found = conditions.conditions(section)
        n = configs[0]["test_subset"]
        groups: dict = {}
        for c in found:
            groups.setdefault(c.suite or c.name, []).append(c)
        parts = [f"{k} ({len(cs)})" if cs[0].suite else k if len(cs) == 1 and cs[0] == conditions.CLEAN
                 else f"{k} {' '.join(f'{c.severity:g}' for c in cs)}" for k, cs in groups.items()]
        size = f"{len(found) * n:,} test images" if n else f"{len(found)} x the test split"
        every = f", and every {configs[0]['evaluate_every']} epochs" if configs[0].get("evaluate_every") else ""
        print(f"scoring: {len(configs)} configs after training{every}, on {len(found)} conditions, {size}: "
              f"{', '.join(parts)}; evaluation seed {section['seed']}")


def print_growth(plan: Plan, every: bool) -> None:
    """What a grid given to --resume means for the experiment: counts, the configs it no
    longer names, and (with `every`, for --dry-run) each config by what happens to it."""
    g = plan.growth
    print(f"{plan.name}: {len(g.done)} configs finished (skipped), {len(g.continued)} not finished (continued), "
          f"{len(g.new)} new (to run)")
    if g.rescored:
        print(f"  {len(g.rescored)} of the new configs are the experiment's but for their evaluate: section, and "
              f"train again; to score trained ones on it without training: noisesweep evaluate {plan.exp.path} "
              f"--grid {plan.grid.path}")
    where = {config_key(c): s["folder"] or "first step" for s in plan.previous for c in s["trials"]}
    shown = [("not in this grid (kept)", g.not_in_grid)]
    if every:
        shown = [("new", g.new), ("continued", g.continued), ("skipped", g.done), *shown]
    for word, configs in shown:
        for c in configs:
            step = f" ({where[config_key(c)]})" if config_key(c) in where else ""
            print(f"  {word}: {label(c)}{step}")


def print_plan(plan: Plan) -> None:
    """--dry-run: the new step's configs, packs and models, or a search's base config."""
    from sweeps.reference import needed

    grid = plan.grid
    if grid.search:
        print_table(grid.trials, [[0]])
        print(f"{search.describe(grid.search)}; the base config above, seeds 0-{grid.search['replicates'] - 1}")
        return
    fresh = next((s for s in plan.steps if s["fresh"]), None)
    if fresh:
        from sweeps.model_check import parameter_counts

        print_table(fresh["trials"], fresh["packs"])
        print("models:")  # each built once, here, for its parameter count
        print("\n".join(parameter_counts(fresh["trials"])))
    print(f"{len(fresh['trials']) if fresh else 0} {'new ' if plan.growth else ''}configs")
    print_scoring(fresh["trials"] if fresh else [])
    keys = sorted(needed(plan.trials))
    if keys:
        print(f"{len(keys)} reference classifiers, trained once each before the configs: {', '.join(keys)}")
