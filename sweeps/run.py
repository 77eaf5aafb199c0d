"""Run a declared grid as Ray Tune trials: `python sweeps/run.py --grid NAME|PATH[:tiny]`.

Everything that can be wrong with the input (grid, flags, experiment folder,
data) is found before Ray starts: one `error:` line and exit status 2, no
trial started, nothing on disk changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time

if __package__ in (None, ""):
    # Run as a script: put the repository root, not sweeps/, first on the path.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sweeps.grids import TABLE_COLUMNS, Grid, GridError, load_grid  # noqa: E402
from sweeps.reference import ensure_references, trial_reference_key  # noqa: E402
from sweeps.lock import LockError, describe, experiment_lock, holder_is_running, read_holder  # noqa: E402

SPEC_FILE = "noisesweep.json"  # what the experiment was started with, for --resume
# Checkpoints (two kept per trial) and logs: a disk with less free space fails mid-sweep.
MIN_FREE_BYTES = 64 * 2**20
# Filesystems every node of a cluster can mount at the same path.
SHARED_FILESYSTEMS = {"nfs", "nfs4", "cifs", "smb3", "lustre", "glusterfs", "ceph", "fuse.ceph", "beegfs",
                      "gpfs", "fuse.s3fs", "fuse.gcsfuse", "fuse.juicefs"}


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
    if args.data_dir and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")


def storage_root(path: str) -> str:
    return path if "://" in path else os.path.abspath(os.path.expanduser(path))


def print_table(grid: Grid) -> None:
    columns = [c for c in TABLE_COLUMNS if any(c in t for t in grid.trials)]

    def shown(t, c):
        v = t.get(c, "")
        return f"{v:g}" if isinstance(v, float) else "" if v is None else str(v)

    rows = [[str(i)] + [shown(t, c) for c in columns] for i, t in enumerate(grid.trials)]
    header = ["#", *columns]
    widths = [max(len(r[j]) for r in [header, *rows]) for j in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(r, widths)))


def _filesystem(exp_path: str):
    """(pyarrow filesystem, path in it) for a local folder or an s3:// / gs:// URI, as Tune uses."""
    import pyarrow.fs

    if "://" in exp_path:
        return pyarrow.fs.FileSystem.from_uri(exp_path)
    return pyarrow.fs.LocalFileSystem(), os.path.abspath(exp_path)


def write_spec(exp_path: str, spec: dict) -> None:
    """Record what the experiment started with, next to Tune's state, wherever that lives."""
    fs, path = _filesystem(exp_path)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{SPEC_FILE}") as f:
        f.write(json.dumps(spec, indent=1).encode())


def read_spec(exp_path: str) -> dict | None:
    """The recorded start of an experiment, or None if there is none."""
    fs, path = _filesystem(exp_path)
    try:
        with fs.open_input_stream(f"{path}/{SPEC_FILE}") as f:
            return json.loads(f.read())
    except (FileNotFoundError, OSError, ValueError):
        return None


def describe_difference(old: list[dict], new: list[dict]) -> str:
    if len(old) != len(new):
        return f"{len(old)} trials then, {len(new)} now"
    for i, (a, b) in enumerate(zip(old, new)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return f"trial {i}: {key} was {a.get(key)!r}, now {b.get(key)!r}"
    return ""


def plan_experiment(args: argparse.Namespace) -> tuple[Grid, str, str]:
    """Validate everything about the run; return (grid, experiment name, experiment path)."""
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    root = storage_root(args.storage_path)
    if args.resume:
        exp_path = os.path.join(root, args.name)
        refuse_if_running(exp_path, args.name)
        started = read_spec(exp_path)
        if started is None:
            raise UsageError(f"--resume: {exp_path} holds no noisesweep experiment ({SPEC_FILE} missing)")
        if not args.grid:
            # Continue exactly what was started, even if the grid file has moved since.
            grid = Grid(started["grid"], started["grid_path"], None, started["trials"],
                        overrides=started.get("overrides", {}))
            return grid, args.name, exp_path
        grid = load_grid(args.grid, overrides or started.get("overrides"))
        changed = describe_difference(started["trials"], grid.trials)
        if changed:
            raise UsageError(f"--resume: the grid differs from the one {args.name} started with ({changed})")
        return grid, args.name, exp_path
    grid = load_grid(args.grid or "smoke", overrides)
    name = args.name or f"{grid.name}{'-tiny' if grid.variant else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp_path = os.path.join(root, name)
    refuse_if_running(exp_path, name)
    if "://" not in root and os.path.exists(exp_path) and os.listdir(exp_path):
        raise UsageError(f"--name {name}: {exp_path} already exists; pass --resume to continue it or choose another --name")
    if "://" not in root:
        check_writable(root, args.storage_path)
    return grid, name, exp_path


def refuse_if_running(exp_path: str, name: str) -> None:
    """Another live runner holds this experiment: say which, before anything else."""
    holder = read_holder(exp_path) if "://" not in exp_path else None
    if holder and holder_is_running(holder):
        raise UsageError(f"--name {name}: {exp_path} is being run by {describe(holder)}")


def check_writable(root: str, shown: str) -> None:
    """Refuse a storage path that could not be created or written, creating nothing."""
    existing = root
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--storage-path {shown}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"--storage-path {shown}: {existing} is not writable")


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
    c = trial.config
    noise = "clean" if c["noise_type"] == "none" else f"{c['noise_type']}{c['noise_scale']:g}"
    return f"{c['arch']}_{noise}_l2-{c['l2']:g}_s{c['seed']}_{trial.trial_id}"


