"""Named grids: YAML files in `sweeps/grids/`, validated and expanded into trial configs.

A grid file holds axes (lists expand as a cross product), either at top
level or as several `blocks` whose trials are joined, plus optional
`defaults` shared by every block and a `tiny` mapping of overrides for a
quick local run (`--grid NAME:tiny`). A `search` section (sweeps.search) makes
the grid a search over ranges of its axes, from its one expanded config. Every
value is checked before Ray starts; the first problem raises GridError naming
file, key and value.

Precedence, lowest first: BASE_DEFAULTS, the architecture's seed defaults
(models.arch_defaults), the file's `defaults`, the block, `tiny`, and the
command line's overrides.

Every trial's `arch` names its task (sweeps.tasks: classify, denoise, vae):
the config gets `task`, the task's DEFAULTS and its `check`; a key only other
tasks take is refused.
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
from dataclasses import dataclass, field

from models import ARCHITECTURES, ArchError, arch_defaults, archs_of, options_of
from models import resolve as resolve_arch
from models.registry import is_import_path
from sweeps import conditions, grid_file, search, tasks
from sweeps.quiet import quiet_keras_backend
from sweeps.data import DATASETS
from sweeps.data import is_given
from sweeps.data import is_path as is_dataset_path
from sweeps.noise import NOISE_TARGETS, NOISE_TYPES
from sweeps.data.arrays import holdout_problem
from sweeps.optimizers import LR_SCHEDULES, MOMENTUM_OPTIMIZERS
from sweeps.tasks.base import ConfigError, is_int as _int, is_number as _number

GRID_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grids")
# A typo (a list pasted into every axis) can ask for billions of trials:
# refuse before expanding anything.
MAX_TRIALS = 100_000
# Past this no run ends (a million MNIST epochs of the smallest MLP: years on a GPU); a
# larger number is a typo (10**21) that would otherwise plan, size and record a run.
MAX_EPOCHS = 100_000
OPTIMIZERS = ("sgd", "adam", "adadelta", "rmsprop", "adagrad", "nadam")
VALIDATIONS = ("test", "holdout")
# Keras's names of the activations a hidden layer may take.
ACTIVATIONS = ("relu", "softmax", "sigmoid", "tanh", "elu", "selu", "gelu", "swish", "leaky_relu", "linear")

BASE_DEFAULTS = {
    "dataset": "mnist",
    "noise_type": "none",
    "noise_scale": 0.0,
    "noise_target": "both",
    "noise_clip": False,
    "standardize": False,
    "l2": 0.0,
    "activation": None,  # null: the architecture's own (relu in every seed's)
    "loss_fn": "sparse_categorical_crossentropy",
    "seed": 0,
    "train_subset": None,
    "test_subset": None,
    "validation": "test",
    "holdout_size": 5000,
    "checkpoint_every": 1,
    # Early stopping (sweeps.training.early_stopping), off at null patience. Null defaults leave the
    # identity of configs from before these keys unchanged (sweeps.progress.config_key).
    "patience": None,
    "monitor": None,  # null: val_loss
    "min_delta": None,  # null: 0
    # What a config is scored on after training, and how often during it (sweeps.conditions).
    "evaluate": None, "evaluate_every": None,
}
TRAINING_KEYS = ("optimizer", "lr", "batch_size", "epochs")
# The optimizer's options (sweeps.optimizers.make_optimizer); null: Keras's default, constant lr.
OPTIMIZER_KEYS = ("momentum", "nesterov", "lr_schedule", "lr_decay_epochs", "lr_decay_factor")
# Keys only some tasks take (a task's KEYS), in the order the tasks declare them.
TASK_KEYS = tuple(dict.fromkeys(k for t in tasks.all_tasks().values() for k in t.KEYS))
AXES = ("arch", *BASE_DEFAULTS, *TRAINING_KEYS, *OPTIMIZER_KEYS, *TASK_KEYS)
LOSSES = tuple(dict.fromkeys(loss for t in tasks.all_tasks().values() for loss in t.LOSSES))
# Keys whose one value is itself a list: never expanded as an axis.
LIST_VALUED = ("evaluate", *dict.fromkeys(k for t in tasks.all_tasks().values() for k in t.LIST_VALUED))
class GridError(ValueError):
    """An invalid grid: one line naming the file, the key and the value."""


@dataclass
class Grid:
    """A validated, expanded grid."""

    name: str
    path: str
    variant: str | None
    trials: list[dict] = field(default_factory=list)
    duplicates_dropped: int = 0
    overrides: dict = field(default_factory=dict)  # the command line's, applied to every trial
    search: dict | None = None  # a search section's spec (sweeps.search); then `trials` is its base

    @property
    def label(self) -> str:
        return self.name + (f":{self.variant}" if self.variant else "")


# axis -> (check, what a valid value is)
_CHECKS = {
    "dataset": (lambda v: v in DATASETS or is_dataset_path(v) or is_given(v),
                f"one of {', '.join(DATASETS)}, or a file of your own (.npz) or folder of IDX files"),
    "arch": (lambda v: v in ARCHITECTURES or is_import_path(v),
             "one of " + "; ".join(f"{', '.join(archs_of(t))} ({t})" for t in tasks.all_tasks())
             + "; or a builder of your own by import path, module:function"),
    "noise_type": (lambda v: v in NOISE_TYPES, f"one of {', '.join(NOISE_TYPES)}"),
    "noise_scale": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "noise_target": (lambda v: v in NOISE_TARGETS, f"one of {', '.join(NOISE_TARGETS)}"),
    "noise_clip": (lambda v: isinstance(v, bool), "true or false"),
    "standardize": (lambda v: isinstance(v, bool), "true or false"),
    "l2": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "activation": (lambda v: v is None or v in ACTIVATIONS, f"null or one of {', '.join(ACTIVATIONS)}"),
    "loss_fn": (lambda v: v in LOSSES, f"one of {', '.join(LOSSES)}"),
    "seed": (lambda v: _int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "train_subset": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1, or null for all"),
    "test_subset": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1, or null for all"),
    "validation": (lambda v: v in VALIDATIONS, f"one of {', '.join(VALIDATIONS)}"),
    "holdout_size": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "checkpoint_every": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "patience": (lambda v: v is None or (_int(v) and v >= 0), "an integer >= 0 (epochs), or null for no early stopping"),
    "min_delta": (lambda v: v is None or (_number(v) and v >= 0), "a number >= 0, or null for 0"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "epochs": (lambda v: _int(v) and 1 <= v <= MAX_EPOCHS, f"an integer in [1, {MAX_EPOCHS:,}]"),
    "momentum": (lambda v: v is None or (_number(v) and 0 <= v < 1), "a number in [0, 1), or null"),
    "nesterov": (lambda v: v is None or isinstance(v, bool), "true, false or null"),
    "lr_schedule": (lambda v: v is None or v in LR_SCHEDULES, f"null (constant) or one of {', '.join(LR_SCHEDULES)}"),
    "lr_decay_epochs": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1 (epochs), or null for 10"),
    "lr_decay_factor": (lambda v: v is None or (_number(v) and 0 < v <= 1), "a number in (0, 1], or null for 0.1"),
    "evaluate": (lambda v: v is None or isinstance(v, (dict, str)), "a mapping of test-time conditions, or null"),
    "evaluate_every": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1 (epochs), or null for the end only"),
}
for _task in tasks.all_tasks().values():
    # A task's own keys come with their checks (a key without one takes any value).
    for _key in _task.KEYS:
        _CHECKS.setdefault(_key, _task.CHECKS.get(_key, (lambda v: True, "any value")))
# What a trial can be stopped on: the metrics some task reports every epoch.
_MONITORS = tasks.monitors()
_CHECKS["monitor"] = (lambda v: v is None or v in _MONITORS, f"null (val_loss) or one of {', '.join(_MONITORS)}")
assert set(_CHECKS) == set(AXES)


def check_value(where: str, key: str, value, shown: str | None = None) -> None:
    """Raise GridError unless `value` is valid for axis `key`; `where` names the file,
    `shown` the key as the user wrote it (default `key`)."""
    if key == "arch" and is_import_path(value):
        quiet_keras_backend()  # the builder's module may import Keras: TensorFlow's start-up lines kept off
        try:
            resolve_arch(value)  # imported and registered: its options become axes
        except ArchError as e:
            raise GridError(f"{where}: {shown or key} = {value!r}: {e}") from None
    if key == "dataset" and is_dataset_path(value) and not os.path.exists(value):
        raise GridError(f"{where}: {shown or key} = {value!r}: no such file or folder (from {os.getcwd()})")
    if key == "evaluate" and isinstance(value, dict):
        try:
            checked = conditions.check(value)
        except conditions.ConditionError as e:
            raise GridError(f"{where}: {shown or key}.{e.key} = {e.value!r}: {e.why}") from None
        for axis, v in checked.get("baseline", {}).items():
            if axis not in _CHECKS:
                raise GridError(f"{where}: {shown or key}.baseline.{axis}: unknown key{_did_you_mean(axis, list(AXES))}; "
                                f"known axes: {', '.join(AXES)}")
            check_value(where, axis, v, f"{shown or key}.baseline.{axis}")
    ok, want = _CHECKS[key]
    try:
        valid = ok(value)
    except TypeError:  # an unhashable value (a mapping) tested for membership
        valid = False
    if not valid:
        raise GridError(f"{where}: {shown or key} = {value!r}: must be {want}")


def _did_you_mean(key, known: list[str]) -> str:
    """", did you mean K?" where `key` is a letter or two from a known key K (a misspelling)."""
    close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_axes(where: str, path: str, axes, options: dict) -> None:
    """Each axis of a section and each of its values; `options`: the builder options of
    the grid's architectures (builder_options), axes too."""
    if not isinstance(axes, dict):
        raise GridError(f"{where}: {path} = {axes!r}: must be a mapping of axis: value or [values]")
    for key, value in axes.items():
        if key not in _CHECKS and key not in options:
            mine = f"; the grid's builders' options: {', '.join(options)}" if options else ""
            raise GridError(f"{where}: {path}{key}: unknown key{_did_you_mean(key, [*AXES, *options])}; "
                            f"known axes: {', '.join(AXES)}{mine}")
        values = value if isinstance(value, list) and key not in LIST_VALUED else [value]
        if not values:
            raise GridError(f"{where}: {path}{key} = []: an axis needs at least one value")
        for v in values:
            if key in _CHECKS:
                check_value(where, key, v, f"{path}{key}")
            else:
                _check_option(where, f"{path}{key}", v, *options[key])


