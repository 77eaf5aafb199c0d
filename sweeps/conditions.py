"""What a trained config is scored on: a grid's `evaluate:` section, its test-time conditions.

    evaluate:
      gaussian: [0, 0.25, 0.5, 1, 2]      # a noise type of sweeps.noise: its scales
      salt_and_pepper: [0.1, 0.3]
      shot_noise: [1, 3, 5]               # a corruption of sweeps.corruptions: severities 1-5
      suites: [mnist_c]                   # a named suite (sweeps.corruptions.SUITES)
      folders: [path/to/mnist_c]          # a benchmark as distributed (sweeps.benchmarks)
      seed: 0                             # the evaluation seed (default 0)
      baseline: {noise_scale: 0}          # the configs mCE is relative to (analysis.robustness)

A trial config holds the section as one canonical JSON string (`canonical`), as it holds a
denoiser's eval_levels: Tune takes a mapping in a config for a space of its own, and a
string keeps configs hashable and packs grouped by what they are scored on.

Every config of an experiment is scored on the very same images: a corruption's and a noise
condition's draws are functions of (evaluation seed, condition, severity) alone, as
sweeps.noise gives common random numbers to trials. Each condition is a `Condition(suite,
name, severity)`; the clean test set, `Condition("", "clean", 0)`, is always scored first.
"""

from __future__ import annotations

import json
import math
import os
from typing import NamedTuple

import numpy as np

from sweeps import noise, schema

LISTS = ("suites", "folders")
OTHER = ("seed", "baseline")  # keys that name no condition
DEFAULT_SEED = 0


class ConditionError(ValueError):
    """A bad `evaluate:` entry: `key` (inside the section), the value and why."""

    def __init__(self, key: str, value, why: str):
        super().__init__(f"{key} = {value!r}: {why}")
        self.key, self.value, self.why = key, value, why


class Condition(NamedTuple):
    suite: str  # "", a named suite, or "folder:<name>"
    name: str  # "clean", a noise type or a corruption
    severity: float  # a corruption's 1-5, a noise type's scale, 0 (clean, a benchmark's one level)

    @property
    def key(self) -> str:
        """The condition as one string (the scoring's arrays are named by it)."""
        return f"{self.suite}/{self.name}/{self.severity:g}"

    @property
    def is_noise(self) -> bool:
        return self.name in noise.NOISES and not self.suite.startswith("folder:")


CLEAN = Condition("", schema.CLEAN, 0)


def _corruptions():
    from sweeps import corruptions

    return corruptions


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _values(key: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConditionError(key, value, "needs at least one value")
    return values


def check(section) -> dict:
    """`section` validated, in its canonical form (folders absolute, scales as floats,
    severities as ints, the seed filled in); raises ConditionError."""
    if not isinstance(section, dict) or not section:
        raise ConditionError("evaluate", section, "must be a mapping of noise types, corruptions, suites or folders "
                             "to their values")
    out: dict = {}
    for key, value in section.items():
        if key in noise.NOISES:
            scales = []
            for v in _values(key, value):
                if not _number(v) or v < 0:
                    raise ConditionError(key, v, "a noise scale must be a number >= 0")
                if key == "salt_and_pepper" and v > 1:
                    raise ConditionError(key, v, "a salt_and_pepper level must be in [0, 1]")
                scales.append(float(v))
            out[key] = list(dict.fromkeys(scales))
        elif key not in (*LISTS, *OTHER) and key in _corruptions().CORRUPTIONS:
            levels = []
            for v in _values(key, value):
                if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5):
                    raise ConditionError(key, v, "a corruption's severity must be an integer in 1-5")
                levels.append(v)
            out[key] = list(dict.fromkeys(levels))
        elif key == "suites":
            for v in _values(key, value):
                if v not in _corruptions().SUITES:
                    raise ConditionError(key, v, f"no such suite; known: {', '.join(_corruptions().SUITES)}")
            out[key] = list(dict.fromkeys(_values(key, value)))
        elif key == "folders":
            folders = []
            for i, v in enumerate(_values(key, value)):
                folders.append(_folder(f"folders[{i}]", v))
            out[key] = list(dict.fromkeys(folders))
        elif key == "seed":
            if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**32):
                raise ConditionError(key, value, "the evaluation seed must be an integer in [0, 2**32)")
            out[key] = value
        elif key == "baseline":
            # Which configs are the baseline is for the analysis; that its keys are axes and
            # its values valid is the grid's to check (sweeps.grids.check_value).
            if not isinstance(value, dict) or not value or not all(
                    isinstance(k, str) and (v is None or isinstance(v, (str, int, float, bool))) for k, v in value.items()):
                raise ConditionError(key, value, "must be a mapping of config keys to one value each, such as "
                                     "{noise_scale: 0}")
            out[key] = value
        else:
            corruptions = _corruptions()
            known = [*noise.NOISES, *corruptions.CORRUPTIONS, *LISTS, *OTHER]
            import difflib

            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.8)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConditionError(key, value, f"unknown key{hint}; known: noise types ({', '.join(noise.NOISES)}), "
                                 f"corruptions ({', '.join(corruptions.CORRUPTIONS)}), suites, folders, seed, baseline")
    if not any(k not in OTHER for k in out):
        raise ConditionError("evaluate", section, "names no condition to score on")
    out.setdefault("seed", DEFAULT_SEED)
    return out


