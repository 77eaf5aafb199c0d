"""The runner's flags: parsed into one `Options` and checked before anything starts.

A bad flag is one `error:` line and exit status 2 (`UsageError`); the Python API
(noisesweep.run) builds the same Options from keyword arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

from sweeps import packing, quiet, schema


class UsageError(Exception):
    """Bad input found before anything started: printed as one line, exit 2."""


@dataclasses.dataclass(frozen=True)
class Options:
    """What a run was asked to do: the runner's flags, checked (`checked`), and the pack
    size `--pack` names (None: auto)."""

    grid: str | None = None
    name: str | None = None
    storage_path: str = "./runs"
    resume: bool = False
    address: str | None = None
    num_cpus: int | None = None
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int | None = None
    max_failures: int = 2
    pack: str = "auto"
    order: str = "interleaved"
    epochs: int | None = None
    models: str | None = None
    cache_dir: str | None = None
    data_dir: str | None = None
    dry_run: bool = False
    list: bool = False
    report: bool = False
    verbose: bool = False
    pack_size: int | None = None

    def replace(self, **changes) -> Options:
        return dataclasses.replace(self, **changes)

    @property
    def model_modules(self) -> list[str]:
        """The modules of one's own named by --models, in order."""
        return [m.strip() for m in (self.models or "").split(",") if m.strip()]


def parser(prog: str = "python sweeps/run.py") -> argparse.ArgumentParser:
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
    return p


def parse(argv=None, prog: str = "python sweeps/run.py") -> Options:
    """The flags as Options, not yet checked."""
    return Options(**vars(parser(prog).parse_args(argv)))


def checked(opts: Options) -> Options:
    """`opts` with its pack size, and verbose where the environment asks; UsageError for a
    flag no run can take."""
    if opts.cpus_per_trial <= 0:
        raise UsageError(f"--cpus-per-trial {opts.cpus_per_trial}: must be > 0")
    if opts.gpus_per_trial < 0 or (opts.gpus_per_trial > 1 and opts.gpus_per_trial != int(opts.gpus_per_trial)):
        raise UsageError(f"--gpus-per-trial {opts.gpus_per_trial}: must be a fraction in [0, 1] or a whole number")
    for flag in ("max_concurrent", "num_cpus"):
        value = getattr(opts, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} {value}: must be >= 1")
    if opts.max_failures < 0:
        raise UsageError(f"--max-failures {opts.max_failures}: must be >= 0")
    if opts.name is not None and not schema.is_plain_name(opts.name):
        raise UsageError(f"--name {opts.name!r}: must be a plain folder name")
    if opts.name is not None and schema.is_growth_folder(opts.name):
        raise UsageError(f"--name {opts.name!r}: names like grow-2 are an experiment's growth steps; choose another")
    if opts.resume and not opts.name:
        raise UsageError("--resume needs --name: the experiment to continue")
    try:
        pack_size = packing.parse(opts.pack)
    except packing.PackingError as e:
        raise UsageError(str(e)) from None
    if opts.data_dir and not os.path.isdir(opts.data_dir):
        raise UsageError(f"--data-dir {opts.data_dir}: no such folder")
    return opts.replace(pack_size=pack_size, verbose=opts.verbose or quiet.verbose())


def slots(opts: Options, cpus: float | None = None, gpus: float | None = None) -> int:
    """How many Tune trials run at once on `cpus` (and `gpus`, when trials ask for GPUs): the
    cluster's, or before Ray starts, --num-cpus or this machine's; at most --max-concurrent."""
    if opts.gpus_per_trial and gpus is not None:
        n = int(gpus // opts.gpus_per_trial)
    else:
        n = int((cpus or opts.num_cpus or os.cpu_count() or 1) // opts.cpus_per_trial)
    n = max(1, n)
    return min(n, opts.max_concurrent) if opts.max_concurrent else n
