"""`noisesweep evaluate RUN_DIR`: score a finished experiment's configs under new test-time
conditions, without training.

Each Tune trial's last checkpoint (a pack's members' weights as they ended) is loaded into
the pack engine in this process, and its members are scored on the conditions of a grid's
`evaluate:` section (`--grid FILE`) or a named suite (`--suite mnist_c`), as a sweep scores
them after training (sweeps.training.pack.Pack.score_conditions). The scores go into a new
file in each config's folder, `robustness/evaluate-N.csv` (the next N free): nothing the
experiment holds is rewritten. A config whose run has not finished, or whose checkpoint is
gone, is named in one line and left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from types import SimpleNamespace

from sweeps import conditions, schema

EVALUATE_PREFIX = "evaluate-"


class EvaluateError(ValueError):
    """Bad input: one line naming the file or flag, and the value."""


def tune_trials(experiment: str) -> list[str]:
    """The experiment's Tune trial folders (a pack's, not its members'), its growth steps' too."""
    out = []
    for name in sorted(os.listdir(experiment)):
        path = os.path.join(experiment, name)
        if os.path.isfile(os.path.join(path, "params.json")):
            out.append(path)
        elif os.path.isdir(path) and schema.is_growth_folder(name):
            out.extend(tune_trials(path))
    return out


def last_checkpoint(trial: str) -> str | None:
    """The trial's newest checkpoint folder (Tune's checkpoint_NNNNNN), None where none is left."""
    found = sorted(n for n in os.listdir(trial) if n.startswith("checkpoint_") and n[11:].isdigit()
                   and os.path.isdir(os.path.join(trial, n)))
    return os.path.join(trial, found[-1]) if found else None


def section_from(grid: str | None, suite: str | None) -> dict:
    """The conditions to score on: a grid file's `evaluate:` (top level or its defaults) or a suite."""
    if (grid is None) == (suite is None):
        raise EvaluateError("give one of --grid FILE (its evaluate: section) or --suite NAME")
    if suite is not None:
        from sweeps.corruptions import SUITES

        if suite not in SUITES:
            raise EvaluateError(f"--suite {suite!r}: no such suite; known: {', '.join(SUITES)}")
        where, section = "--suite", {"suites": [suite]}
    else:
        from sweeps import grid_file

        try:
            doc = grid_file.read(grid)
        except grid_file.Unreadable as e:
            raise EvaluateError(str(e)) from None
        section = doc.get("evaluate") if isinstance(doc, dict) else None
        if section is None and isinstance(doc, dict) and isinstance(doc.get("defaults"), dict):
            section = doc["defaults"].get("evaluate")
        where = f"{grid}: evaluate"
        if section is None:
            raise EvaluateError(f"{grid}: no evaluate: section (at the top level or in defaults)")
    try:
        return conditions.check(section)
    except conditions.ConditionError as e:
        key = "" if e.key == "evaluate" else f".{e.key}"
        raise EvaluateError(f"{where}{key} = {e.value!r}: {e.why}") from None


def next_scores_file(folder: str) -> str:
    """`evaluate-N.csv`, N one more than the highest there (1 for the first)."""
    held = os.path.join(folder, schema.ROBUSTNESS_FOLDER)
    taken = [int(n[len(EVALUATE_PREFIX):-4]) for n in (os.listdir(held) if os.path.isdir(held) else [])
             if n.startswith(EVALUATE_PREFIX) and n.endswith(".csv") and n[len(EVALUATE_PREFIX):-4].isdigit()]
    return f"{EVALUATE_PREFIX}{max(taken, default=0) + 1}.csv"