def start_ray(args: argparse.Namespace):
    import ray

    env = {"env_vars": {"TF_CPP_MIN_LOG_LEVEL": os.environ["TF_CPP_MIN_LOG_LEVEL"]}}
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
    grid, name, exp_path = plan_experiment(args)
    if grid.duplicates_dropped:
        print(f"note: {grid.duplicates_dropped} duplicate trial configs in {grid.path} dropped")
    if args.dry_run:
        print_table(grid)
        print(f"{len(grid.trials)} trials")
        keys = sorted({k for k in map(trial_reference_key, grid.trials) if k})
        if keys:
            print(f"{len(keys)} reference classifiers, trained once each before the trials: {', '.join(keys)}")
        return 0
    if "://" in exp_path:
        # Cloud storage: no lock file (a cluster's runs share the bucket; one runner per name is on the user).
        return execute(grid, name, exp_path, args)
    created = not os.path.exists(exp_path)
    try:
        with experiment_lock(exp_path, take_stale=args.resume):
            check_free_space(exp_path, args.storage_path)
            return execute(grid, name, exp_path, args)
    except LockError as e:
        raise UsageError(str(e)) from None
    finally:
        # Refused before any trial started: leave no empty experiment folder behind.
        if created and os.path.isdir(exp_path) and not os.listdir(exp_path):
            os.rmdir(exp_path)


def filesystem_type(path: str) -> str:
    """The type of the filesystem `path` lies on, from /proc/mounts (longest mount point)."""
    best, kind = "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                _, point, fstype = line.split()[:3]
                if path.startswith(point.rstrip("/") + "/") or path == point or point == "/":
                    if len(point) > len(best):
                        best, kind = point, fstype
    except OSError:
        pass
    return kind


def check_storage_reaches_every_node(ray, exp_path: str, args: argparse.Namespace) -> None:
    """Trials write their logs where they run: a local folder only works if every node is this machine."""
    if "://" in exp_path or filesystem_type(os.path.abspath(exp_path)) in SHARED_FILESYSTEMS:
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


def check_free_space(exp_path: str, shown: str) -> None:
    free = shutil.disk_usage(exp_path).free
    if free < MIN_FREE_BYTES:
        raise UsageError(f"--storage-path {shown}: only {free / 2**20:.1f} MiB free on its disk; a sweep needs "
                         f"at least {MIN_FREE_BYTES // 2**20} MiB for its logs and checkpoints")


def execute(grid: Grid, name: str, exp_path: str, args: argparse.Namespace) -> int:
    """Load the data, start Ray, run the trials, summarise: everything after validation."""
    datasets = load_datasets(grid, args)
    if "://" not in exp_path:
        # Tune saves the experiment state (which checkpoint each trial resumes from, which
        # trials finished) at most every 10 s by default: a killed driver then loses that
        # much, and resumed trials repeat epochs. Locally a save is a small file write.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")

    ray = start_ray(args)
    try:
        results = run_trials(ray, grid, name, exp_path, datasets, args)
    except KeyboardInterrupt:
        # Ctrl-C in the reference stage (Tune handles its own during the trials).
        print(f"\nstopped; resume with: python sweeps/run.py --name {name} "
              f"--storage-path {args.storage_path} --resume")
        return 130
    finally:
        if not args.address:
            ray.shutdown()
    code = summarize(results, grid, name, exp_path, args)
    if args.report:
        from analysis import report

        report.main([exp_path])
    return code


