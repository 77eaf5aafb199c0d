"""Named grids: YAML files in `sweeps/grids/`, validated and expanded into trial configs.

A grid file holds axes (lists expand as a cross product), either at top
level or as several `blocks` whose trials are joined, plus optional
`defaults` shared by every block and a `tiny` mapping of overrides for a
quick local run (`--grid NAME:tiny`). Every value is checked before Ray
starts; the first problem raises GridError naming file, key and value.

Precedence, lowest first: BASE_DEFAULTS, the architecture's seed defaults
(models.arch_defaults), the file's `defaults`, the block, `tiny`, and the
command line's overrides.

A trial whose `arch` is a denoiser (models.DENOISERS) is a denoise trial: it
trains the autoencoder on noisy -> clean images at the grid's noise level and
then evaluates at every level of `eval_levels`, judged by the reference
`classifier`. Its config gets `kind: denoise` and the DENOISE_DEFAULTS keys;
those keys are refused on a classification trial.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field

import yaml

from models import ARCHITECTURES, DENOISERS, arch_defaults
from sweeps.data import DATASETS
from sweeps.noise import NOISE_TARGETS, NOISE_TYPES

GRID_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "grids")
# A typo (a list pasted into every axis) can ask for billions of trials:
# refuse before expanding anything.
MAX_TRIALS = 100_000
OPTIMIZERS = ("sgd", "adam", "adadelta", "rmsprop", "adagrad", "nadam")
CLASSIFIER_LOSSES = ("sparse_categorical_crossentropy", "categorical_crossentropy")
DENOISER_LOSSES = ("binary_crossentropy", "mse")
LOSSES = CLASSIFIER_LOSSES + DENOISER_LOSSES
VALIDATIONS = ("test", "holdout")

BASE_DEFAULTS = {
    "dataset": "mnist",
    "noise_type": "none",
    "noise_scale": 0.0,
    "noise_target": "both",
    "noise_clip": False,
    "standardize": False,
    "l2": 0.0,
    "loss_fn": "sparse_categorical_crossentropy",
    "seed": 0,
    "train_subset": None,
    "test_subset": None,
    "validation": "test",
    "holdout_size": 5000,
    "checkpoint_every": 1,
}
TRAINING_KEYS = ("optimizer", "lr", "batch_size", "epochs")
# Seed 001 4b/4c: test levels 0, 0.1, ..., 1.
DEFAULT_EVAL_LEVELS = [round(0.1 * i, 1) for i in range(11)]
DENOISE_DEFAULTS = {
    "classifier": None,  # reference classifier arch; null: reconstruction error only
    "classifier_epochs": None,  # null: the classifier's own seed default
    "eval_levels": None,  # null: DEFAULT_EVAL_LEVELS
}
# Denoise-only keys; latent_dim only for the vae.
DENOISE_KEYS = (*DENOISE_DEFAULTS, "latent_dim")
# Keys whose one value is itself a list: never expanded as an axis.
LIST_VALUED = ("eval_levels",)
AXES = ("arch", *BASE_DEFAULTS, *TRAINING_KEYS, *DENOISE_KEYS)
# Columns of the dry-run table, in reading order.
TABLE_COLUMNS = ("dataset", "arch", "noise_type", "noise_scale", "noise_target", "l2",
                 "optimizer", "lr", "batch_size", "epochs", "classifier", "latent_dim", "seed")


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

    @property
    def label(self) -> str:
        return self.name + (f":{self.variant}" if self.variant else "")


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a number (YAML 1.1 wants `1.0e-3`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# axis -> (check, what a valid value is)
_CHECKS = {
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "arch": (lambda v: v in ARCHITECTURES or v in DENOISERS,
             f"one of {', '.join(ARCHITECTURES)} (classifiers) or {', '.join(DENOISERS)} (denoisers)"),
    "noise_type": (lambda v: v in NOISE_TYPES, f"one of {', '.join(NOISE_TYPES)}"),
    "noise_scale": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "noise_target": (lambda v: v in NOISE_TARGETS, f"one of {', '.join(NOISE_TARGETS)}"),
    "noise_clip": (lambda v: isinstance(v, bool), "true or false"),
    "standardize": (lambda v: isinstance(v, bool), "true or false"),
    "l2": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "loss_fn": (lambda v: v in LOSSES, f"one of {', '.join(LOSSES)}"),
    "seed": (lambda v: _int(v) and 0 <= v < 2**32, "an integer in [0, 2**32)"),
    "train_subset": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1, or null for all"),
    "test_subset": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1, or null for all"),
    "validation": (lambda v: v in VALIDATIONS, f"one of {', '.join(VALIDATIONS)}"),
    "holdout_size": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "checkpoint_every": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "optimizer": (lambda v: v in OPTIMIZERS, f"one of {', '.join(OPTIMIZERS)}"),
    "lr": (lambda v: _number(v) and v > 0, "a number > 0"),
    "batch_size": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "epochs": (lambda v: _int(v) and v >= 1, "an integer >= 1"),
    "classifier": (lambda v: v is None or v in ARCHITECTURES, f"null or one of {', '.join(ARCHITECTURES)}"),
    "classifier_epochs": (lambda v: v is None or (_int(v) and v >= 1), "an integer >= 1, or null for its default"),
    "eval_levels": (lambda v: v is None or (isinstance(v, list) and len(v) > 0 and all(_number(x) and x >= 0 for x in v)),
                    "a non-empty list of numbers >= 0, or null for 0, 0.1, ..., 1"),
    "latent_dim": (lambda v: _int(v) and 1 <= v <= 1024, "an integer in [1, 1024]"),
}
assert set(_CHECKS) == set(AXES)


def check_value(where: str, key: str, value, shown: str | None = None) -> None:
    """Raise GridError unless `value` is valid for axis `key`; `where` names the file,
    `shown` the key as the user wrote it (default `key`)."""
    ok, want = _CHECKS[key]
    try:
        valid = ok(value)
    except TypeError:  # an unhashable value (a mapping) tested for membership
        valid = False
    if not valid:
        raise GridError(f"{where}: {shown or key} = {value!r}: must be {want}")


def _check_axes(where: str, path: str, axes) -> None:
    if not isinstance(axes, dict):
        raise GridError(f"{where}: {path} = {axes!r}: must be a mapping of axis: value or [values]")
    for key, value in axes.items():
        if key not in _CHECKS:
            raise GridError(f"{where}: {path}{key}: unknown key; known axes: {', '.join(AXES)}")
        values = value if isinstance(value, list) and key not in LIST_VALUED else [value]
        if not values:
            raise GridError(f"{where}: {path}{key} = []: an axis needs at least one value")
        for v in values:
            check_value(where, key, v, f"{path}{key}")


def _check_denoise(where: str, block: str, cfg: dict) -> None:
    arch = cfg["arch"]
    if cfg["loss_fn"] not in DENOISER_LOSSES:
        raise GridError(f"{where}: {block}loss_fn = {cfg['loss_fn']!r}: {arch} is a denoiser; "
                        f"its loss must be one of {', '.join(DENOISER_LOSSES)}")
    if cfg["noise_type"] == "none":
        raise GridError(f"{where}: {block}noise_type = 'none': {arch} is a denoiser; it needs "
                        "gaussian or salt_and_pepper noise (noise_scale is its training level, 0 allowed)")
    for key, bad, why in (("standardize", True, "its sigmoid output is in [0, 1]"),
                          ("validation", "holdout", "it validates on the noisy test set")):
        if cfg[key] == bad:
            raise GridError(f"{where}: {block}{key} = {bad!r}: not for denoiser {arch}: {why}")
    if "latent_dim" in cfg and arch != "vae":
        raise GridError(f"{where}: {block}latent_dim = {cfg['latent_dim']!r}: only the vae has a latent_dim, not {arch}")
    if cfg["noise_type"] == "salt_and_pepper" and any(x > 1 for x in eval_levels(cfg)):
        raise GridError(f"{where}: {block}eval_levels = {cfg['eval_levels']!r}: salt_and_pepper levels must be in [0, 1]")


def _check_trial(where: str, block: str, cfg: dict) -> None:
    """Checks that span several axes, made on each expanded trial."""
    if cfg.get("kind") == "denoise":
        _check_denoise(where, block, cfg)
    else:
        for key in DENOISE_KEYS:
            if key in cfg:
                raise GridError(f"{where}: {block}{key} = {cfg[key]!r}: only denoise trials take it "
                                f"(arch one of {', '.join(DENOISERS)}), not {cfg['arch']}")
        if cfg["loss_fn"] not in CLASSIFIER_LOSSES:
            raise GridError(f"{where}: {block}loss_fn = {cfg['loss_fn']!r}: {cfg['arch']} is a classifier; "
                            f"its loss must be one of {', '.join(CLASSIFIER_LOSSES)}")
    kind, scale = cfg["noise_type"], cfg["noise_scale"]
    if kind == "none" and scale != 0:
        raise GridError(f"{where}: {block}noise_scale = {scale!r}: must be 0 when noise_type is none")
    if kind == "salt_and_pepper" and scale > 1:
        raise GridError(f"{where}: {block}noise_scale = {scale!r}: a salt_and_pepper level must be in [0, 1]")
    if cfg["validation"] == "holdout" and cfg["train_subset"] and cfg["holdout_size"] >= cfg["train_subset"]:
        raise GridError(
            f"{where}: {block}holdout_size = {cfg['holdout_size']!r}: must be smaller than "
            f"train_subset ({cfg['train_subset']})"
        )


def _expand(axes: dict) -> list[dict]:
    keys = list(axes)
    lists = [v if isinstance(v, list) and k not in LIST_VALUED else [v] for k, v in axes.items()]
    return [dict(zip(keys, combo)) for combo in itertools.product(*lists)]


def expand(doc, where: str, variant: str | None = None, overrides: dict | None = None) -> tuple[list[dict], int]:
    """A parsed grid document -> (unique trial configs in order, duplicates dropped)."""
    if not isinstance(doc, dict) or not doc:
        raise GridError(f"{where}: the file must hold a mapping (axes, or defaults/blocks/tiny)")
    sections = {"defaults", "blocks", "tiny"}
    for key in doc:
        if key not in sections and key not in _CHECKS:
            raise GridError(f"{where}: {key}: unknown key; known: {', '.join(sorted(sections))}, or an axis ({', '.join(AXES)})")
    bare = {k: v for k, v in doc.items() if k in _CHECKS}
    if "blocks" in doc:
        if bare:
            raise GridError(f"{where}: {next(iter(bare))}: axes go inside `blocks` or `defaults` when `blocks` is present")
        blocks = doc["blocks"]
        if not isinstance(blocks, list) or not blocks:
            raise GridError(f"{where}: blocks = {blocks!r}: must be a non-empty list of axis mappings")
    else:
        blocks = [bare]
    defaults = doc.get("defaults") or {}
    _check_axes(where, "defaults.", defaults)
    tiny = doc.get("tiny") or {}
    _check_axes(where, "tiny.", tiny)
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
        _check_axes(where, label, block)
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
    """One expanded combination -> the trial's full config, `arch` first."""
    arch = partial["arch"]
    denoise = arch in DENOISERS
    cfg = {**BASE_DEFAULTS, **(DENOISE_DEFAULTS if denoise else {}), **arch_defaults(arch), **partial, **overrides}
    if denoise:
        cfg["kind"] = "denoise"
        # Held as one string: Ray Tune takes a list in a config for a set of separate
        # values, and a string keeps the analysis's group keys hashable.
        cfg["eval_levels"] = " ".join(f"{float(x):g}" for x in cfg["eval_levels"] or DEFAULT_EVAL_LEVELS)
    return {"arch": cfg.pop("arch"), **cfg}


def eval_levels(config: dict) -> list[float]:
    """A denoise trial's evaluation levels, as numbers."""
    return [float(x) for x in config["eval_levels"].split()]


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
        with open(path, encoding="utf-8") as f:
            doc = yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise GridError(f"{path}:{at}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(f"{path}: cannot read: {e}") from None
    trials, dropped = expand(doc, path, variant, overrides)
    return Grid(name=name, path=path, variant=variant, trials=trials, duplicates_dropped=dropped,
                overrides=dict(overrides or {}))