# A builder option's default type -> (check, what a valid value is); null is always valid
# (the builder's own default).
_OPTION_TYPES = [
    (bool, lambda v: isinstance(v, bool), "true or false"),
    (int, _int, "an integer"),
    (float, _number, "a number"),
    (str, lambda v: isinstance(v, str), "a string"),
]


def _check_option(where: str, shown: str, value, default, arch: str) -> None:
    if value is None:
        return
    for kind, ok, want in _OPTION_TYPES:
        if isinstance(default, kind):
            if not ok(value):
                raise GridError(f"{where}: {shown} = {value!r}: must be {want} or null "
                                f"({arch}'s builder has {shown.rsplit('.', 1)[-1]}={default!r})")
            return
    if not isinstance(value, (bool, int, float, str)):
        raise GridError(f"{where}: {shown} = {value!r}: must be a number, a string, true/false or null")


def builder_options(where: str, doc) -> dict:
    """Option name -> (its default, the architecture) for the builders of one's own the grid
    document names anywhere (defaults, blocks, tiny, or bare), by import path or as given
    in Python, each checked here: a path that does not import, or a builder that breaks the
    contract, is refused."""
    sections = [doc] if isinstance(doc, dict) else []
    for name in ("defaults", "tiny"):
        if isinstance(doc, dict) and isinstance(doc.get(name), dict):
            sections.append(doc[name])
    if isinstance(doc, dict) and isinstance(doc.get("blocks"), list):
        sections += [b for b in doc["blocks"] if isinstance(b, dict)]
    options: dict = {}
    for i, section in enumerate(sections):
        values = section.get("arch")
        for arch in values if isinstance(values, list) else [values]:
            if is_import_path(arch) or (isinstance(arch, str) and arch in ARCHITECTURES):
                check_value(where, "arch", arch)
                for key, default in resolve_arch(arch).option_defaults.items():
                    options.setdefault(key, (default, arch))
    return options