def evaluate(experiment: str, section: dict, data_dir: str | None = None, cache_dir: str | None = None,
             log=print) -> dict:
    """Score every finished config of `experiment` under `section` (conditions.check's form);
    returns counts: scored, unfinished, without weights."""
    from sweeps.packing import member_dirnames, members_of
    from sweeps.storage import Storage
    from sweeps.training.pack import Pack
    from sweeps.training.reporting import listed_folders, robustness_csv

    if not os.path.isdir(experiment):
        raise EvaluateError(f"{experiment}: no such experiment folder")
    trials = tune_trials(experiment)
    if not trials:
        raise EvaluateError(f"{experiment}: holds no trials")
    text = json.dumps(section, sort_keys=True, separators=(",", ":"))
    planned = []
    for trial in trials:
        with open(os.path.join(trial, "params.json"), encoding="utf-8") as f:
            config = schema.upgrade_config(json.load(f))
        members = [{**m, "evaluate": text, "evaluate_every": None} for m in (members_of(config) or [config])]
        planned.append((trial, members))
    datasets, scoring = _data(planned, section, experiment, data_dir, cache_dir, log)
    counts = {"scored": 0, "unfinished": 0, "no weights": 0}
    for n, (trial, members) in enumerate(planned, 1):
        name = os.path.relpath(trial, experiment)
        checkpoint = last_checkpoint(trial)
        if checkpoint is None:
            log(f"  {name}: no checkpoint left (its weights are gone): not scored")
            counts["no weights"] += len(members)
            continue
        pack = Pack(members, datasets[members[0]["dataset"]], validate=False,
                    scoring=scoring.get(members[0]["dataset"]))
        pack.restore(checkpoint)
        if not pack.done:
            log(f"  {name}: not finished ({pack.ledger.epochs_done}/{pack.ledger.epochs} epochs): not scored")
            counts["unfinished"] += len(members)
            continue
        due = [i for i in range(pack.k) if not pack.ledger.diverged[i]]
        try:
            names = listed_folders(Storage(trial), members, member_dirnames(members))
        except ValueError as e:  # a member list naming paths elsewhere: never followed
            raise EvaluateError(str(e)) from None
        for i, rows in zip(due, pack.score_conditions(due)):
            folder = trial if pack.k == 1 else os.path.join(trial, names[i])
            Storage(folder).write_bytes(robustness_csv(rows), schema.ROBUSTNESS_FOLDER, next_scores_file(folder))
        counts["scored"] += len(due)
        log(f"  [{n}/{len(planned)}] {name}: {len(due)} configs scored on {len(pack.spec.conditions)} conditions")
    return counts


def _data(planned, section, where, data_dir, cache_dir, log):
    from sweeps.options import UsageError
    from sweeps.storage import Storage
    from sweeps.preflight import load_datasets, scoring_images

    opts = SimpleNamespace(data_dir=data_dir, cache_dir=cache_dir)  # what load_datasets reads of the runner's
    configs = [m for _, members in planned for m in members]
    try:
        datasets = load_datasets(configs, opts, where)
        return datasets, scoring_images(configs, datasets, where, log=log, store=Storage(where))
    except UsageError as e:
        raise EvaluateError(str(e)) from None


def main(argv=None, prog: str = "noisesweep evaluate") -> int:
    p = argparse.ArgumentParser(prog=prog, description="Score a finished experiment's configs under test-time "
                                "conditions (a grid's evaluate: section, or a named suite) without training; the "
                                "scores go to a new robustness/evaluate-N.csv in each config's folder.")
    p.add_argument("run", metavar="RUN_DIR", help="the experiment's folder (runs/NAME)")
    p.add_argument("--grid", metavar="FILE", help="a grid file whose evaluate: section names the conditions")
    p.add_argument("--suite", metavar="NAME", help="a named suite of corruptions (mnist_c, cifar10_c, cifar10_c_extra)")
    p.add_argument("--data-dir", help="where datasets of one's own or offline copies are (as the runner's)")
    p.add_argument("--cache-dir", help="the download cache (as the runner's)")
    args = p.parse_args(argv)
    try:
        section = section_from(args.grid, args.suite)
        counts = evaluate(args.run.rstrip("/"), section, args.data_dir, args.cache_dir)
    except EvaluateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"evaluate: {counts['scored']} configs scored; {counts['unfinished']} not finished, "
          f"{counts['no weights']} without weights (not scored)")
    return 0
