"""`noisesweep status RUN_DIR`: where an experiment stands, from its files alone.

Reads the runner's record of what it ran (noisesweep.json: every step's configs and
packs, sweeps.growth), every trial folder's rows (analysis.load) and the runner's lock, with no Ray: for
a running, a finished or an interrupted experiment, on this machine or a copy of its
folder. Configs are pending until their trial folder exists; a config that stopped short
of its epochs is running while the runner holds the lock and unfinished once it does not.
"""

from __future__ import annotations

import json
import os
import warnings

from sweeps import growth, schema
from sweeps.lock import describe, holder_is_running, read_holder
from sweeps.progress import PENDING, RUNNING, Sweep, failure, logged_key, of_seeds



class StatusError(ValueError):
    """The folder is not an experiment the runner started."""


def read(exp_path: str) -> tuple[Sweep, dict | None, dict]:
    """(the sweep as its files tell it, the runner's lock if it is still running,
    {config index: (name, error file)} of errored configs)."""
    from analysis.load import LogWarning, iter_trials

    spec_path = os.path.join(exp_path, schema.SPEC_FILE)
    try:
        with open(spec_path) as f:
            spec = json.load(f)
        steps = growth.steps(spec)
    except FileNotFoundError:
        raise StatusError(f"{exp_path}: not an experiment folder (no {schema.SPEC_FILE})") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise StatusError(f"{spec_path}: unreadable ({e})") from None
    # Every step's configs, one list; each step's packs, indices shifted to match.
    trials, units = [], []
    for step in steps:
        units += [[len(trials) + i for i in pack] for pack in step["packs"]]
        trials += step["trials"]
    holder = read_holder(exp_path)
    running = holder if holder and holder_is_running(holder) else None
    keys = set().union(*trials) if trials else set()
    sweep = Sweep(trials, units, slots=1, started=os.path.getmtime(spec_path))
    times: dict = {}
    errors = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogWarning)  # a trial just started has no rows yet
        for _, path, config, epochs, status in iter_trials([exp_path]):
            i = sweep.index.get(logged_key(config, keys))
            if i is None:
                continue
            for epoch, row in sorted(epochs.items()):
                sweep.row(i, {**row, "epoch": epoch})
                if row.get("epoch_time_s") is not None:
                    times.setdefault(sweep.unit_of[i], {})[epoch] = row["epoch_time_s"]
            if status == schema.UNFINISHED:
                status = RUNNING if running else schema.UNFINISHED
            sweep.state[i] = status
            if status == schema.ERRORED:
                # A pack that failed beyond its retries leaves its error beside its members.
                own = os.path.join(path, schema.ERROR_FILE)
                pack = os.path.join(os.path.dirname(path), schema.ERROR_FILE)
                errors[i] = (os.path.relpath(path, exp_path),
                             own if os.path.exists(own) or not os.path.exists(pack) else pack)
    for u, by_epoch in times.items():
        sweep.seconds[u] = list(by_epoch.values())
    # The runner's slots are not in its files: the trials running now stand in for them.
    busy = {sweep.unit_of[i] for i, s in enumerate(sweep.state) if s == RUNNING}
    sweep.slots = max(1, len(busy))
    return sweep, running, errors


def report_search(exp_path: str, spec: dict, out=print) -> None:
    """The status lines of a search (sweeps.search): configs tried and how they ended, the
    best replicates' mean so far."""
    from analysis import search
    from analysis.load import LogWarning, load_experiment

    holder = read_holder(exp_path)
    running = holder if holder and holder_is_running(holder) else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LogWarning)
        df = load_experiment(exp_path)
    table = search.configs(df, spec) if not df.empty else None
    tried = 0 if table is None else len(table)
    whole = 0 if table is None else int(table["complete"].sum())
    budget = f" of {spec['configs']}" if spec["configs"] else ""
    state = (f"running ({describe(running)})" if running else
             "finished" if spec["configs"] and tried >= spec["configs"] else "stopped (resume with --resume)")
    out(f"{os.path.basename(os.path.normpath(exp_path))}: {state}")
    for line in slurm_lines(exp_path):
        out(line)
    out(f"search: {tried}{budget} configs tried ({spec['replicates']} replicates each): {whole} trained to "
        f"their last epoch, {tried - whole} {'running or ' if running else ''}stopped before it")
    best = search.chosen(table, spec) if table is not None else None
    if best is not None:
        drawn = ", ".join(f"{k}={best[k]:.4g}" if isinstance(best[k], float) else f"{k}={best[k]}"
                          for k in spec["space"] if k in best)
        out(f"best mean {spec['metric']} (hold-out): {best[spec['metric'] + '_mean']:.4f} ({drawn})")


def report(exp_path: str, out=print) -> None:
    """The status lines of one experiment."""
    from analysis.search import spec_of

    spec = spec_of([exp_path])
    if spec:
        return report_search(exp_path, spec, out)
    sweep, running, errors = read(exp_path)
    n = sweep.counts()
    planned = sum(sweep.planned(i) for i in range(len(sweep.configs)))
    done = sum(min(e, c["epochs"]) for e, c in zip(sweep.epochs, sweep.configs))
    state = (f"running ({describe(running)})" if running else
             "finished" if n[PENDING] + n[RUNNING] + n[schema.UNFINISHED] + n[schema.ERRORED] == 0 else
             "stopped (resume with --resume)")
    out(f"{os.path.basename(os.path.normpath(exp_path))}: {state}")
    for line in slurm_lines(exp_path):
        out(line)
    out("configs: " + ", ".join(f"{n[s]} {s}" for s in (schema.FINISHED, RUNNING, PENDING, schema.DIVERGED,
                                                        schema.ERRORED, schema.UNFINISHED))
        + f" (of {len(sweep.configs)})")
    out(f"epochs: {done}/{planned} done")
    if running:
        out(sweep.line())
    else:
        best = sweep.best()
        for arch, (metric, mean, k, group) in sorted(best.items()):
            out(f"best {metric}: {arch} {group}, {mean:.4f} ({of_seeds(k)})")
    for i, (name, error_file) in sorted(errors.items()):
        out(f"errored: {name}: {failure(error_file)} ({error_file})")


def slurm_lines(exp_path: str) -> list[str]:
    """The Slurm jobs the experiment ran in (sweeps.slurm), as noisesweep.json records them."""
    try:
        with open(os.path.join(exp_path, schema.SPEC_FILE)) as f:
            jobs = json.load(f).get("slurm_jobs", [])
    except (OSError, ValueError, AttributeError):
        return []
    lines = []
    for job in jobs:
        runs = f", requeued {job['restart']}x" if job.get("restart") else ""
        lines.append(f"slurm job {job.get('job_id')}{runs}: last started {job.get('started')} on "
                     f"{job.get('nodes') or '?'}; script {job.get('script') or '?'}")
    return lines
