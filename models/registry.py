"""The registry: architecture name -> builder, the task it trains under (sweeps.tasks) and
the reference studies' training defaults.

A classifier of one's own needs no registering: a grid names its builder by import path,
`arch: mypkg.nets:small_resnet`, and it is registered under that name the first time it
is looked up (on the driver as the grid is checked, in each worker as its trial starts).
The builder's contract: it is called with `l2` (the L2 factor its regularisers take),
`input_shape` (H, W, C) and `num_classes`, and returns an uncompiled Keras model; each
other keyword parameter with a plain default (a number, a string, true/false or null)
is a grid axis of that model (width, depth, a dropout rate), checked against the type of
its default.
"""

from __future__ import annotations

import importlib
import inspect
import re
from dataclasses import dataclass, field
from typing import Callable

_BCE = {"loss_fn": "binary_crossentropy"}
# The denoisers' hidden layers take an activation (study 002 varies it on dae_conv).
_HIDDEN = ("activation",)
# The seeds train their MLPs and the 3a CNN with plain SGD at 0.1, batch 128.
_SGD = {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "epochs": 10}


@dataclass(frozen=True)
class Arch:
    """Where an architecture's builder lives and how the seeds trained it."""

    module: str
    function: str
    description: str
    defaults: dict = field(default_factory=dict)
    task: str = "classify"
    # Grid axes its builder takes as keyword options (sweeps.grids passes them on).
    options: tuple = ()
    # An option's default, where the builder gives one (a builder named by import path):
    # what a trial that leaves it out trains with, and the type its values must have.
    option_defaults: dict = field(default_factory=dict)
    # A builder given as a Python object (noisesweep.run(models=...): a notebook's function),
    # shipped to the workers by value; None for one found by module and function.
    builder: Callable | None = field(default=None, compare=False, repr=False)


ARCHITECTURES: dict[str, Arch] = {
    # Classifiers: images -> class scores.
    "mlp64": Arch("models.mlp", "mlp64", "study 001 2a: Dense64-Dense64-Dense10, 55,050 params", _SGD),
    "mlp500_300": Arch(
        "models.mlp",
        "mlp500_300",
        "study 001 2d: Dense500-Dense300-Dense10, 545,810 params",
        {**_SGD, "epochs": 40},
    ),
    "cnn": Arch("models.cnn", "cnn", "study 001 3a: 3 convs, Dense64, 93,322 params", _SGD),
    # Study 000 used Keras 2's Adadelta default (lr 0.001): its low accuracies
    # come from that, and reproducing the study means keeping it.
    "cnn_keras": Arch(
        "models.cnn",
        "cnn_keras",
        "study 000: Keras mnist_cnn example, 1,199,882 params",
        {"optimizer": "adadelta", "lr": 0.001, "batch_size": 128, "epochs": 12},
    ),
    # Study 003's classifier (trained on clean images, then judging denoised ones).
    "mlp256": Arch(
        "models.mlp",
        "mlp256",
        "study 003: Dense256-Dense256-Dense10, 269,322 params",
        {"optimizer": "adam", "lr": 0.001, "batch_size": 512, "epochs": 3},
    ),
    # Image-to-image models for denoising studies, trained on (noisy -> clean) pairs; their
    # defaults name the reference classifier the study judged the denoised images with.
    "dae_dense": Arch("models.autoencoders", "dae_dense", "study 001 part 4: 784-128-96-128-784, 226,416 params",
                      {"optimizer": "adam", "lr": 0.001, "batch_size": 64, "epochs": 32, **_BCE,
                       "classifier": "cnn"}, task="denoise", options=_HIDDEN),
    # Study 003 stopped early (patience 5, at most 100 epochs): grids say so with `patience`
    # (denoise_gaussian); without it a sweep trains these fixed epochs.
    "dae_small": Arch("models.autoencoders", "dae_small", "study 003: 784-64-784, 101,200 params",
                      {"optimizer": "adam", "lr": 0.001, "batch_size": 512, "epochs": 30, **_BCE,
                       "classifier": "mlp256"}, task="denoise", options=_HIDDEN),
    "dae_conv": Arch("models.autoencoders", "dae_conv", "study 002: conv 12-14 / convT 12-1, 3,279 params",
                     # Study 002 set no batch size: Keras's 32. Its "Train on 55000 samples"
                     # is Keras 2 / TF 1's, whose Adadelta default rate was 1.0 (TF 2's: 0.001).
                     {"optimizer": "adadelta", "lr": 1.0, "batch_size": 32, "epochs": 10, **_BCE,
                      "classifier": "cnn"}, task="denoise", options=_HIDDEN),
    # Study 004 looked at reconstructions and the latent space, not at a classifier.
    "vae": Arch("models.autoencoders", "vae", "study 004 architecture 3: conv VAE, 5,285 params at latent 2",
                {"optimizer": "adam", "lr": 0.001, "batch_size": 100, "epochs": 30, **_BCE,
                 "classifier": None, "latent_dim": 2}, task="vae"),
}


