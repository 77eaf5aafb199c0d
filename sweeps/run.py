"""Run a declared grid as Ray Tune trials: `python sweeps/run.py --grid NAME|PATH[:tiny]`.

Everything that can be wrong with the input (grid, flags, experiment folder,
data) is found before Ray starts: one `error:` line and exit status 2, no
trial started, nothing on disk changed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field

if __package__ in (None, ""):
    # Run as a script: put the repository root, not sweeps/, first on the path.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sweeps import growth, packing, quiet, restore, schema, search, slurm  # noqa: E402
from sweeps.packing import label  # noqa: E402
from sweeps.grids import Grid, GridError, load_grid, table_columns  # noqa: E402
from sweeps.lock import LockError, describe, holder_is_running  # noqa: E402
from sweeps.progress import PENDING, Sweep, config_key, failure  # noqa: E402
from sweeps.reference import ensure_references, needed  # noqa: E402
from sweeps.storage import Storage  # noqa: E402

SPEC_FILE = schema.SPEC_FILE
# Checkpoints (two kept per trial) and logs: a disk with less free space fails mid-sweep.
MIN_FREE_BYTES = 64 * 2**20


class UsageError(Exception):
    """Bad input found before anything started: printed as one line, exit 2."""


def parse_args(argv=None, prog: str = "python sweeps/run.py") -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train every config of a noise/L2 grid (one model: architecture, noise, L2, ..., replicate "
        "seed) on Ray Tune and keep per-epoch logs. Configs train alone or several together as a pack; "
        "each pack or lone config is one Tune trial, which is what the --*-per-trial flags size.",
        epilog="Exit status: 0 every config finished; 1 configs errored; 2 bad input (flags, grid, data), "
        "nothing started; 130 stopped before its end (--resume continues it).",
    )
    p.add_argument("--grid", default=None, help="named grid (sweeps/grids/NAME.yaml) or a YAML path, "
                   "optionally with :tiny for its quick variant (default: smoke)")
    p.add_argument("--name", default=None, help="experiment name (default: GRID-YYYYmmdd-HHMMSS)")
    p.add_argument("--storage-path", default="./runs", help="where experiments are written (default ./runs)")
    p.add_argument("--resume", action="store_true", help="continue the experiment --name: finished configs are not rerun, "
                   "stopped ones continue from their last checkpoint; with a --grid that names more configs "
                   "(more seeds, noise scales, L2 factors) it grows the experiment, training only the new ones")
    p.add_argument("--address", default=None, help="a running Ray cluster (e.g. auto) instead of a local one")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs each Tune trial (a pack or a lone config) reserves "
                   "(default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs each Tune trial reserves; fractions share a GPU "
                   "(default 0: CPU only)")
    p.add_argument("--max-concurrent", type=int, default=None, help="most Tune trials at once (default: as resources "
                   "allow)")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a failed Tune trial from its "
                   "checkpoint (default 2)")
    p.add_argument("--pack", default="auto", help="configs trained together as one vectorised model: auto "
                   "(default: the pack size measured fastest per model and device), K (at most K configs a pack) "
                   "or 1 (each alone)")
    p.add_argument("--order", choices=("interleaved", "grid"), default="interleaved",
                   help="which configs start first: interleaved (default: every cell's first replicate seed "
                   "before any cell's second, so a sweep stopped early has every cell) or grid (as declared)")
    p.add_argument("--epochs", type=int, default=None, help="override every config's epochs, for a quick look")
    p.add_argument("--models", default=None, metavar="MODULE[,MODULE]",
                   help="modules of your own to import first, whose models.register calls add architectures "
                   "(recorded with the experiment: --resume and the workers import them too)")
    p.add_argument("--cache-dir", default=None, help="dataset cache (default $NOISESWEEP_CACHE_DIR or ~/.keras/datasets)")
    p.add_argument("--data-dir", default=None, help="a folder with the dataset's four IDX files")
    p.add_argument("--dry-run", action="store_true", help="print the table of configs, their packs, each model's "
                   "parameter count and the number of configs; start nothing")
    p.add_argument("--list", action="store_true", help="list the shipped grids: what each reproduces, its configs "
                   "and its measured time; start nothing")
    p.add_argument("--report", action="store_true", help="write tables and figures (analysis.report) at the end")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="Ray Tune's own tables and every start-up line of TensorFlow and Ray, not the live view")
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
    if args.name is not None and schema.is_growth_folder(args.name):
        raise UsageError(f"--name {args.name!r}: names like grow-2 are an experiment's growth steps; choose another")
    if args.resume and not args.name:
        raise UsageError("--resume needs --name: the experiment to continue")
    try:
        args.pack_size = packing.parse(args.pack)
    except packing.PackingError as e:
        raise UsageError(str(e)) from None
    if args.data_dir and not os.path.isdir(args.data_dir):
        raise UsageError(f"--data-dir {args.data_dir}: no such folder")


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


def plan_packs(trials: list[dict], args: argparse.Namespace, cpus: float | None = None) -> list[list[int]]:
    """packing.plan's packs of `trials` for --pack and --order on `cpus` (the cluster's;
    before Ray starts, --num-cpus or this machine's) divided into trial slots."""
    slots = max(1, int((cpus or args.num_cpus or os.cpu_count() or 1) // args.cpus_per_trial))
    if args.max_concurrent:
        slots = min(slots, args.max_concurrent)
    order = packing.interleaved(trials) if args.order == "interleaved" else None
    gpu = args.gpus_per_trial > 0
    measured = measured_pack_sizes(trials, args) if args.pack_size is None and not gpu else {}
    return packing.plan(trials, args.pack_size, slots=slots, gpu=gpu, order=order, measured=measured)


_measured: dict = {}  # architecture -> K, measured (or read from the cache) once a run


def measured_pack_sizes(trials: list[dict], args: argparse.Namespace) -> dict:
    """K for `--pack auto` of each model of one's own that packs, on this CPU (sweeps.pack_speed);
    what was chosen, and why, printed once."""
    from sweeps import model_check, pack_speed
    from sweeps.data import default_cache_dir

    from models import resolve
    from sweeps.data import is_given

    cache = args.cache_dir or default_cache_dir()
    for t in trials:
        arch = t["arch"]
        if arch in _measured or not model_check.of_ones_own(arch):
            continue
        if resolve(arch).builder or is_given(t["dataset"]):
            # The timing runs in a child process, which has no Python object of this one.
            _measured[arch] = 1
            print(f"pack auto: {arch} alone (a model or dataset given as a Python object is not timed; "
                  "pack=K packs it)", flush=True)
            continue
        result = pack_speed.measured(t, cache, threads=max(1, int(round(args.cpus_per_trial))))
        _measured[arch] = result["k"]
        print(pack_speed.describe(arch, result, cache), flush=True)
    return {a: k for a, k in _measured.items() if any(t["arch"] == a for t in trials)}


@dataclass
class Plan:
    """What a run does: the grid asked for, the experiment, and its steps to run now, in
    order (sweeps.growth): each {folder, trials, packs, fresh}, `fresh` for a step not yet
    in the experiment's record (`previous`)."""

    grid: Grid
    name: str
    exp: Storage
    steps: list[dict]
    previous: list[dict] = field(default_factory=list)
    growth: growth.Growth | None = None

    @property
    def trials(self) -> list[dict]:
        return [t for s in self.steps for t in s["trials"]]


def import_models(modules: list[str]) -> list[str]:
    """Import the modules of one's own that register models (--models, and those an
    experiment recorded), and name them in $NOISESWEEP_TASKS, which Ray's workers, the
    --pack auto timing and sweeps.tasks read; the modules, in order."""
    import importlib

    from sweeps import tasks

    named = [m.strip() for m in os.environ.get(tasks.ENV, "").split(",") if m.strip()]
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # the user's module: whatever it raised is theirs to read
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise UsageError(f"--models {module}: cannot import it ({type(e).__name__}: "
                             f"{lines[0] if lines else ''})") from None
    os.environ[tasks.ENV] = ",".join(dict.fromkeys([*named, *modules]))
    return list(modules)


def new_step(grid: Grid, trials: list[dict], previous: list[dict], args: argparse.Namespace) -> dict:
    step = {"folder": growth.next_folder(previous), "grid": grid.label, "grid_path": grid.path,
            "overrides": grid.overrides, "trials": trials, "packs": plan_packs(trials, args), "fresh": True}
    if args.model_modules:
        step["models"] = args.model_modules
    if grid.search:
        # A search samples its configs as it goes: `trials` holds its base, `search` its spec.
        step.update(search=grid.search, packs=[[0]])
    return step


def plan_experiment(args: argparse.Namespace) -> Plan:
    """Validate everything about the run and plan its steps."""
    overrides = {"epochs": args.epochs} if args.epochs is not None else {}
    root = Storage(args.storage_path)
    given = [m.strip() for m in (args.models or "").split(",") if m.strip()]
    if args.resume:
        exp = root.child(args.name)
        refuse_if_running(exp, args.name)
        spec = exp.read_json(SPEC_FILE)
        if spec is None:
            raise UsageError(f"--resume: {exp.path} holds no noisesweep experiment ({SPEC_FILE} missing)")
        recorded = [m for s in spec.get("steps", []) if isinstance(s, dict) for m in s.get("models", [])]
        args.model_modules = import_models(list(dict.fromkeys([*recorded, *given])))
        try:
            previous = growth.steps(spec)
        except (KeyError, TypeError, AttributeError) as e:
            raise UsageError(f"--resume: {exp.path}/{SPEC_FILE}: not a record the runner wrote ({e!r} missing or "
                             "malformed)") from None
        last = previous[-1]
        if args.epochs is not None and not args.grid and args.epochs != last.get("overrides", {}).get("epochs"):
            # Without a grid, --resume continues the configs as recorded; new epochs would be new configs.
            raise UsageError(f"--epochs {args.epochs}: --resume continues {args.name} as it was run; to add configs "
                             f"with other epochs, give the grid too: --grid {last['grid']} --epochs {args.epochs}")
        if last.get("search"):
            return resume_search(args, exp, previous)
        if args.grid:
            grid = load_grid(args.grid, overrides or last.get("overrides"))
        else:
            # Continue exactly what was run, even if the grid files have moved since.
            grid = Grid(last["grid"], last["grid_path"], None, [t for s in previous for t in s["trials"]],
                        overrides=last.get("overrides", {}))
        # Logs on another machine's storage (s3://...) are not read: every step with a config
        # the grid names is resumed, and Tune leaves its finished trials as they are.
        states = growth.logged_states(exp.path, grid.trials) if exp.is_local else {}
        grown = growth.plan(previous, states, grid.trials)
        steps = [{**s, "fresh": False} for s in previous if s["folder"] in grown.to_continue]
        if grown.new:
            steps.append(new_step(grid, grown.new, previous, args))
        return Plan(grid, args.name, exp, steps, previous, grown)
    args.model_modules = import_models(given)
    grid = load_grid(args.grid or "smoke", overrides)
    name = args.name or f"{grid.name}{'-tiny' if grid.variant else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = root.child(name)
    refuse_if_running(exp, name)
    if not exp.is_empty_or_missing(ignoring=(slurm.SLURM_DIR,)):  # a Slurm job's script, written first
        raise UsageError(f"--name {name}: {exp.path} already exists; pass --resume to continue it (with --grid, "
                         "to grow it) or choose another --name")
    problem = root.writable_problem()
    if problem:
        raise UsageError(f"--storage-path {args.storage_path}: {problem}")
    return Plan(grid, name, exp, [new_step(grid, grid.trials, [], args)])


def resume_search(args: argparse.Namespace, exp: Storage, previous: list[dict]) -> Plan:
    """A search goes on where it stopped (Tune restores its searcher). Given a grid that
    asks for a larger budget (sweeps.search.GROWABLE), it grows: a new step samples the
    configs still owed, told every earlier one first."""
    last = previous[-1]
    same = Grid(last["grid"], last["grid_path"], None, last["trials"], overrides=last.get("overrides", {}),
                search=last["search"])
    continued = [{**last, "fresh": False}]
    if not args.grid:
        return Plan(same, args.name, exp, continued, previous)
    grid = load_grid(args.grid, {"epochs": args.epochs} if args.epochs is not None else None)
    if not grid.search:
        raise UsageError(f"--resume --grid {args.grid}: {exp.path} is a search; the grid has no search section")
    changed = search.growth_change(last["search"], grid.search)
    if grid.trials != last["trials"]:
        changed.insert(0, "the grid's axes")
    if changed:
        raise UsageError(f"--resume --grid {args.grid}: {exp.path} is a search of {last['grid']}; it grows by its "
                         f"budget alone ({', '.join('search.' + k for k in search.GROWABLE)}), and this grid "
                         f"changes {', '.join(changed)}")
    if grid.search == last["search"]:
        return Plan(same, args.name, exp, continued, previous)
    configs = grid.search["configs"]
    sampled = len(search.tried(search_folders(exp, previous), grid.search))
    if configs is not None and configs <= sampled:
        raise UsageError(f"--resume --grid {args.grid}: search.configs = {configs}: the search has sampled "
                         f"{sampled} configs already; ask for more to grow it")
    # The last step finishes first (a no-op when it had), then the new one samples the rest.
    return Plan(grid, args.name, exp, [*continued, new_step(grid, grid.trials, previous, args)], previous)


def search_folders(exp: Storage, steps: list[dict]) -> list[str]:
    """The Tune experiment folders of the search steps among `steps`."""
    return [exp.child(s["folder"]).path if s["folder"] else exp.path for s in steps if s.get("search")]


def refuse_if_running(exp: Storage, name: str) -> None:
    """Another live runner holds this experiment: say which, before anything else."""
    holder = exp.lock_holder()
    if holder and holder_is_running(holder):
        raise UsageError(f"--name {name}: {exp.path} is being run by {describe(holder)}")


def load_datasets(trials: list[dict], args: argparse.Namespace, where: str) -> dict:
    """Every dataset the trials train on; a hold-out as large as a dataset's training images
    (which the grid cannot know before the data is here) is refused now, before Ray starts."""
    from sweeps.data import DataError, DataUnavailable, load_dataset
    from sweeps.data.arrays import holdout_problem, subset

    out = {}
    for name in sorted({t["dataset"] for t in trials}):
        try:
            out[name] = load_dataset(name, cache_dir=args.cache_dir, data_dir=args.data_dir).arrays()
        except DataUnavailable as e:
            raise UsageError(str(e)) from None
        except DataError as e:  # a file of one's own holding what no trial could use
            raise UsageError(f"{where}: dataset = {name!r}: {e}") from None
    for t in trials:
        problem = t.get("validation") == "holdout" and holdout_problem(
            t["holdout_size"], len(subset(t, out[t["dataset"]], "train")[1]), f"training images of {t['dataset']}")
        if problem:
            raise UsageError(f"{where}: {problem}")
    return out


def refuse_models_that_cannot_train(plan: Plan, datasets: dict, args: argparse.Namespace) -> None:
    """A model of one's own that cannot train, found now (sweeps.model_check), not by the workers."""
    from sweeps import model_check

    found = model_check.problems(plan.trials, datasets, gpu=args.gpus_per_trial > 0)
    if found:
        raise UsageError(f"{plan.grid.path}: {found[0]}")


def trial_dirname(trial) -> str:
    members = packing.members_of(trial.config)
    if members:
        return f"pack_{members[0]['arch'].rsplit(':', 1)[-1]}_{len(members)}m_{trial.trial_id}"
    return f"{packing.label(trial.config)}_{trial.trial_id}"


def start_ray(args: argparse.Namespace):
    import ray

    # Workers see the driver's verbosity, Keras backend, TensorFlow kernels (sweeps/__init__.py)
    # and tasks of one's own (sweeps.tasks), on this machine or a cluster's.
    names = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", quiet.VERBOSE_ENV, "NOISESWEEP_TASKS", "KERAS_BACKEND")
    env = {"env_vars": {k: os.environ[k] for k in names if k in os.environ}}
    if not args.verbose:
        # Before a worker runs anything: Tune logs "Restored on ... from checkpoint" as it
        # sets a restarted trial up, before the trainable's own code could quiet it.
        env["worker_process_setup_hook"] = "sweeps.quiet.quiet_ray_workers"
    # Ray's own INFO lines (and its token-authentication note) only with -v.
    level = logging.INFO if args.verbose else logging.ERROR
    if not args.verbose:
        # Tune's new output engine prints its experiment header and TensorBoard hint
        # whatever `verbose` says; the legacy one at verbose 0 prints nothing.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        quiet.quiet_ray_driver()
    on_term = signal.getsignal(signal.SIGTERM)
    if args.address:
        ray.init(address=args.address, runtime_env=env, logging_level=level)
    else:
        # address="local": never attach to a stale cluster a dead run left in
        # /tmp/ray (ray.init() would try it and hang). The dashboard, if this
        # Ray has one, listens on loopback only.
        ray.init(address="local", num_cpus=args.num_cpus, dashboard_host="127.0.0.1", runtime_env=env,
                 logging_level=level)
    # ray.init puts its own handler on SIGTERM (exit at once, unsaved): the runner's (or the
    # calling program's) goes back on.
    if on_term is not None and threading.current_thread() is threading.main_thread():  # None: set from C
        signal.signal(signal.SIGTERM, on_term)
    return ray


def print_growth(plan: Plan, every: bool) -> None:
    """What a grid given to --resume means for the experiment: counts, the configs it no
    longer names, and (with `every`, for --dry-run) each config by what happens to it."""
    g = plan.growth
    print(f"{plan.name}: {len(g.done)} configs finished (skipped), {len(g.continued)} not finished (continued), "
          f"{len(g.new)} new (to run)")
    where = {config_key(c): s["folder"] or "first step" for s in plan.previous for c in s["trials"]}
    shown = [("not in this grid (kept)", g.not_in_grid)]
    if every:
        shown = [("new", g.new), ("continued", g.continued), ("skipped", g.done), *shown]
    for word, configs in shown:
        for c in configs:
            step = f" ({where[config_key(c)]})" if config_key(c) in where else ""
            print(f"  {word}: {label(c)}{step}")


def run(args: argparse.Namespace) -> int:
    if args.list:
        from sweeps.grids import catalogue

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--list | head` ends quietly, as `noisesweep grids`
        print("\n".join(catalogue()))
        return 0
    check_args(args)
    args.verbose = args.verbose or quiet.verbose()
    if args.verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"
    plan = plan_experiment(args)
    args.experiment_path = plan.exp.path  # the Python API's Experiment reads it
    grid = plan.grid
    if grid.duplicates_dropped:
        print(f"note: {grid.duplicates_dropped} duplicate configs in {grid.path} dropped")
    if plan.growth:
        print_growth(plan, every=args.dry_run)
    if args.dry_run and grid.search:
        print_table(grid.trials, [[0]])
        print(f"{search.describe(grid.search)}; the base config above, seeds 0-{grid.search['replicates'] - 1}")
        return 0
    if args.dry_run:
        fresh = next((s for s in plan.steps if s["fresh"]), None)
        if fresh:
            from sweeps.model_check import parameter_counts

            print_table(fresh["trials"], fresh["packs"])
            print("models:")  # each built once, here, for its parameter count
            print("\n".join(parameter_counts(fresh["trials"])))
        print(f"{len(fresh['trials']) if fresh else 0} {'new ' if plan.growth else ''}configs")
        keys = sorted(needed(plan.trials))
        if keys:
            print(f"{len(keys)} reference classifiers, trained once each before the configs: {', '.join(keys)}")
        return 0
    if not plan.steps:
        print(f"nothing to run: every config the grid names is finished in {plan.exp.path}")
        return write_report(plan) if args.report else 0
    if not args.address:
        check_local_gpus(args.gpus_per_trial)
    try:
        # Refused before any trial started, the lock leaves no empty experiment folder behind.
        with plan.exp.locked(take_stale=args.resume):
            check_free_space(plan.exp, args.storage_path)
            return execute(plan, args)
    except LockError as e:
        raise UsageError(str(e)) from None


def local_gpus() -> int | None:
    """The GPUs a Ray started here would have (Ray's own detection: the devices present, within
    CUDA_VISIBLE_DEVICES); None when it cannot tell."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        count = manager.get_current_node_num_accelerators()
        visible = manager.get_current_process_visible_accelerator_ids()
        return count if visible is None else min(count, len(visible))
    except Exception:  # a Ray whose private layout moved: no refusal rather than a wrong one
        return None


def check_local_gpus(per_trial: float) -> None:
    """A local Ray is only this machine: trials asking for more GPUs than it has would wait
    for a node that can never join."""
    if not per_trial:
        return
    have = local_gpus()
    if have is not None and have < per_trial:
        raise UsageError(f"--gpus-per-trial {per_trial:g}: this machine has {have} GPU{'s' if have != 1 else ''} "
                         "that Ray can use; leave the flag out to train on CPUs, or join a cluster with GPUs "
                         "(--address)")


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


def execute(plan: Plan, args: argparse.Namespace) -> int:
    """Load the data, start Ray, run the steps, summarise: everything after validation."""
    datasets = load_datasets(plan.trials, args, plan.grid.path)
    refuse_models_that_cannot_train(plan, datasets, args)
    if plan.exp.is_local:
        # Tune saves the experiment state (which checkpoint each trial resumes from, which
        # trials finished) at most every 10 s by default: a killed driver then loses that
        # much, and resumed trials repeat epochs. Locally a save is a small file write.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")

    ray = start_ray(args)
    try:
        results = run_steps(ray, plan, datasets, args)
    except KeyboardInterrupt:
        # Ctrl-C in the reference stage (Tune handles its own during the trials).
        print(f"\nstopped; {resume_line(plan, args)}")
        return 130
    finally:
        if not args.address:
            ray.shutdown()
    code = summarize_search(results, plan, args) if plan.grid.search else summarize(results, plan, args)
    if args.report:
        write_report(plan)
    return code


def resume_line(plan: Plan, args: argparse.Namespace) -> str:
    """The command that continues a stopped experiment: the runner's, or in a Slurm job (which
    Slurm requeues by itself at its time limit or on preemption) a new job's."""
    again = f"--name {plan.name} --storage-path {args.storage_path} --resume"
    if slurm.submitted_job():
        return (f"resume with: noisesweep slurm {again} [the job's Slurm flags] "
                "(a job that Slurm requeues resumes by itself)")
    return f"resume with: python sweeps/run.py {again}"


def write_report(plan: Plan) -> int:
    """analysis.report on the whole experiment (every step), as --report asks."""
    from analysis import report

    return report.main([plan.exp.path])


def run_steps(ray, plan: Plan, datasets: dict, args: argparse.Namespace) -> list:
    """Reference classifiers first (if any trial needs one), then each step's trials
    through Tune, one step after another; a step stopped short (Ctrl-C) ends the run."""
    check_storage_reaches_every_node(ray, plan.exp, args)
    resources = ray.cluster_resources()
    if args.gpus_per_trial and not resources.get("GPU"):
        print(f"warning: trials ask for {args.gpus_per_trial} GPU each and this Ray cluster has no GPU: "
              "they wait until a GPU node joins")
    per_trial = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    references: dict = {}
    results = []
    for n, step in enumerate(plan.steps):
        folder = plan.exp.child(step["folder"]) if step["folder"] else plan.exp
        if step["fresh"]:
            if args.address:
                step["packs"] = plan_packs(step["trials"], args, cpus=resources.get("CPU"))  # the cluster's slots
            # Recorded before Tune starts: a run killed from here on resumes this step.
            recorded = {k: v for k, v in step.items() if k != "fresh"}
            kept = plan.exp.read_json(SPEC_FILE) or {}  # what else it records (its Slurm jobs)
            plan.exp.write_json({**kept, **growth.record(plan.previous, recorded)}, SPEC_FILE)
        job = slurm.job_record() if n == 0 else None
        if job:  # the Slurm job this runs in (sweeps.slurm), for `noisesweep status`
            plan.exp.write_json(slurm.recorded(plan.exp.read_json(SPEC_FILE) or {}, job), SPEC_FILE)
        together = sum(len(p) > 1 for p in step["packs"])
        shown = (f", in {together} pack{'s' if together > 1 else ''} and {len(step['packs']) - together} alone"
                 if together else "")
        what = (f"grid {plan.grid.label} ({plan.grid.path})" if not plan.previous else
                f"{'new step' if step['fresh'] else 'continuing'} {step['folder'] or 'the first step'}")
        count = search.describe(step["search"]) if step.get("search") else f"{len(step['trials'])} configs{shown}"
        print(f"noisesweep: {what}, {count} -> {folder.path}", flush=True)
        if n == 0:  # once, under the first step's line
            nodes = sum(1 for node in ray.nodes() if node["Alive"])
            print(f"ray: {nodes} node{'s' if nodes > 1 else ''}, {int(resources.get('CPU', 0))} CPUs, "
                  f"{resources.get('GPU', 0):g} GPUs; "
                  f"per trial {args.cpus_per_trial:g} CPU, {args.gpus_per_trial:g} GPU", flush=True)
            references = ensure_references(plan.trials, datasets, plan.exp, per_trial)
        done = run_step(plan, step, folder, datasets, references, resources, args)
        results.extend(done)
        if stopped_short(step, folder, done):  # the steps after it wait for --resume
            break
    return results


def stopped_short(step: dict, folder: Storage, done: list) -> bool:
    """Whether a step ended before its trials did (Ctrl-C). A search's configs that ASHA
    stopped are done: only configs left in flight mean a stop."""
    if step.get("search"):
        return bool(search.in_flight(folder.path))
    return any(not r.error and unfinished(r) for r in done)


def run_step(plan: Plan, step: dict, folder: Storage, datasets: dict, references: dict, resources: dict,
             args: argparse.Namespace):
    """One step's trials through Ray Tune: restored from its state if it ran before."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from sweeps.training.trainable import train_trial

    from models import resolve

    per_trial = {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial}
    # Builders given as Python objects (noisesweep.run(models=...)) travel to the workers by value.
    builders = {t["arch"]: resolve(t["arch"]).builder for t in step["trials"] if resolve(t["arch"]).builder}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, datasets=datasets, references=references, storage=folder,
                             builders=builders), per_trial)
    # A step stopped before Tune saved any state (during the reference stage) starts afresh.
    if not step["fresh"] and tune.Tuner.can_restore(folder.path):
        restore.cut_back(folder)
        tuner = tune.Tuner.restore(folder.path, trainable, resume_unfinished=True, resume_errored=True)
    elif step.get("search"):
        # A grown search: the configs sampled before this step inform it and count against its budget.
        before = search.tried(search_folders(plan.exp, plan.previous), step["search"])
        if before:
            print(f"search: {len(before)} configs sampled before this step, given to Optuna with their means; "
                  f"{step['search']['configs'] - len(before) if step['search']['configs'] else 'more'} to sample now",
                  flush=True)
        tuner = tune.Tuner(
            trainable,
            param_space=search.param_space(step["trials"][0], step["search"]),
            tune_config=search.tune_config(step["search"], step["trials"][0], args.max_concurrent, before=before,
                                           reuse_actors=os.environ.get("NOISESWEEP_REUSE_ACTORS", "1") != "0",
                                           trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname),
            run_config=run_config(plan, step, resources, args, before),
        )
    else:
        configs = [packing.tune_config(step["trials"], p) for p in step["packs"]]
        tuner = tune.Tuner(
            trainable,
            # Tune only accepts preset configs whose keys the space declares; a key some trials
            # lack (a denoiser's latent_dim, a solo config's `members`) is None in theirs.
            param_space=dict.fromkeys(k for t in configs for k in t),
            tune_config=tune.TuneConfig(
                # One trial per pack (or lone config), flat, in the planned order (--order).
                # The limit goes to the generator itself: Tune ignores max_concurrent_trials
                # (with a warning) when given a BasicVariantGenerator.
                search_alg=BasicVariantGenerator(points_to_evaluate=configs, max_concurrent=args.max_concurrent or 0),
                num_samples=len(configs),
                # A fresh worker per trial pays TensorFlow's import (about 5 s here)
                # again; reused workers pay it once per slot (bench/load.py measures
                # both; NOISESWEEP_REUSE_ACTORS=0 turns reuse off).
                reuse_actors=os.environ.get("NOISESWEEP_REUSE_ACTORS", "1") != "0",
                trial_name_creator=trial_dirname,
                trial_dirname_creator=trial_dirname,
            ),
            run_config=run_config(plan, step, resources, args),
        )
    results = list(tuner.fit())
    restore.realign(folder)
    return results


def run_config(plan: Plan, step: dict, resources: dict, args: argparse.Namespace, before: list | None = None):
    """Tune's run config of a step; `before`: a grown search's earlier configs (their count
    and best carry on in the live view)."""
    from ray import tune

    return tune.RunConfig(
        # A growth step is a Tune experiment inside the experiment's folder.
        name=step["folder"] or plan.name,
        # Quiet: the live view (sweeps.console) instead of Tune's tables; -v: Tune's.
        verbose=None if args.verbose else 0,
        callbacks=[] if args.verbose else [live_view(step, resources, args, before)],
        storage_path=plan.exp.path if step["folder"] else Storage(args.storage_path).path,
        failure_config=tune.FailureConfig(max_failures=args.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )


def live_view(step: dict, resources: dict, args: argparse.Namespace, before: list | None = None):
    from sweeps.console import LiveView, SearchView

    if step.get("search"):
        return SearchView(step["search"], earlier=[value for _, value in before or []])
    per = args.gpus_per_trial if args.gpus_per_trial else args.cpus_per_trial
    slots = int(resources.get("GPU" if args.gpus_per_trial else "CPU", 1) // per) or 1
    if args.max_concurrent:
        slots = min(slots, args.max_concurrent)
    return LiveView(Sweep(step["trials"], step["packs"], slots), gpus=args.gpus_per_trial)


def member_states(result) -> list[tuple[str, dict, dict, str]]:
    """(name shown, config, last metrics, status) of each config a Tune trial trained."""
    return [(shown, config, m, schema.trial_status(m.get("epoch"), config["epochs"], bool(m.get("diverged")),
                                                   errored=result.error is not None, stopped=bool(m.get("stopped"))))
            for shown, config, m in packing.trained_configs(result.config, os.path.basename(result.path),
                                                            result.metrics)]


def unfinished(result) -> bool:
    """A Tune trial that neither ended nor failed (never started, or stopped midway)."""
    return not result.config or any(state == schema.UNFINISHED for *_, state in member_states(result))


def summarize(results, plan: Plan, args) -> int:
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
            if args.verbose or state not in schema.COMPLETE:
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
    print(resume_line(plan, args))
    return 1 if count[schema.ERRORED] else 130


def summarize_search(results, plan: Plan, args) -> int:
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
        print(resume_line(plan, args))
        return 130
    return 0


def term_as_interrupt():
    """A SIGTERM handler: the first SIGTERM (a scheduler's preemption, `kill`, a Slurm job's
    own stop at its time limit) stops the sweep as Ctrl-C does: trials stopped, Tune's state
    saved, resumable. Later ones are ignored (the stop is under way, and Slurm's SIGKILL ends
    it after its KillWait): Slurm sends one to every process of a job it requeues or preempts,
    also while the runner is saving, which a second interrupt would cut short."""
    received = []

    def handler(*_):
        if received:
            return
        received.append(True)
        if callable(signal.getsignal(signal.SIGINT)):  # Tune's handler, or Python's Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        else:
            # SIGINT ignored: a background command of a script (the Slurm job's runner) starts
            # so, and only Tune's handler takes it, during the trials. The stop, directly.
            raise KeyboardInterrupt

    return handler


def main(argv=None, prog: str = "python sweeps/run.py") -> int:
    # A module of one's own beside where the runner starts (a builder named mypkg.nets:small,
    # --models mypkg.nets) imports as under `python -m`; Ray's workers and the --pack auto
    # timing get the driver's path.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(1, os.getcwd())
    if argv is None and "--slurm" in sys.argv[1:] or argv is not None and "--slurm" in argv:
        rest = [a for a in (sys.argv[1:] if argv is None else argv) if a != "--slurm"]
        return slurm.main(rest, sys.modules[__name__], prog=f"{prog} --slurm")
    args = parse_args(argv, prog)
    signal.signal(signal.SIGTERM, term_as_interrupt())
    try:
        return run(args)
    except (GridError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the trials began (loading data, starting Ray)
        print("\nstopped before any trial started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