def _check_trial(where: str, block: str, cfg: dict) -> None:
    """Checks that span several axes, made on each expanded trial: the grid's, then its task's."""
    task, arch = tasks.get(cfg["task"]), cfg["arch"]
    for key in TASK_KEYS:
        if key in cfg and key not in task.KEYS:
            takers = [t for t in tasks.all_tasks().values() if key in t.KEYS]
            if task.FAMILY in {t.FAMILY for t in takers}:
                only = " and ".join(f"the {a}" for t in takers for a in archs_of(t.NAME))
                why = f"only {only} has a {key}, not {arch}"
            else:
                families = "/".join(dict.fromkeys(t.FAMILY for t in takers))
                archs = ", ".join(a for t in takers for a in archs_of(t.NAME))
                why = f"only {families} trials take it (arch one of {archs}), not {arch}"
            raise GridError(f"{where}: {block}{key} = {cfg[key]!r}: {why}")
    # A builder's option (models.Arch.options) given to an architecture whose builder lacks it.
    for key in dict.fromkeys(o for a in ARCHITECTURES.values() for o in a.options):
        if cfg.get(key) is not None and key not in options_of(arch):
            takers = ", ".join(a for a in ARCHITECTURES if key in options_of(a))
            what = "their hidden layers" if key == "activation" else "an option of their builders"
            raise GridError(f"{where}: {block}{key} = {cfg[key]!r}: only {takers} take it ({what}), not {arch}")
    if cfg["loss_fn"] not in task.LOSSES:
        raise GridError(f"{where}: {block}loss_fn = {cfg['loss_fn']!r}: {arch} is a {task.MODEL}; "
                        f"its loss must be one of {', '.join(task.LOSSES)}")
    try:
        task.check(cfg)
    except ConfigError as e:
        raise GridError(f"{where}: {block}{e.key} = {cfg.get(e.key)!r}: {e.why}") from None
    kind, scale = cfg["noise_type"], cfg["noise_scale"]
    if kind == "none" and scale != 0:
        raise GridError(f"{where}: {block}noise_scale = {scale!r}: must be 0 when noise_type is none")
    if kind == "salt_and_pepper" and scale > 1:
        raise GridError(f"{where}: {block}noise_scale = {scale!r}: a salt_and_pepper level must be in [0, 1]")
    if cfg.get("momentum") is not None and cfg["optimizer"] not in MOMENTUM_OPTIMIZERS:
        raise GridError(f"{where}: {block}momentum = {cfg['momentum']!r}: only {' and '.join(MOMENTUM_OPTIMIZERS)} "
                        f"take a momentum, not {cfg['optimizer']}")
    if cfg.get("nesterov") and cfg["optimizer"] != "sgd":
        raise GridError(f"{where}: {block}nesterov = True: only optimizer sgd takes it, not {cfg['optimizer']}")
    for key in ("lr_decay_epochs", "lr_decay_factor"):
        if cfg.get(key) is not None and cfg.get("lr_schedule") != "step":
            raise GridError(f"{where}: {block}{key} = {cfg[key]!r}: only with lr_schedule: step")
    if cfg["patience"] is None:
        for key in ("monitor", "min_delta"):
            if cfg[key] is not None:
                raise GridError(f"{where}: {block}{key} = {cfg[key]!r}: early stopping needs a patience "
                                "(patience: 5 stops after 5 epochs without improvement)")
    elif cfg["monitor"] is not None and cfg["monitor"] not in task.EPOCH_METRICS:
        raise GridError(f"{where}: {block}monitor = {cfg['monitor']!r}: a {task.MODEL} ({arch}) reports "
                        f"{', '.join(task.EPOCH_METRICS)} every epoch")
    found = conditions.config_problem(cfg, task)
    if found:
        raise GridError(f"{where}: {block}{found[0]} = {found[1]!r}: {found[2]}")
    problem = cfg["validation"] == "holdout" and cfg["train_subset"] and holdout_problem(
        cfg["holdout_size"], cfg["train_subset"], "images of train_subset")
    if problem:
        raise GridError(f"{where}: {block}{problem}")


