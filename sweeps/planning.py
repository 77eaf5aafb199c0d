"""What a run will do, decided before anything starts: the grid, the experiment folder and
its steps (sweeps.growth), the packs of each new step, and the modules of one's own it
imports. Everything wrong with the input that the grid and the folder show is a
UsageError here; the data's own checks come next (sweeps.preflight).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from sweeps import growth, packing, schema, search
from sweeps.grids import Grid, load_grid
from sweeps.lock import describe, holder_is_running
from sweeps.options import Options, UsageError, slots
from sweeps.quiet import quiet_keras_backend
from sweeps.slurm_job import SLURM_DIR
from sweeps.storage import Storage, StorageError


@dataclass
class Plan:
    """What a run does: the grid asked for, the experiment, and its steps to run now, in
    order (sweeps.growth): each {folder, trials, packs, fresh}, `fresh` for a step not yet
    in the experiment's record (`previous`); `models`: the modules of one's own imported."""

    grid: Grid
    name: str
    exp: Storage
    steps: list[dict]
    previous: list[dict] = field(default_factory=list)
    growth: growth.Growth | None = None
    models: list[str] = field(default_factory=list)

    @property
    def trials(self) -> list[dict]:
        return [t for s in self.steps for t in s["trials"]]


def plan_packs(trials: list[dict], opts: Options, cpus: float | None = None) -> list[list[int]]:
    """packing.plan's packs of `trials` for --pack and --order on `cpus` (the cluster's;
    before Ray starts, --num-cpus or this machine's) divided into trial slots."""
    order = packing.interleaved(trials) if opts.order == "interleaved" else None
    gpu = opts.gpus_per_trial > 0
    measured = measured_pack_sizes(trials, opts) if opts.pack_size is None and not gpu else {}
    return packing.plan(trials, opts.pack_size, slots=slots(opts, cpus), gpu=gpu, order=order, measured=measured)


_measured: dict = {}  # architecture -> K, measured (or read from the cache) once a run


def measured_pack_sizes(trials: list[dict], opts: Options) -> dict:
    """K for `--pack auto` of each model of one's own that packs, on this CPU (sweeps.pack_speed);
    what was chosen, and why, printed once."""
    from models import resolve
    from sweeps import model_check, pack_speed
    from sweeps.data import default_cache_dir, is_given

    cache = opts.cache_dir or default_cache_dir()
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
        result = pack_speed.measured(t, cache, threads=max(1, int(round(opts.cpus_per_trial))))
        _measured[arch] = result["k"]
        print(pack_speed.describe(arch, result, cache), flush=True)
    return {a: k for a, k in _measured.items() if any(t["arch"] == a for t in trials)}


def import_models(modules: list[str]) -> list[str]:
    """Import the modules of one's own that register models (--models, and those an
    experiment recorded), and name them in $NOISESWEEP_TASKS, which Ray's workers, the
    --pack auto timing and sweeps.tasks read; the modules, in order."""
    import importlib

    from sweeps import tasks

    named = [m.strip() for m in os.environ.get(tasks.ENV, "").split(",") if m.strip()]
    if modules:
        quiet_keras_backend()  # a module of one's own may import Keras: TensorFlow's start-up lines kept off
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as e:  # the user's module: whatever it raised is theirs to read
            lines = [line.strip() for line in str(e).splitlines() if line.strip()]
            raise UsageError(f"--models {module}: cannot import it ({type(e).__name__}: "
                             f"{lines[0] if lines else ''})") from None
    os.environ[tasks.ENV] = ",".join(dict.fromkeys([*named, *modules]))
    return list(modules)


def new_step(grid: Grid, trials: list[dict], previous: list[dict], opts: Options, models: list[str]) -> dict:
    step = {"folder": growth.next_folder(previous), "grid": grid.label, "grid_path": grid.path,
            "overrides": grid.overrides, "trials": trials, "packs": plan_packs(trials, opts), "fresh": True}
    if models:
        step["models"] = models
    if grid.search:
        # A search samples its configs as it goes: `trials` holds its base, `search` its spec.
        step.update(search=grid.search, packs=[[0]])
    return step


def plan_experiment(opts: Options) -> Plan:
    """Validate everything about the run and plan its steps."""
    overrides = {"epochs": opts.epochs} if opts.epochs is not None else {}
    root = Storage(opts.storage_path)
    if opts.resume:
        return plan_resumed(opts, root.child(opts.name), overrides)
    models = import_models(opts.model_modules)
    grid = load_grid(opts.grid or "smoke", overrides)
    name = opts.name or f"{grid.name}{'-tiny' if grid.variant else ''}-{time.strftime('%Y%m%d-%H%M%S')}"
    exp = root.child(name)
    refuse_if_running(exp, name)
    if not exp.is_empty_or_missing(ignoring=(SLURM_DIR,)):  # a Slurm job's script, written first
        raise UsageError(f"--name {name}: {exp.path} already exists; pass --resume to continue it (with --grid, "
                         "to grow it) or choose another --name")
    problem = root.writable_problem()
    if problem:
        raise UsageError(f"--storage-path {opts.storage_path}: {problem}")
    return Plan(grid, name, exp, [new_step(grid, grid.trials, [], opts, models)], models=models)


