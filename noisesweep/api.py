"""`run` and `load`: the runner (sweeps/run.py) and the analysis behind two calls.

A grid is a named grid, a grid file, or a plain dict (what a grid file holds); the runner's
flags are keyword arguments. Models and datasets may be Python objects: a builder function
(`models={"mine": build}`; Ray sends it to the workers by value, so a function defined in a
notebook cell trains there) and arrays (`datasets={"digits": {"x_train": ..., ...}}`). Bad
input raises ValueError with the line the command line prints, before Ray starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from noisesweep.experiment import Experiment


def load(path: str) -> Experiment:
    """The experiment in folder `path` (any runs/NAME folder), read from its files."""
    return Experiment(path)


def run(grid="smoke", *, models: dict | None = None, datasets: dict | None = None, **options) -> Experiment:
    """Run `grid` as Ray Tune trials, as `python sweeps/run.py --grid ...` does, and return its
    Experiment once it ends (also when stopped or when trials errored: its `status()` says).

    `options` are the runner's flags: name, storage_path, resume, pack (auto, or K), epochs,
    num_cpus, cpus_per_trial, gpus_per_trial, max_concurrent, address, report, dry_run...
    """
    from models.registry import ArchError, use_builder
    from sweeps import options as flags, run as runner
    from sweeps.data import DataError, give
    from sweeps.grids import GridError

    for name, builder in (models or {}).items():
        try:
            use_builder(name, builder)
        except ArchError as e:
            raise ValueError(f"models[{name!r}]: {e}") from None
    for name, arrays in (datasets or {}).items():
        try:
            give(name, arrays)
        except (DataError, ValueError) as e:
            raise ValueError(f"datasets[{name!r}]: {e}") from None
    defaults = flags.parse([])
    known = sorted(k for k in vars(defaults) if k not in ("grid", "list", "pack_size"))
    for key in options:
        if key not in known:
            raise ValueError(f"run(): unknown option {key!r}; known: {', '.join(known)}")
    given = {k: str(v) if k == "pack" else v for k, v in options.items()}
    try:
        flags.checked(defaults.replace(**given))  # a bad name is refused before it names a file
        folder = tempfile.mkdtemp(prefix="noisesweep-grid-") if isinstance(grid, dict) else None
        try:
            path = _grid_file(grid, options.get("name"), folder) if folder else grid
            _, plan = runner.run(defaults.replace(grid=path, **given))
        finally:
            if folder:  # the experiment records the grid's configs, not its file
                shutil.rmtree(folder, ignore_errors=True)
    except (GridError, flags.UsageError) as e:
        raise ValueError(str(e)) from None
    return Experiment(plan.exp.path) if plan is not None and os.path.isdir(plan.exp.path) else None


def _grid_file(grid: dict, name: str | None, folder: str) -> str:
    """A dict grid written as the YAML file the runner reads, in `folder` (its name names the
    experiment unless `name` does)."""
    import yaml

    path = os.path.join(folder, f"{name or 'study'}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(grid, f, sort_keys=False)
    return path