def _expand(axes: dict) -> list[dict]:
    keys = list(axes)
    lists = [v if isinstance(v, list) and k not in LIST_VALUED else [v] for k, v in axes.items()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def expand(doc, where: str, variant: str | None = None, overrides: dict | None = None) -> tuple[list[dict], int]:
    """A parsed grid document -> (unique trial configs in order, duplicates dropped)."""
    if not isinstance(doc, dict) or not doc:
        raise GridError(f"{where}: the file must hold a mapping (axes, or defaults/blocks/tiny)")
    sections = {"defaults", "blocks", "tiny"}
    options = builder_options(where, doc)
    for key in doc:
        if key not in sections and key not in _CHECKS and key not in options:
            mine = f"; the grid's builders' options: {', '.join(options)}" if options else ""
            raise GridError(f"{where}: {key}: unknown key{_did_you_mean(key, [*sections, *AXES, *options])}; known: "
                            f"{', '.join(sorted(sections))}, or an axis ({', '.join(AXES)}){mine}")
    bare = {k: v for k, v in doc.items() if k in _CHECKS or k in options}
    if "blocks" in doc:
        if bare:
            raise GridError(f"{where}: {next(iter(bare))}: axes go inside `blocks` or `defaults` when `blocks` is present")
        blocks = doc["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise GridError(f"{where}: blocks = {blocks!r}: must be a non-empty list of axis mappings")
    else:
        blocks = [bare]
    defaults = doc.get("defaults") or {}
    _check_axes(where, "defaults.", defaults, options)
    tiny = doc.get("tiny") or {}
    _check_axes(where, "tiny.", tiny, options)
    if variant not in (None, "tiny"):
        raise GridError(f"{where}: variant {variant!r}: the only variant is 'tiny'")
    if variant == "tiny" and "tiny" not in doc:
        raise GridError(f"{where}: tiny: this grid declares no tiny variant")
    overrides = overrides or {}
    for key, value in overrides.items():
        check_value("command line", key, value, f"--{key.replace('_', '-')}")

    merged = []
    for i, block in enumerate(blocks):
        label = f"blocks[{i}]." if "blocks" in doc else ""
        _check_axes(where, label, block, options)
        axes = {**defaults, **block, **(tiny if variant == "tiny" else {})}
        if "arch" not in axes:
            raise GridError(f"{where}: {label}arch: missing; every trial needs an architecture")
        merged.append((label, axes))
    total = sum(math.prod(len(v) if isinstance(v, list) and k not in LIST_VALUED else 1 for k, v in axes.items())
                for _, axes in merged)
    if total > MAX_TRIALS:
        raise GridError(f"{where}: the grid expands to {total:,} trials, more than {MAX_TRIALS:,}; "
                        "split it or shorten its axes")

    trials, seen, generated = [], set(), 0
    for label, axes in merged:
        for partial in _expand(axes):
            generated += 1
            cfg = trial_config(partial, overrides)
            _check_trial(where, label, cfg)
            key = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()))
            if key not in seen:
                seen.add(key)
                trials.append(cfg)
    return trials, generated - len(trials)


