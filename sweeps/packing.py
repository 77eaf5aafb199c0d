"""Which of a grid's configs train together as one pack (sweeps.training.pack), and how many.

Configs pack together when they may share one vectorised model: the same task, architecture, dataset, optimizer, learning rate, batch size, epochs, subsets,
validation and loss. They may differ in what MEMBER_KEYS names: the replicate seed, the
L2 factor, the noise and early stopping. A group of n such configs becomes ceil(n / K) packs of near-equal
size; a pack of one is an ordinary solo trial. No TensorFlow here: the driver plans packs
before Ray starts (and `--dry-run` shows them).
"""

from __future__ import annotations

import json
import math
import os
import re

from models import arch_defaults, options_of
from sweeps.search import replicate_members

MEMBER_KEYS = ("seed", "l2", "noise_type", "noise_scale", "noise_target", "noise_clip", "standardize",
               # Each member stops early on its own (it is frozen while the others go on).
               "patience", "monitor", "min_delta")
# Members per pack chosen by `--pack auto`, per architecture, measured on a 2-core CPU
# (bench/throughput.py --pack-sizes; bench/RESULTS.md): beyond these, member-epochs per
# second stop rising. The conv nets do not pack on a CPU: XLA's CPU convolutions are 2-3x
# slower than TensorFlow's, and outside XLA both K convolutions in one step and one
# grouped convolution (it has a CPU gradient only with oneDNN) ran slower than K trials
# alone. A model of one's own is measured on this machine instead (sweeps.pack_speed, in
# the runner); one not measured (a built-in one not listed) runs alone on a CPU.
# On a GPU the arithmetic is cheap and packs are limited by memory (not measured here yet).
# The dense denoisers gain less: at their seeds' batch sizes (64, 512) one member alone
# already keeps a core's arithmetic busy (dae_dense K=2 1.34x, dae_small K=4 1.34x).
AUTO_CPU = {"mlp64": 8, "mlp256": 8, "mlp500_300": 8, "cnn": 1, "cnn_keras": 1, "dae_dense": 2, "dae_small": 4}
AUTO_CPU_OTHER = 1
AUTO_GPU = 64
# Each member keeps its noise draws (2 bytes a pixel for Gaussian noise, train and test):
# `auto` keeps a pack's draws within this share of the machine's memory per trial slot.
MEMORY_SHARE = 0.25


class PackingError(ValueError):
    """A --pack value that cannot be used."""


def parse(value: str) -> int | None:
    """`--pack` -> K (members per pack at most), or None for auto."""
    if value == "auto":
        return None
    try:
        k = int(value)
    except ValueError:
        raise PackingError(f"--pack {value!r}: must be auto or a whole number >= 1") from None
    if k < 1:
        raise PackingError(f"--pack {value}: must be auto or a whole number >= 1")
    return k


def group_key(config: dict) -> tuple:
    """What members of one pack share: every key but MEMBER_KEYS."""
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in MEMBER_KEYS))


def member_bytes(config: dict, sizes: dict | None = None) -> int:
    """About what one member holds beyond the shared dataset: its noise draws."""
    train, test = (sizes or {}).get(config["dataset"], (60000, 10000))
    train = min(train, config.get("train_subset") or train)
    test = min(test, config.get("test_subset") or test)
    return 2 * 784 * (train + test) if config["noise_type"] != "none" else 0