# How a builder named by import path trains unless its grid says otherwise: Keras's Adam
# at its default rate, Keras's fit's usual batch, 10 epochs.
OWN_DEFAULTS = {"optimizer": "adam", "lr": 0.001, "batch_size": 128, "epochs": 10}
# What a builder is called with: the contract every classifier's builder keeps.
CONTRACT = ("l2", "input_shape", "num_classes")
IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_PLAIN = (bool, int, float, str, type(None))


class ArchError(ValueError):
    """An architecture that cannot be had: one line saying why."""


def is_import_path(name) -> bool:
    return isinstance(name, str) and bool(IMPORT_PATH.match(name))


def resolve(name: str) -> Arch:
    """The registered architecture `name`, registering a builder named by import path
    (`module:function`) the first time; ArchError saying why one cannot be had."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    if not is_import_path(name):
        raise ArchError(f"unknown architecture {name!r}")
    module_name, function = name.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # the user's module: whatever it raised is theirs to read
        raise ArchError(f"cannot import {module_name} ({type(e).__name__}: {_first_line(e)})") from None
    builder = getattr(module, function, None)
    if not callable(builder):
        raise ArchError(f"{module_name} has no function {function}")
    arch = arch_of(builder, module_name, function)
    register(name, arch)
    return arch


def arch_of(builder: Callable, module: str, function: str, keep: bool = False) -> Arch:
    """The Arch of a classifier's builder, read from its signature (the contract, and its
    options with their defaults); `keep`: the Arch carries the builder itself."""
    try:
        params = inspect.signature(builder).parameters
    except (TypeError, ValueError):
        raise ArchError(f"{module}:{function} has no signature to read") from None
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    missing = [c for c in CONTRACT if c not in params and not takes_any]
    if missing:
        raise ArchError(f"its builder takes no {', '.join(missing)} (a builder is called with "
                        f"{', '.join(CONTRACT)})")
    defaults = {p.name: p.default for p in params.values()
                if p.name not in CONTRACT and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                and p.default is not p.empty and isinstance(p.default, _PLAIN)}
    required = [p.name for p in params.values() if p.name not in CONTRACT and p.default is p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if required:
        raise ArchError(f"its builder's {', '.join(required)} has no default (a grid axis needs one)")
    doc = (inspect.getdoc(builder) or "").strip().splitlines()
    return Arch(module, function, doc[0] if doc else "a model of your own", dict(OWN_DEFAULTS), "classify",
                tuple(defaults), defaults, builder if keep else None)


def use_builder(name: str, builder: Callable) -> Arch:
    """Register `builder`, a Python object (a function defined in a notebook), as the
    classifier `name`, replacing the one given before under that name (a cell run again);
    ArchError for a built-in's name or a builder that breaks the contract."""
    if name in ARCHITECTURES and ARCHITECTURES[name].builder is None:
        raise ArchError(f"{name!r} is an architecture already ({ARCHITECTURES[name].description}); "
                        "give yours another name")
    if not callable(builder):
        raise ArchError(f"a {type(builder).__name__} is no builder (a function returning a Keras model)")
    arch = arch_of(builder, getattr(builder, "__module__", "__main__") or "__main__",
                   getattr(builder, "__qualname__", name), keep=True)
    ARCHITECTURES[name] = arch
    return arch


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else repr(e)


def register(name: str, arch: Arch) -> None:
    """Add an architecture (a task of one's own registers its models when imported)."""
    if name in ARCHITECTURES and ARCHITECTURES[name] != arch:
        raise ValueError(f"architecture {name!r} is registered already, as {ARCHITECTURES[name]}")
    ARCHITECTURES[name] = arch


def archs_of(*tasks: str) -> list[str]:
    """The architectures that train under the given tasks, in registry order."""
    return [name for name, arch in ARCHITECTURES.items() if arch.task in tasks]


def options_of(name: str) -> tuple:
    """The grid axes the builder of `name` takes as keyword options."""
    return resolve(name).options


def chosen_options(config: dict) -> dict:
    """The builder options a trial config gives its architecture (null: the builder's own)."""
    return {k: config[k] for k in options_of(config["arch"]) if config.get(k) is not None}


def arch_defaults(name: str) -> dict:
    """Training defaults the seeds used for `name` (optimizer, lr, batch_size, epochs; for a
    denoiser also its loss and reference classifier), and its builder's option defaults."""
    arch = resolve(name)
    return {**arch.option_defaults, **arch.defaults}


def build_model(name: str, l2: float = 0.0, input_shape=(28, 28, 1), **options):
    """Build the uncompiled Keras model registered as `name`; options go to its builder
    (num_classes for a classifier, latent_dim for the vae)."""
    try:
        arch = resolve(name)
    except ArchError as e:
        raise KeyError(f"{e}; known: {', '.join(sorted(ARCHITECTURES))}") from None
    builder = arch.builder or getattr(importlib.import_module(arch.module), arch.function)
    return builder(l2=l2, input_shape=tuple(input_shape), **options)