def trial_config(partial: dict, overrides: dict) -> dict:
    """One expanded combination -> the trial's full config: `arch`, then `task`, then the rest."""
    arch = partial["arch"]
    task = tasks.for_arch(arch)
    cfg = {**BASE_DEFAULTS, **task.DEFAULTS, **arch_defaults(arch), **partial, **overrides}
    cfg = {"arch": cfg.pop("arch"), "task": task.NAME, **cfg}
    cfg["evaluate"] = conditions.canonical(cfg["evaluate"])
    return task.finalize(cfg)


def known_grids() -> list[str]:
    return sorted(f[:-5] for f in os.listdir(GRID_DIR) if f.endswith(".yaml"))


def resolve(spec: str) -> tuple[str, str, str | None]:
    """`NAME`, `NAME:tiny`, `PATH` or `PATH:tiny` -> (name, path, variant)."""
    variant = None
    if spec.endswith(":tiny"):
        spec, variant = spec[: -len(":tiny")], "tiny"
    if os.path.isfile(spec):
        return os.path.splitext(os.path.basename(spec))[0], spec, variant
    path = os.path.join(GRID_DIR, f"{spec}.yaml")
    if os.path.sep not in spec and os.path.isfile(path):
        return spec, path, variant
    raise GridError(f"--grid {spec!r}: no such grid file or named grid; named grids: {', '.join(known_grids())}")


