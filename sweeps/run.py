"""Run a declared grid as Ray Tune trials: `python sweeps/run.py --grid NAME|PATH[:tiny]`.

Everything that can be wrong with the input (grid, flags, experiment folder,
data) is found before Ray starts: one `error:` line and exit status 2, no
trial started, nothing on disk changed.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time

if __package__ in (None, ""):
    # Run as a script: put the repository root, not sweeps/, first on the path.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sweeps import packing, schema  # noqa: E402
from sweeps.grids import TABLE_COLUMNS, Grid, GridError, load_grid  # noqa: E402
from sweeps.lock import LockError, describe, holder_is_running  # noqa: E402
from sweeps.reference import ensure_references, needed  # noqa: E402
from sweeps.storage import Storage  # noqa: E402

SPEC_FILE = "noisesweep.json"  # what the experiment was started with, for --resume
# Checkpoints (two kept per trial) and logs: a disk with less free space fails mid-sweep.
MIN_FREE_BYTES = 64 * 2**20


class UsageError(Exception):
    """Bad input found before anything started: printed as one line, exit 2."""


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python sweeps/run.py",
        description="Run a noise/L2 grid as Ray Tune trials and keep per-epoch logs.",
    )
    p.add_argument("--grid", default=None, help="named grid (sweeps/grids/NAME.yaml) or a YAML path, "
                   "optionally with :tiny for its quick variant (default: smoke)")
    p.add_argument("--name", default=None, help="experiment name (default: GRID-YYYYmmdd-HHMMSS)")
    p.add_argument("--storage-path", default="./runs", help="where experiments are written (default ./runs)")
    p.add_argument("--resume", action="store_true", help="continue the experiment --name; finished trials are not rerun")
    p.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto) instead of a local one")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each trial reserves (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs each trial reserves; fractions share a GPU")
    p.add_argument("--max-concurrent", type=int, default=None, help="most trials at once (default: as resources allow)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial from its checkpoint (default 2)")
    p.add_argument("--pack", default="auto", help="configs trained at once as one vectorised model: auto "
                   "(measured per architecture and device), K (at most K members a pack) or 1 (each alone)")
    p.add_argument("--epochs", type=int, default=None, help="override every trial's epochs, for a quick look")
    p.add_argument("--cache-dir", default=None, help="dataset cache (default $NOISESWEEP_CACHE_DIR or ~/.keras/datasets)")
    p.add_argument("--data-dir", default=None, help="a folder with the dataset's four IDX files")
    p.add_argument("--dry-run", action="store_true", help="print the trial table and count; start nothing")
    p.add_argument("--report", action="store_true", help="write tables and figures (analysis.report) at the end")
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> None:
    if args.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial {args.cpus_per_trial}: must be > 0")
    if args.gpus_per_trial < 0 or (args.gpus_per_trial > 1 and args.gpus_per_trial != int(args.gpus_per_trial)):
        raise UsageError(f"--gpus-per-trial {args.gpus_per_trial}: must be a fraction in [0, 1] or a whole number")
    for flag in ("max_concurrent", "num_cpus"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} {value}: must be >= 1")
    if args.max_failures < 0:
        raise UsageError(f"--max-failures {args.max_failures}: must be >= 0")
    if args.name is not None and (not args.name or "/" in args.name or args.name in (".", "..")):
        raise UsageError(f"--name {args.name!r}: must be a plain folder name")
    if args.resume and not args.name:
        raise UsageError("--resume needs --name: the experiment to continue")
    try:
        args.pack_size = packing.parse(args.pack)
    except packing.PackingError as e:
        raise UsageError(str(e)) from None
    if args.data_dir and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")


def print_table(grid: Grid, packs: list[list[int]]) -> None:
    """One row per config; a `pack` column numbers the packs trained together ("-": alone)."""
    columns = [c for c in TABLE_COLUMNS if any(c in t for t in grid.trials)]
    together = [p for p in packs if len(p) > 1]
    pack_of = {i: str(n) for n, pack in enumerate(together) for i in pack}

    def shown(t, c):
        v = t.get(c, "")
        return f"{v:g}" if isinstance(v, float) else "" if v is None else str(v)

    rows = [[str(i)] + [shown(t, c) for c in columns] + ([pack_of.get(i, "-")] if together else [])
            for i, t in enumerate(grid.trials)]
    header = ["#", *columns] + (["pack"] if together else [])
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))
    if together:
        print(f"{len(packs)} Tune trials: {len(together)} packs of configs trained together "
              f"(sizes {', '.join(str(len(p)) for p in together)}), {len(packs) - len(together)} alone")


def plan_packs(grid: Grid, args: argparse.Namespace, started: dict | None = None,
               cpus: float | None = None) -> list[list[int]]:
    """The experiment's packs: those it started with when resuming, else packing.plan's
    for --pack on `cpus` (the cluster's; before Ray starts, --num-cpus or this machine's)
    divided into trial slots."""
    if started and "packs" in started:
        return started["packs"]
    if started:  # started before packs: every config alone, as it ran
        return [[i] for i in range(len(grid.trials))]
    slots = max(1, int((cpus or args.num_cpus or os.cpu_count() or 1) // args.cpus_per_trial))
    if args.max_concurrent:
        slots = min(slots, args.max_concurrent)
    return packing.plan(grid.trials, args.pack_size, slots=slots, gpu=args.gpus_per_trial > 0)


def describe_difference(old: list[dict], new: list[dict]) -> str:
    if len(old) != len(new):
        return f"{len(old)} trials then, {len(new)} now"
    for i, (a, b) in enumerate(zip(old, new)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"trial {i}: {key} was {a.get(key)!r}, now {b.get(key)!r}"
    return ""


def plan_experiment(args: argparse.Namespace) -> tuple[Grid, str, Storage, list[list[int]]]:
    """Validate everything about the run; return (grid, experiment name, experiment folder, packs)."""
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    root = Storage(args.storage_path)
    if args.resume:
        exp = root.child(args.name)
        refuse_if_running(exp, args.name)
        started = exp.read_json(SPEC_FILE)
        if started is None:
            raise UsageError(f"--resume: {exp.path} holds no noisesweep experiment ({SPEC_FILE} missing)")
        # An experiment started before trials named their task reads as one that did.
        started_trials = [schema.upgrade_config(t) for t in started["trials"]]
        if not args.grid:
            # Continue exactly what was started, even if the grid file has moved since.
            grid = Grid(started["grid"], started["grid_path"], None, started_trials,
                        overrides=started.get("overrides", {}))
            return grid, args.name, exp, plan_packs(grid, args, started)
        grid = load_grid(args.grid, overrides or started.get("overrides"))
        changed = describe_difference(started_trials, grid.trials)
        if changed:
            raise UsageError(f"--resume: the grid differs from the one {args.name} started with ({changed})")
        return grid, args.name, exp, plan_packs(grid, args, started)
    grid = load_grid(args.grid or "smoke", overrides)
    name = args.name or f"{grid.name}{'-tiny' if grid.variant else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = root.child(name)
    refuse_if_running(exp, name)
    if not exp.is_empty_or_missing():
        raise UsageError(f"--name {name}: {exp.path} already exists; pass --resume to continue it or choose another --name")
    problem = root.writable_problem()
    if problem:
        raise UsageError(f"--storage-path {args.storage_path}: {problem}")
    return grid, name, exp, plan_packs(grid, args)


def refuse_if_running(exp: Storage, name: str) -> None:
    """Another live runner holds this experiment: say which, before anything else."""
    holder = exp.lock_holder()
    if holder and holder_is_running(holder):
        raise UsageError(f"--name {name}: {exp.path} is being run by {describe(holder)}")


def load_datasets(grid: Grid, args: argparse.Namespace) -> dict:
    from sweeps.data import DataUnavailable, load_dataset

    out = {}
    for name in sorted({t["dataset"] for t in grid.trials}):
        try:
            out[name] = load_dataset(name, cache_dir=args.cache_dir, data_dir=args.data_dir).arrays()
        except DataUnavailable as e:
            raise UsageError(str(e)) from None
    return out


def trial_dirname(trial) -> str:
    members = packing.members_of(trial.config)
    if members:
        return f"pack_{members[0]['arch']}_{len(members)}m_{trial.trial_id}"
    return f"{packing.label(trial.config)}_{trial.trial_id}"


def start_ray(args: argparse.Namespace):
    import ray

    # Workers see the driver's TensorFlow verbosity and its tasks of one's own (sweeps.tasks).
    names = ("TF_CPP_MIN_LOG_LEVEL", "NOISESWEEP_TASKS")
    env = {"env_vars": {k: os.environ[k] for k in names if k in os.environ}}
    if args.address:
        ray.init(address=args.address, runtime_env=env)
    else:
        # address="local": never attach to a stale cluster a dead run left in
        # /tmp/ray (ray.init() would try it and hang). The dashboard, if this
        # Ray has one, listens on loopback only.
        ray.init(address="local", num_cpus=args.num_cpus, dashboard_host="127.0.0.1", runtime_env=env)
    return ray


def run(args: argparse.Namespace) -> int:
    check_args(args)
    grid, name, exp, packs = plan_experiment(args)
    if grid.duplicates_dropped:
        print(f"note: {grid.duplicates_dropped} duplicate trial configs in {grid.path} dropped")
    if args.dry_run:
        print_table(grid, packs)
        print(f"{len(grid.trials)} trials")
        keys = sorted(needed(grid.trials))
        if keys:
            print(f"{len(keys)} reference classifiers, trained once each before the trials: {', '.join(keys)}")
        return 0
    try:
        # Refused before any trial started, the lock leaves no empty experiment folder behind.
        with exp.locked(take_stale=args.resume):
            check_free_space(exp, args.storage_path)
            return execute(grid, name, exp, packs, args)
    except LockError as e:
        raise UsageError(str(e)) from None


def check_storage_reaches_every_node(ray, exp: Storage, args: argparse.Namespace) -> None:
    """Trials write their logs where they run: a local folder only works if every node is this machine."""
    if exp.reaches_other_hosts():
        return
    here = socket.gethostname()
    hosts = sorted({n["NodeManagerHostname"] for n in ray.nodes() if n["Alive"]} - {here})
    if hosts:
        raise UsageError(f"--storage-path {args.storage_path}: a local folder of {here}, but this Ray cluster "
                         f"has nodes on {', '.join(hosts)}; give a path every node shares (s3://BUCKET/..., "
                         "gs://BUCKET/..., or an NFS mount)")
    if args.address:
        print(f"note: --storage-path {args.storage_path} is local to {here}; if nodes on other hosts join "
              "this cluster, use s3://, gs:// or an NFS mount")


def check_free_space(exp: Storage, shown: str) -> None:
    free = exp.free_bytes()
    if free is not None and free < MIN_FREE_BYTES:
        raise UsageError(f"--storage-path {shown}: only {free / 2**20:.1f} MiB free on its disk; a sweep needs "
                         f"at least {MIN_FREE_BYTES // 2**20} MiB for its logs and checkpoints")


def execute(grid: Grid, name: str, exp: Storage, packs: list[list[int]], args: argparse.Namespace) -> int:
    """Load the data, start Ray, run the trials, summarise: everything after validation."""
    datasets = load_datasets(grid, args)
    if exp.is_local:
        # Tune saves the experiment state (which checkpoint each trial resumes from, which
        # trials finished) at most every 10 s by default: a killed driver then loses that
        # much, and resumed trials repeat epochs. Locally a save is a small file write.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")

    ray = start_ray(args)
    try:
        results = run_trials(ray, grid, name, exp, datasets, packs, args)
    except KeyboardInterrupt:
        # Ctrl-C in the reference stage (Tune handles its own during the trials).
        print(f"\nstopped; resume with: python sweeps/run.py --name {name} "
              f"--storage-path {args.storage_path} --resume")
        return 130
    finally:
        if not args.address:
            ray.shutdown()
    code = summarize(results, grid, name, exp.path, args)
    if args.report:
        from analysis import report

        report.main([exp.path])
    return code


def run_trials(ray, grid: Grid, name: str, exp: Storage, datasets: dict, packs: list[list[int]],
               args: argparse.Namespace):
    """Reference classifiers first (if any trial needs one), then the trials through Tune."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from sweeps.trainable import train_trial

    check_storage_reaches_every_node(ray, exp, args)
    resources = ray.cluster_resources()
    if args.gpus_per_trial and not resources.get("GPU"):
        print(f"warning: trials ask for {args.gpus_per_trial} GPU each and this Ray cluster has no GPU: "
              "they wait until a GPU node joins")
    if not args.resume and args.address:
        packs = plan_packs(grid, args, cpus=resources.get("CPU"))  # the cluster's slots, not this machine's
    together = sum(len(p) > 1 for p in packs)
    shown = f", in {together} packs and {len(packs) - together} alone" if together else ""
    print(f"noisesweep: grid {grid.label} ({grid.path}), {len(grid.trials)} trials{shown} -> {exp.path}")
    print(f"ray: {int(resources.get('CPU', 0))} CPUs, {resources.get('GPU', 0):g} GPUs; "
          f"per trial {args.cpus_per_trial:g} CPU, {args.gpus_per_trial:g} GPU", flush=True)
    if not args.resume:
        exp.write_json({"grid": grid.label, "grid_path": grid.path, "overrides": grid.overrides,
                        "trials": grid.trials, "packs": packs}, SPEC_FILE)
    per_trial = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    references = ensure_references(grid.trials, datasets, exp, per_trial)

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, datasets=datasets, references=references, storage=exp), per_trial)
    # A run stopped before Tune saved any state (during the reference stage) starts afresh.
    if args.resume and tune.Tuner.can_restore(exp.path):
        tuner = tune.Tuner.restore(exp.path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        configs = [packing.tune_config(grid.trials, p) for p in packs]
        tuner = tune.Tuner(
            trainable,
            # Tune only accepts preset configs whose keys the space declares; a key some trials
            # lack (a denoiser's latent_dim, a solo config's `members`) is None in theirs.
            param_space=dict.fromkeys(k for t in configs for k in t),
            tune_config=tune.TuneConfig(
                # One trial per pack (or lone config), flat, in the grid's order.
                search_alg=BasicVariantGenerator(points_to_evaluate=configs),
                num_samples=len(configs),
                max_concurrent_trials=args.max_concurrent,
                # A fresh worker per trial pays TensorFlow's import (about 5 s here)
                # again; reused workers pay it once per slot (bench/load.py measures
                # both; NOISESWEEP_REUSE_ACTORS=0 turns reuse off).
                reuse_actors=os.environ.get("NOISESWEEP_REUSE_ACTORS", "1") != "0",
                trial_name_creator=trial_dirname,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=Storage(args.storage_path).path,
                failure_config=tune.FailureConfig(max_failures=args.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )
    return tuner.fit()


def member_results(result) -> list[tuple[str, dict, dict]]:
    """(name shown, config, last metrics) of each config a Tune trial trained: itself, or
    each member of a pack (its last row as the pack reported it)."""
    members = packing.members_of(result.config)
    m = result.metrics or {}
    if not members:
        return [(os.path.basename(result.path), result.config, m)]
    names = packing.member_dirnames(members)
    reported = m.get("members") or {}
    return [(os.path.join(os.path.basename(result.path), n), c, reported.get(n) or {}) for n, c in zip(names, members)]


def summarize(results, grid: Grid, name: str, exp_path: str, args) -> int:
    """Print one line per config and where the logs are; exit 0 when every config finished,
    130 when the sweep was stopped (resumable), 1 when trials errored."""
    states = {}
    print()
    for r in sorted(results, key=lambda r: r.path):
        for shown_name, config, m in member_results(r):
            state = states[shown_name] = schema.trial_status(
                m.get("epoch"), config["epochs"], bool(m.get("diverged")), errored=r.error is not None)
            metric = schema.headline_metric(m)
            shown = f", {metric} {m[metric]:.4f}" if m.get(metric) is not None else ""
            error = f", error in {os.path.join(r.path, 'error.txt')}" if state == schema.ERRORED else ""
            print(f"  {shown_name}: {state}, epochs {m.get('epoch', 0)}/{config['epochs']}{shown}{error}")
    count = {s: list(states.values()).count(s) for s in schema.STATUSES}
    finished = sum(count[s] for s in schema.COMPLETE)
    print(f"{finished}/{len(grid.trials)} trials finished ({count[schema.DIVERGED]} diverged, "
          f"{count[schema.ERRORED]} errored, {len(grid.trials) - finished - count[schema.ERRORED]} unfinished)")
    print(f"logs: {exp_path}")
    if finished == len(grid.trials):
        return 0
    print(f"resume with: python sweeps/run.py --name {name} --storage-path {args.storage_path} --resume")
    return 1 if count[schema.ERRORED] else 130


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (GridError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