def run_trials(ray, grid: Grid, name: str, exp_path: str, datasets: dict, args: argparse.Namespace):
    """Reference classifiers first (if any trial needs one), then the trials through Tune."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from sweeps.trainable import train_trial

    check_storage_reaches_every_node(ray, exp_path, args)
    resources = ray.cluster_resources()
    if args.gpus_per_trial and not resources.get("GPU"):
        print(f"warning: trials ask for {args.gpus_per_trial} GPU each and this Ray cluster has no GPU: "
              "they wait until a GPU node joins")
    print(f"noisesweep: grid {grid.label} ({grid.path}), {len(grid.trials)} trials -> {exp_path}")
    print(f"ray: {int(resources.get('CPU', 0))} CPUs, {resources.get('GPU', 0):g} GPUs; "
          f"per trial {args.cpus_per_trial:g} CPU, {args.gpus_per_trial:g} GPU", flush=True)
    if not args.resume:
        write_spec(exp_path, {"grid": grid.label, "grid_path": grid.path,
                              "overrides": grid.overrides, "trials": grid.trials})
    per_trial = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    references = ensure_references(grid.trials, datasets, *_filesystem(exp_path), per_trial)

    trainable = tune.with_resources(
        tune.with_parameters(train_trial, datasets=datasets, references=references), per_trial)
    # A run stopped before Tune saved any state (during the reference stage) starts afresh.
    if args.resume and tune.Tuner.can_restore(exp_path):
        tuner = tune.Tuner.restore(exp_path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            # Tune only accepts preset configs whose keys the space declares; a key some trials
            # lack (a denoiser's latent_dim) is None in theirs.
            param_space=dict.fromkeys(k for t in grid.trials for k in t),
            tune_config=tune.TuneConfig(
                # One trial per declared config, flat, in the grid's order.
                search_alg=BasicVariantGenerator(points_to_evaluate=[dict(t) for t in grid.trials]),
                num_samples=len(grid.trials),
                max_concurrent_trials=args.max_concurrent,
                # A fresh worker per trial pays TensorFlow's import (about 5 s here)
                # again; reused workers pay it once per slot.
                reuse_actors=True,
                trial_name_creator=trial_dirname,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage_root(args.storage_path),
                failure_config=tune.FailureConfig(max_failures=args.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            ),
        )
    return tuner.fit()


def trial_state(result) -> str:
    """ERROR, DIVERGED, TERMINATED (all its epochs) or UNFINISHED (stopped early: Ctrl-C)."""
    m = result.metrics or {}
    if result.error:
        return "ERROR"
    if m.get("diverged"):
        return "DIVERGED"
    return "TERMINATED" if m.get("epoch", 0) >= result.config["epochs"] else "UNFINISHED"


def summarize(results, grid: Grid, name: str, exp_path: str, args) -> int:
    """Print one line per trial and where the logs are; exit 0 when every trial finished,
    130 when the sweep was stopped (resumable), 1 when trials errored."""
    states = {}
    print()
    for r in sorted(results, key=lambda r: r.path):
        m = r.metrics or {}
        state = states[r.path] = trial_state(r)
        metric = "val_accuracy" if "val_accuracy" in m else "val_loss"
        shown = f", {metric} {m[metric]:.4f}" if m.get(metric) is not None else ""
        error = f", error in {os.path.join(r.path, 'error.txt')}" if state == "ERROR" else ""
        print(f"  {os.path.basename(r.path)}: {state}, epochs {m.get('epoch', 0)}/{r.config['epochs']}{shown}{error}")
    count = {s: list(states.values()).count(s) for s in ("TERMINATED", "DIVERGED", "ERROR", "UNFINISHED")}
    finished = count["TERMINATED"] + count["DIVERGED"]
    print(f"{finished}/{len(grid.trials)} trials finished ({count['DIVERGED']} diverged, "
          f"{count['ERROR']} errored, {len(grid.trials) - finished - count['ERROR']} unfinished)")
    print(f"logs: {exp_path}")
    if finished == len(grid.trials):
        return 0
    print(f"resume with: python sweeps/run.py --name {name} --storage-path {args.storage_path} --resume")
    return 1 if count["ERROR"] else 130


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except (GridError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