def plan_resumed(opts: Options, exp: Storage, overrides: dict) -> Plan:
    """An experiment continued (--resume): its unfinished steps, and with a grid naming new
    configs, a step for those."""
    refuse_if_running(exp, opts.name)
    try:
        spec = exp.read_json(schema.SPEC_FILE)
    except StorageError as e:
        raise UsageError(f"--resume: {e}") from None
    if spec is None:
        raise UsageError(f"--resume: {exp.path} holds no noisesweep experiment ({schema.SPEC_FILE} missing)")
    recorded = [m for s in spec.get("steps", []) if isinstance(s, dict) for m in s.get("models", [])]
    models = import_models(list(dict.fromkeys([*recorded, *opts.model_modules])))
    try:
        previous = growth.steps(spec)
    except ValueError as e:
        raise UsageError(f"--resume: {exp.path}/{schema.SPEC_FILE}: {e}") from None
    except (KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"--resume: {exp.path}/{schema.SPEC_FILE}: not a record the runner wrote ({e!r} missing or "
                         "malformed)") from None
    last = previous[-1]
    if opts.epochs is not None and not opts.grid and opts.epochs != last.get("overrides", {}).get("epochs"):
        # Without a grid, --resume continues the configs as recorded; new epochs would be new configs.
        raise UsageError(f"--epochs {opts.epochs}: --resume continues {opts.name} as it was run; to add configs "
                         f"with other epochs, give the grid too: --grid {last['grid']} --epochs {opts.epochs}")
    if last.get("search"):
        return resume_search(opts, exp, previous, models)
    if opts.grid:
        grid = load_grid(opts.grid, overrides or last.get("overrides"))
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
        steps.append(new_step(grid, grown.new, previous, opts, models))
    return Plan(grid, opts.name, exp, steps, previous, grown, models)


def resume_search(opts: Options, exp: Storage, previous: list[dict], models: list[str]) -> Plan:
    """A search goes on where it stopped (Tune restores its searcher). Given a grid that
    asks for a larger budget (sweeps.search.GROWABLE), it grows: a new step samples the
    configs still owed, told every earlier one first."""
    last = previous[-1]
    same = Grid(last["grid"], last["grid_path"], None, last["trials"], overrides=last.get("overrides", {}),
                search=last["search"])
    continued = [{**last, "fresh": False}]
    if not opts.grid:
        return Plan(same, opts.name, exp, continued, previous, models=models)
    grid = load_grid(opts.grid, {"epochs": opts.epochs} if opts.epochs is not None else None)
    if not grid.search:
        raise UsageError(f"--resume --grid {opts.grid}: {exp.path} is a search; the grid has no search section")
    changed = search.growth_change(last["search"], grid.search)
    if grid.trials != last["trials"]:
        changed.insert(0, "the grid's axes")
    if changed:
        raise UsageError(f"--resume --grid {opts.grid}: {exp.path} is a search of {last['grid']}; it grows by its "
                         f"budget alone ({', '.join('search.' + k for k in search.GROWABLE)}), and this grid "
                         f"changes {', '.join(changed)}")
    if grid.search == last["search"]:
        return Plan(same, opts.name, exp, continued, previous, models=models)
    configs = grid.search["configs"]
    sampled = len(search.tried(search_folders(exp, previous), grid.search))
    if configs is not None and configs <= sampled:
        raise UsageError(f"--resume --grid {opts.grid}: search.configs = {configs}: the search has sampled "
                         f"{sampled} configs already; ask for more to grow it")
    # The last step finishes first (a no-op when it had), then the new one samples the rest.
    return Plan(grid, opts.name, exp, [*continued, new_step(grid, grid.trials, previous, opts, models)], previous,
                models=models)


def search_folders(exp: Storage, steps: list[dict]) -> list[str]:
    """The Tune experiment folders of the search steps among `steps`."""
    return [exp.child(s["folder"]).path if s["folder"] else exp.path for s in steps if s.get("search")]


def refuse_if_running(exp: Storage, name: str) -> None:
    """Another live runner holds this experiment: say which, before anything else."""
    holder = exp.lock_holder()
    if holder and holder_is_running(holder):
        raise UsageError(f"--name {name}: {exp.path} is being run by {describe(holder)}")
