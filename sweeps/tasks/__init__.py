"""Trial kinds ("tasks"): one module each, named for the task.

A task module owns, for its kind of trial: its name and what messages call its
models and trials (`NAME`, `MODEL`, `FAMILY`), its losses (`LOSSES`), and, in
the trial, how the pack engine trains its configs: their models, targets, loss,
metric and end-of-training outcome (`training(members, arrays, references)` ->
base.Training; every task trains through sweeps.training.pack, a solo trial as a
pack of one). Optional, filled in here when a module leaves them out (OPTIONAL):
its own config keys and their defaults and value checks (`KEYS`, `DEFAULTS`,
`CHECKS`), keys holding one list (`LIST_VALUED`), its columns in the dry-run table
(`TABLE`), the rules across axes it adds (`check`, raising base.ConfigError), the
reference classifiers it needs (`references`), `finalize(config)`, run once on each
expanded config, and the metric it scores every epoch (`METRIC`, given to its Training;
None: the loss alone). What its trials report every epoch follows (`EPOCH_METRICS`:
loss, the metric and their val_ values), and so what early stopping may monitor. Every architecture in
the models registry names its task; every trial config carries it as `task`.

The modules of this package are the built-in tasks. A task of one's own lives
anywhere importable and is named in $NOISESWEEP_TASKS (comma-separated module
names); it registers its architectures with models.register when imported. A module
named there that defines no task (no `NAME`) is imported for the models it registers
under a task that exists (a classifier of one's own, say).
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from sweeps.schema import task_of
from sweeps.tasks.base import metric_names

ENV = "NOISESWEEP_TASKS"
_NOT_TASKS = {"base"}
_loaded: dict = {}


def _load() -> dict:
    if not _loaded:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
            if info.name not in _NOT_TASKS:
                _register(importlib.import_module(f"{__name__}.{info.name}"))
    for name in filter(None, (m.strip() for m in os.environ.get(ENV, "").split(","))):
        module = importlib.import_module(name)  # cached after the first time
        if hasattr(module, "NAME"):
            _register(module)
    return _loaded


def _no_check(config: dict) -> None:
    pass


def _no_references(config: dict) -> dict:
    return {}


def _unchanged(config: dict) -> dict:
    return config


# What a task module may leave out, and what it then means.
OPTIONAL = {"METRIC": None, "DEFAULTS": {}, "KEYS": (), "CHECKS": {}, "LIST_VALUED": (), "check": _no_check,
            "references": _no_references, "finalize": _unchanged}


def _register(module) -> None:
    if module.NAME in _loaded:
        return
    for attr, default in OPTIONAL.items():
        if not hasattr(module, attr):
            setattr(module, attr, default)
    if not hasattr(module, "TABLE"):
        module.TABLE = module.KEYS
    module.EPOCH_METRICS = metric_names(module.METRIC)
    _loaded[module.NAME] = module


def all_tasks() -> dict:
    """Task name -> module: the built-in ones and those named in $NOISESWEEP_TASKS."""
    return dict(_load())


def monitors() -> tuple[str, ...]:
    """What early stopping may monitor in some task: every task's epoch metrics."""
    return tuple(dict.fromkeys(m for task in _load().values() for m in task.EPOCH_METRICS))


def get(name: str):
    tasks = _load()
    if name not in tasks:
        raise KeyError(f"unknown task {name!r}; known: {', '.join(sorted(tasks))} "
                       f"(a task of your own is named in ${ENV})")
    return tasks[name]


def for_config(config: dict):
    """The task module of a trial config (older configs included: sweeps.schema.task_of)."""
    return get(task_of(config))


def for_arch(arch: str):
    """The task module an architecture trains under."""
    from models import resolve

    _load()  # tasks of one's own register their architectures on import
    return get(resolve(arch).task)
