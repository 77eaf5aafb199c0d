"""Driving a planned sweep: Ray started (embedded, or joined with --address), the reference
classifiers trained first, then each step's trials through Ray Tune with the live view
(sweeps.console), one step after another, and the summary at the end (sweeps.summary).
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import threading

from sweeps import growth, packing, quiet, restore, schema, search
from sweeps.options import Options, slots
from sweeps.planning import Plan, plan_packs, search_folders
from sweeps.preflight import (check_storage_reaches_every_node, load_datasets, refuse_models_that_cannot_train,
                              scoring_images)
from sweeps.progress import Sweep
from sweeps.slurm_job import job_record, recorded
from sweeps.storage import Storage
from sweeps.summary import resume_line, summarize, summarize_search, unfinished, write_report


def execute(plan: Plan, opts: Options) -> int:
    """Load the data, start Ray, run the steps, summarise: everything after validation."""
    datasets = load_datasets(plan.trials, opts, plan.grid.path)
    refuse_models_that_cannot_train(plan.trials, datasets, plan.grid.path, opts)
    scoring = scoring_images(plan.trials, datasets, plan.grid.path, store=plan.exp)
    if plan.exp.is_local:
        # Tune saves the experiment state (which checkpoint each trial resumes from, which
        # trials finished) at most every 10 s by default: a killed driver then loses that
        # much, and resumed trials repeat epochs. Locally a save is a small file write.
        os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")

    ray = start_ray(opts)
    try:
        results = run_steps(ray, plan, datasets, opts, scoring)
    except KeyboardInterrupt:
        # Ctrl-C in the reference stage (Tune handles its own during the trials).
        print(f"\nstopped; {resume_line(plan, opts)}")
        return 130
    finally:
        if not opts.address:
            ray.shutdown()
    code = summarize_search(results, plan, opts) if plan.grid.search else summarize(results, plan, opts)
    if opts.report:
        write_report(plan)
    return code


def start_ray(opts: Options):
    import ray

    # Workers see the driver's verbosity, Keras backend, TensorFlow kernels (sweeps/__init__.py)
    # and tasks of one's own (sweeps.tasks), on this machine or a cluster's.
    names = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", quiet.VERBOSE_ENV, "NOISESWEEP_TASKS", "KERAS_BACKEND")
    env = {"env_vars": {k: os.environ[k] for k in names if k in os.environ}}
    if not opts.verbose:
        # Before a worker runs anything: Tune logs "Restored on ... from checkpoint" as it
        # sets a restarted trial up, before the trainable's own code could quiet it.
        env["worker_process_setup_hook"] = "sweeps.quiet.quiet_ray_workers"
    # Ray's own INFO lines (and its token-authentication note) only with -v.
    level = logging.INFO if opts.verbose else logging.ERROR
    if not opts.verbose:
        # Tune's new output engine prints its experiment header and TensorBoard hint
        # whatever `verbose` says; the legacy one at verbose 0 prints nothing.
        os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
        quiet.quiet_ray_driver()
    if not opts.address and not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        # A new local Ray turns token auth on with ~/.ray/auth_token, written under the default
        # umask and shared by every run of the user: this run's own token instead, held only in
        # the environment of its processes (its Ray's and its workers').
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    on_term = signal.getsignal(signal.SIGTERM)
    if opts.address:
        ray.init(address=opts.address, runtime_env=env, logging_level=level)
    else:
        # address="local": never attach to a stale cluster a dead run left in
        # /tmp/ray (ray.init() would try it and hang). The dashboard, if this
        # Ray has one, listens on loopback only.
        ray.init(address="local", num_cpus=opts.num_cpus, dashboard_host="127.0.0.1", runtime_env=env,
                 logging_level=level)
    # ray.init puts its own handler on SIGTERM (exit at once, unsaved): the runner's (or the
    # calling program's) goes back on.
    if on_term is not None and threading.current_thread() is threading.main_thread():  # None: set from C
        signal.signal(signal.SIGTERM, on_term)
    return ray


def run_steps(ray, plan: Plan, datasets: dict, opts: Options, scoring: dict | None = None) -> list:
    """Reference classifiers first (if any trial needs one), then each step's trials
    through Tune, one step after another; a step stopped short (Ctrl-C) ends the run."""
    from sweeps.reference import ensure_references

    check_storage_reaches_every_node(ray, plan.exp, opts)
    resources = ray.cluster_resources()
    if opts.gpus_per_trial and not resources.get("GPU"):
        print(f"warning: trials ask for {opts.gpus_per_trial} GPU each and this Ray cluster has no GPU: "
              "they wait until a GPU node joins")
    per_trial = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    references: dict = {}
    results = []
    for n, step in enumerate(plan.steps):
        folder = plan.exp.child(step["folder"]) if step["folder"] else plan.exp
        if step["fresh"]:
            if opts.address:
                step["packs"] = plan_packs(step["trials"], opts, cpus=resources.get("CPU"))  # the cluster's slots
            # Recorded before Tune starts: a run killed from here on resumes this step.
            kept = plan.exp.read_json(schema.SPEC_FILE) or {}  # what else it records (its Slurm jobs)
            step_record = {k: v for k, v in step.items() if k != "fresh"}
            plan.exp.write_json({**kept, **growth.record(plan.previous, step_record)}, schema.SPEC_FILE)
        job = job_record() if n == 0 else None
        if job:  # the Slurm job this runs in (sweeps.slurm_job), for `noisesweep status`
            plan.exp.write_json(recorded(plan.exp.read_json(schema.SPEC_FILE) or {}, job), schema.SPEC_FILE)
        print(f"noisesweep: {step_line(plan, step)} -> {folder.path}", flush=True)
        if n == 0:  # once, under the first step's line
            nodes = sum(1 for node in ray.nodes() if node["Alive"])
            print(f"ray: {nodes} node{'s' if nodes > 1 else ''}, {int(resources.get('CPU', 0))} CPUs, "
                  f"{resources.get('GPU', 0):g} GPUs; "
                  f"per trial {opts.cpus_per_trial:g} CPU, {opts.gpus_per_trial:g} GPU", flush=True)
            references = ensure_references(plan.trials, datasets, plan.exp, per_trial)
        done = run_step(plan, step, folder, datasets, references, resources, opts, scoring)
        results.extend(done)
        if stopped_short(step, folder, done):  # the steps after it wait for --resume
            break
    return results


def step_line(plan: Plan, step: dict) -> str:
    """A step as its start line names it: the grid (or which step), its configs and packs."""
    together = sum(len(p) > 1 for p in step["packs"])
    shown = (f", in {together} pack{'s' if together > 1 else ''} and {len(step['packs']) - together} alone"
             if together else "")
    what = (f"grid {plan.grid.label} ({plan.grid.path})" if not plan.previous else
            f"{'new step' if step['fresh'] else 'continuing'} {step['folder'] or 'the first step'}")
    count = search.describe(step["search"]) if step.get("search") else f"{len(step['trials'])} configs{shown}"
    return f"{what}, {count}"


def stopped_short(step: dict, folder: Storage, done: list) -> bool:
    """Whether a step ended before its trials did (Ctrl-C). A search's configs that ASHA
    stopped are done: only configs left in flight mean a stop."""
    if step.get("search"):
        return bool(search.in_flight(folder.path))
    return any(not r.error and unfinished(r) for r in done)


def trial_dirname(trial) -> str:
    members = packing.members_of(trial.config)
    if members:
        return f"pack_{members[0]['arch'].rsplit(':', 1)[-1]}_{len(members)}m_{trial.trial_id}"
    return f"{packing.label(trial.config)}_{trial.trial_id}"


def run_step(plan: Plan, step: dict, folder: Storage, datasets: dict, references: dict, resources: dict,
             opts: Options, scoring: dict | None = None):
    """One step's trials through Ray Tune: restored from its state if it ran before."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from models import resolve
    from sweeps.training.trainable import train_trial

    per_trial = {"cpu": opts.cpus_per_trial, "gpu": opts.gpus_per_trial}
    # Builders given as Python objects (noisesweep.run(models=...)) travel to the workers by value.
    builders = {t["arch"]: resolve(t["arch"]).builder for t in step["trials"] if resolve(t["arch"]).builder}
    trainable = tune.with_resources(
        tune.with_parameters(train_trial, datasets=datasets, references=references, storage=folder,
                             builders=builders, scoring=scoring or {}), per_trial)
    # A fresh worker per trial pays TensorFlow's import (about 5 s here) again; reused
    # workers pay it once per slot (bench/load.py measures both; NOISESWEEP_REUSE_ACTORS=0
    # turns reuse off).
    reuse = os.environ.get("NOISESWEEP_REUSE_ACTORS", "1") != "0"
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
            tune_config=search.tune_config(step["search"], step["trials"][0], opts.max_concurrent, before=before,
                                           reuse_actors=reuse, trial_name_creator=trial_dirname,
                                           trial_dirname_creator=trial_dirname),
            run_config=run_config(plan, step, resources, opts, before),
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
                search_alg=BasicVariantGenerator(points_to_evaluate=configs, max_concurrent=opts.max_concurrent or 0),
                num_samples=len(configs), reuse_actors=reuse,
                trial_name_creator=trial_dirname, trial_dirname_creator=trial_dirname,
            ),
            run_config=run_config(plan, step, resources, opts),
        )
    results = list(tuner.fit())
    restore.realign(folder)
    return results


def run_config(plan: Plan, step: dict, resources: dict, opts: Options, before: list | None = None):
    """Tune's run config of a step; `before`: a grown search's earlier configs (their count
    and best carry on in the live view)."""
    from ray import tune

    return tune.RunConfig(
        # A growth step is a Tune experiment inside the experiment's folder.
        name=step["folder"] or plan.name,
        # Quiet: the live view (sweeps.console) instead of Tune's tables; -v: Tune's.
        verbose=None if opts.verbose else 0,
        callbacks=[] if opts.verbose else [live_view(step, resources, opts, before)],
        storage_path=plan.exp.path if step["folder"] else Storage(opts.storage_path).path,
        failure_config=tune.FailureConfig(max_failures=opts.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
    )


def live_view(step: dict, resources: dict, opts: Options, before: list | None = None):
    from sweeps.console import LiveView, SearchView

    if step.get("search"):
        return SearchView(step["search"], earlier=[value for _, value in before or []])
    trial_slots = slots(opts, cpus=resources.get("CPU", 1), gpus=resources.get("GPU", 1))
    return LiveView(Sweep(step["trials"], step["packs"], trial_slots), gpus=opts.gpus_per_trial)