def auto_size(configs: list[dict], gpu: bool, slot_bytes: float, sizes: dict | None = None,
              measured: dict | None = None) -> int:
    """K for `--pack auto` for a group of configs: the measured best for their architecture
    on this device kind (`measured`: architecture -> K, sweeps.pack_speed's for models of
    one's own), lowered until the members' noise draws fit their share of a trial slot's
    memory."""
    arch = configs[0]["arch"]
    k = AUTO_GPU if gpu else (measured or {}).get(arch) or AUTO_CPU.get(arch, AUTO_CPU_OTHER)
    per = max(member_bytes(c, sizes) for c in configs)
    if per:
        k = max(1, min(k, int(MEMORY_SHARE * slot_bytes // per)))
    return k


def machine_bytes() -> float:
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def interleaved(trials: list[dict]) -> list[int]:
    """Indices of `trials` in the order that gives a whole picture early: every cell's
    first replicate seed before any cell's second (a cell: a config but its seed), and the
    grid's order otherwise."""
    seen: dict = {}
    rank = []
    for t in trials:
        cell = json.dumps({k: v for k, v in t.items() if k != "seed"}, sort_keys=True, default=str)
        rank.append(seen.get(cell, 0))
        seen[cell] = rank[-1] + 1
    return sorted(range(len(trials)), key=lambda i: (rank[i], i))


def plan(trials: list[dict], size: int | None, slots: int = 1, gpu: bool = False,
         slot_bytes: float | None = None, sizes: dict | None = None,
         order: list[int] | None = None, measured: dict | None = None) -> list[list[int]]:
    """Indices of `trials`, grouped into packs, in the order they are to start: `order`
    (a permutation of the indices; None: the grid's), each pack where its first member is.

    `size` is --pack's K (None: auto; `measured`: K per architecture measured on this
    machine). With auto, a group is also spread over at least `slots` packs when it has
    that many configs, so a small grid keeps every slot busy.
    """
    order = list(range(len(trials))) if order is None else order
    groups: dict = {}
    for i in order:
        t = trials[i]
        key = group_key(t) if size != 1 else ("solo", i)
        groups.setdefault(key, []).append(i)
    if slot_bytes is None:
        slot_bytes = machine_bytes() / max(1, slots)
    out = []
    for members in groups.values():
        n = len(members)
        if size is None:
            k = auto_size([trials[i] for i in members], gpu, slot_bytes, sizes, measured)
            count = max(math.ceil(n / k), min(slots, n))
        else:
            count = math.ceil(n / size)
        # Near-equal packs: the sweep ends when its longest pack does.
        bounds = [round(j * n / count) for j in range(count + 1)]
        out.extend(members[a:b] for a, b in zip(bounds, bounds[1:]) if b > a)
    position = {i: n for n, i in enumerate(order)}
    return sorted(out, key=lambda pack: position[pack[0]])


def label(config: dict) -> str:
    """A config as a folder name a person can read: arch, noise, L2, then an optimizer,
    learning rate or batch size other than the architecture's own, its momentum (n:
    Nesterov's) and learning-rate schedule, a hidden activation, a VAE's latent size and an
    early-stopping patience where one is chosen, and the seed."""
    noise = "clean" if config["noise_type"] == "none" else f"{config['noise_type']}{config['noise_scale']:g}"
    # A builder named by import path (mypkg.nets:small) by its function's name.
    parts = [config["arch"].rsplit(":", 1)[-1], noise, f"l2-{config['l2']:g}"]
    own = arch_defaults(config["arch"])
    # A builder's own options (width, depth...) where they differ from its defaults.
    parts += [re.sub(r"[^\w.+-]", "-", f"{k}{config[k]:g}" if isinstance(config[k], float) else f"{k}{config[k]}")
              for k in options_of(config["arch"]) if k != "activation" and config.get(k) != own.get(k)]
    if config.get("optimizer") not in (None, own.get("optimizer")):
        parts.append(config["optimizer"])
    if config.get("lr") not in (None, own.get("lr")):
        parts.append(f"lr{config['lr']:.3g}")
    if config.get("batch_size") not in (None, own.get("batch_size")):
        parts.append(f"b{config['batch_size']}")
    if config.get("momentum"):
        parts.append(f"m{config['momentum']:g}" + ("n" if config.get("nesterov") else ""))
    if config.get("lr_schedule"):
        parts.append(config["lr_schedule"])
    if config.get("activation"):
        parts.append(config["activation"])
    if config.get("latent_dim") is not None:
        parts.append(f"latent{config['latent_dim']}")
    if config.get("patience") is not None:
        parts.append(f"patience{config['patience']}")
    return "_".join([*parts, f"s{config['seed']}"])


def tune_config(trials: list[dict], pack: list[int]) -> dict:
    """What one Tune trial is given: a solo config as it is, a pack as its members. The
    members travel as one JSON string: Tune would read a list of configs as a search space."""
    if len(pack) == 1:
        return dict(trials[pack[0]])
    return {"members": json.dumps([trials[i] for i in pack])}


def members_of(config: dict) -> list[dict] | None:
    """The member configs of a Tune trial's config (a planned pack, or a search's sample and
    its replicates), None for a lone config."""
    members = config.get("members")
    return json.loads(members) if members else replicate_members(config)


def unpack(config: dict) -> tuple[list[dict], list[str]]:
    """The configs a Tune trial trains (a pack's members, or the config itself) and the
    names of their folders inside the pack's (`member_dirnames`)."""
    members = members_of(config) or [config]
    return members, member_dirnames(members)


def member_dirnames(members: list[dict]) -> list[str]:
    """Each member's folder inside its pack's: its label and its place in the pack."""
    return [f"{label(m)}_m{i:02d}" for i, m in enumerate(members)]


def reported_members(reported: dict | None, members: list[dict]) -> list[tuple[str, dict]]:
    """(folder name, last row) of each member, from a pack's report to Tune (its "members":
    folder name -> row; {} before a member's first row). Matched by the place `_mNN`, not the
    whole name: a pack restarted from an older version keeps the names it started with
    (sweeps.training.reporting.member_folders)."""
    by_place = {}
    for name, row in (reported or {}).items():
        place = name.rsplit("_m", 1)[-1]
        if place.isdigit():
            by_place[int(place)] = (name, row or {})
    return [by_place.get(i, (name, {})) for i, name in enumerate(member_dirnames(members))]


def trained_configs(config: dict, folder: str, metrics: dict | None) -> list[tuple[str, dict, dict]]:
    """(name shown, config, last row) of each config one Tune trial trains (its `config`, its
    folder's name, its last result): itself, or each member of a pack as the pack reported it."""
    members = members_of(config)
    if not members:
        return [(folder, config, metrics or {})]
    rows = reported_members((metrics or {}).get("members"), members)
    return [(os.path.join(folder, name), member, row) for (name, row), member in zip(rows, members)]
