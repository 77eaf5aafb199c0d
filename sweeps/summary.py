"""A run's end as a person reads it: the configs that did not finish and why, counts, where
the logs are, the command that continues a stopped run, and the exit status (0 finished, 1
errored, 130 stopped); a search's configs tried and its best. The report, when asked.
"""

from __future__ import annotations

import os

from sweeps import packing, schema, search
from sweeps.options import Options
from sweeps.packing import label
from sweeps.planning import Plan, search_folders
from sweeps.progress import PENDING, Sweep, config_key, failure
from sweeps.slurm_job import submitted_job


def member_states(result) -> list[tuple[str, dict, dict, str]]:
    """(name shown, config, last metrics, status) of each config a Tune trial trained."""
    return [(shown, config, m, schema.trial_status(m.get("epoch"), config["epochs"], bool(m.get("diverged")),
                                                   errored=result.error is not None, stopped=bool(m.get("stopped"))))
            for shown, config, m in packing.trained_configs(result.config, os.path.basename(result.path),
                                                            result.metrics)]


def unfinished(result) -> bool:
    """A Tune trial that neither ended nor failed (never started, or stopped midway)."""
    return not result.config or any(state == schema.UNFINISHED for *_, state in member_states(result))


def resume_line(plan: Plan, opts: Options) -> str:
    """The command that continues a stopped experiment: the runner's, or in a Slurm job (which
    Slurm requeues by itself at its time limit or on preemption) a new job's."""
    again = f"--name {plan.name} --storage-path {opts.storage_path} --resume"
    if submitted_job():
        return (f"resume with: noisesweep slurm {again} [the job's Slurm flags] "
                "(a job that Slurm requeues resumes by itself)")
    return f"resume with: python sweeps/run.py {again}"


def write_report(plan: Plan) -> int:
    """analysis.report on the whole experiment (every step), as --report asks."""
    from analysis import report

    return report.main([plan.exp.path])


def summarize(results, plan: Plan, opts: Options) -> int:
    """Print the configs that did not finish (with -v, every config: the live view printed
    each as it ended) and where the logs are; exit 0 when every config run now finished,
    130 when the sweep was stopped (resumable), 1 when trials errored."""
    trials = plan.trials
    sweep = Sweep(trials, [[i] for i in range(len(trials))], 1)
    print()
    # A trial Tune never started (the sweep was stopped first) has no config or path.
    for r in sorted((r for r in results if r.config), key=lambda r: r.path):
        for shown_name, config, m, state in member_states(r):
            i = sweep.index[config_key(config)]
            sweep.row(i, m)
            sweep.state[i] = state
            if opts.verbose or state not in schema.COMPLETE:
                error = os.path.join(r.path, schema.ERROR_FILE)
                print(sweep.config_line(i, shown_name, error, note=failure(error) if state == schema.ERRORED else ""))
    for i, state in enumerate(sweep.state):
        if state == PENDING:
            sweep.state[i] = schema.UNFINISHED
            print(sweep.config_line(i, label(sweep.configs[i])) + " (not started)")
    count = sweep.counts()
    finished = sum(count[s] for s in schema.COMPLETE)
    print(f"{finished}/{len(trials)} configs finished ({count[schema.DIVERGED]} diverged, "
          f"{count[schema.ERRORED]} errored, {len(trials) - finished - count[schema.ERRORED]} unfinished)")
    print(f"logs: {plan.exp.path}")
    if finished == len(trials):
        return 0
    print(resume_line(plan, opts))
    return 1 if count[schema.ERRORED] else 130


def summarize_search(results, plan: Plan, opts: Options) -> int:
    """A search's end: how many configs it tried and how each ended, and the best one by its
    replicates' mean. Exit 0, 1 when a trial errored, 130 when stopped short of its budget
    (Ctrl-C: configs left in flight, which --resume finishes)."""
    spec = plan.grid.search
    metric = f"mean_{spec['metric']}"
    tried = [r for r in results if r.config]
    errored = [r for r in tried if r.error]
    whole = [r for r in tried if not r.error and (r.metrics or {}).get("epoch", 0) >= r.config["epochs"]]
    cut = set().union(*(search.in_flight(path) for path in search_folders(plan.exp, plan.steps)))
    flying = [r for r in tried if (r.metrics or {}).get("trial_id") in cut and r not in whole]
    by = "ASHA or the time budget" if spec["time_budget_min"] else "ASHA"
    print()
    print(f"{len(tried)} configs tried ({spec['replicates']} replicates each): {len(whole)} trained to their last "
          f"epoch, {len(tried) - len(whole) - len(errored) - len(flying)} stopped before it ({by}), "
          + (f"{len(flying)} in flight when stopped, " if cut else "") + f"{len(errored)} errored")
    scored = [r for r in whole if (r.metrics or {}).get(metric) == (r.metrics or {}).get(metric)]
    if scored:
        pick = max if spec["mode"] == "max" else min
        best = pick(scored, key=lambda r: r.metrics[metric])
        drawn = ", ".join(f"{k}={best.config.get(k)}" for k in spec["space"])
        print(f"best: {drawn}: {metric} {best.metrics[metric]:.4f} on the hold-out "
              f"(its test accuracy: the report)")
    print(f"logs: {plan.exp.path}")
    if errored:
        return 1
    sampled = len(search.tried(search_folders(plan.exp, [*plan.previous, *(s for s in plan.steps if s["fresh"])]),
                               spec))
    if cut or (spec["configs"] and sampled < spec["configs"] and not spec["time_budget_min"]):
        print(resume_line(plan, opts))
        return 130
    return 0