def load_grid(spec: str, overrides: dict | None = None) -> Grid:
    """Read, validate and expand the grid `spec` (a name or a path, optionally `:tiny`)."""
    name, path, variant = resolve(spec)
    try:
        doc = grid_file.read(path)
    except grid_file.Unreadable as e:
        raise GridError(str(e)) from None
    searching = isinstance(doc, dict) and search.SECTION in doc
    if searching:
        doc = dict(doc)
        section = doc.pop(search.SECTION)
        tiny = doc.get("tiny")
        if isinstance(tiny, dict) and search.SECTION in tiny:
            # The tiny variant's search overrides the section's keys (a smaller budget).
            tiny = dict(tiny)
            smaller = tiny.pop(search.SECTION)
            doc["tiny"] = tiny
            if variant == "tiny" and isinstance(section, dict) and isinstance(smaller, dict):
                section = {**section, **smaller}
    trials, dropped = expand(doc, path, variant, overrides)
    grid = Grid(name=name, path=path, variant=variant, trials=trials, duplicates_dropped=dropped,
                overrides=dict(overrides or {}))
    if searching:
        grid.search = search_spec(path, section, trials)
    return grid


def search_spec(where: str, section, trials: list[dict]) -> dict:
    """A grid's `search` section checked against its base config (sweeps.search): each drawn
    axis's choices and range ends are valid values, alone and with the base's other axes."""
    if len(trials) != 1:
        raise GridError(f"{where}: search: the grid's axes must take one value each (the base every sample "
                        f"starts from); they expand to {len(trials)} configs")
    base = trials[0]
    try:
        spec = search.parse(section, base)
    except search.SearchError as e:
        raise GridError(f"{where}: {e}") from None
    drawn = search.values(spec)
    for key in drawn:
        if key not in _CHECKS:
            raise GridError(f"{where}: search.space.{key}: unknown axis; known: {', '.join(AXES)}")
    # Each value with the other drawn axes at their last (a momentum's top beside Nesterov's).
    top = {k: v[-1] for k, v in drawn.items()}
    for key, checked in drawn.items():
        for value in checked:
            check_value(where, key, value, f"search.space.{key}")
            _check_trial(where, "search.space: ", trial_config({**base, **top, key: value}, {}))
    return spec