def _folder(key: str, value) -> str:
    from sweeps import benchmarks

    if not isinstance(value, str) or not value:
        raise ConditionError(key, value, "must be a folder's path")
    path = os.path.abspath(os.path.expanduser(value))
    try:
        benchmarks.layout_of(path)
    except benchmarks.BenchmarkError as e:
        raise ConditionError(key, value, str(e).replace(path + ": ", "", 1)) from None
    return path


def config_problem(config: dict, task) -> tuple[str, object, str] | None:
    """(key, value, why) of what a whole config (of `task`, a sweeps.tasks module) cannot be
    scored as, or None: a period with nothing to score, a folder for a denoiser."""
    section = section_of(config)
    if config.get("evaluate_every") is not None and not section:
        return ("evaluate_every", config["evaluate_every"], "scores nothing without an evaluate: section (the "
                "conditions to score on)")
    if section and task.FAMILY == "denoise" and section.get("folders"):
        # A reconstruction is scored against the clean original, which a benchmark folder lacks.
        return ("evaluate.folders", section["folders"], f"a {task.MODEL} ({config['arch']}) is scored against the "
                "clean originals, which a benchmark folder does not hold; name its corruptions or suite instead")
    return None


def canonical(section) -> str | None:
    """A config's `evaluate` as it is held: one JSON string (None: scored only as it trains)."""
    if section is None or isinstance(section, str):
        return section
    return json.dumps(check(section), sort_keys=True, separators=(",", ":"))


def section_of(config: dict) -> dict | None:
    """A config's `evaluate:` section, as `check` made it (None where it has none)."""
    text = config.get("evaluate")
    return json.loads(text) if text else None


def folder_suite(folder: str) -> str:
    return f"folder:{os.path.basename(os.path.normpath(folder))}"


def conditions(section: dict | None) -> list[Condition]:
    """Every condition a section names, in order: clean, the noise types' scales, the
    corruptions' severities, the suites', the folders' (each once)."""
    if not section:
        return []
    out = [CLEAN]
    for kind in noise.NOISES:
        out += [Condition("", kind, s) for s in section.get(kind, [])]
    if set(section) - {*noise.NOISES, *OTHER, "folders"}:
        corruptions = _corruptions()
        out += [Condition("", name, s) for name in corruptions.CORRUPTIONS for s in section.get(name, [])]
        for suite in section.get("suites", []):
            out += [Condition(suite, name, s) for name, s in corruptions.SUITES[suite]]
    for folder in section.get("folders", []):
        from sweeps import benchmarks

        out += [Condition(folder_suite(folder), name, s) for name, s in benchmarks.conditions(folder)]
    return list(dict.fromkeys(out))


def images(condition: Condition, section: dict, arrays: dict) -> tuple[np.ndarray, np.ndarray]:
    """The uint8 test images and labels of `condition` for a dataset's `arrays`: the clean
    test split for clean and noise conditions (their noise is added as a trial's is, by the
    feed), the corrupted split for a corruption, the benchmark's own for a folder's."""
    if condition.suite.startswith("folder:"):
        folder = next(f for f in section["folders"] if folder_suite(f) == condition.suite)
        from sweeps import benchmarks

        return benchmarks.read(folder, condition.name, int(condition.severity))
    if condition.name == schema.CLEAN or condition.is_noise:
        return arrays["x_test"], arrays["y_test"]
    corrupted = _corruptions().corrupt(arrays["x_test"], condition.name, int(condition.severity), seed=section["seed"])
    return corrupted, arrays["y_test"]


def scoring_key(seed: int, condition: Condition) -> str:
    """How an experiment's made images of `condition` are named (sweeps.preflight.scoring_images):
    a corruption's by (evaluation seed, corruption, severity), whatever suite names it; a
    benchmark folder's by the folder."""
    if condition.suite.startswith("folder:"):
        return condition.key
    return f"{seed}:{condition.name}/{condition.severity:g}"


def is_generated(condition: Condition) -> bool:
    """Whether the condition's images are made here (a corruption), not read (a folder)."""
    return made(condition) and not condition.suite.startswith("folder:")


def made(condition: Condition) -> bool:
    """Whether `condition` has images of its own (a corruption's, a folder's) to make once and ship."""
    return not (condition.name == schema.CLEAN or condition.is_noise)


def inputs(member: dict, condition: Condition, images: np.ndarray, seed: int) -> np.ndarray:
    """The condition's `images` as `member`'s model takes them, made in numpy as the scoring
    feed makes them in its step: floats (N, H, W, C), its preprocessing, the condition's noise."""
    m = feed_members([member], condition, seed)[0]
    return noise.with_channels(noise.noisy_split(
        images, "test", seed=m["seed"], noise_type=m["noise_type"], noise_scale=m["noise_scale"],
        noise_target="test", noise_clip=m["noise_clip"], standardize_first=m["standardize"]))


def feed_members(members: list[dict], condition: Condition, seed: int) -> list[dict]:
    """The members as a scoring feed (sweeps.training.feeds) sees them under `condition`:
    each keeps its standardisation and clip; the noise is the condition's, on the test
    split, drawn from the evaluation seed (the same draws for every member and config)."""
    if condition.is_noise:
        change = {"noise_type": condition.name, "noise_scale": float(condition.severity), "noise_target": "test",
                  "seed": seed}
    else:
        change = {"noise_type": "none", "noise_scale": 0.0, "noise_target": "test", "seed": seed}
    return [{**m, **change} for m in members]
