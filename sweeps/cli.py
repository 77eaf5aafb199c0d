"""The `noisesweep` command (installed by pyproject.toml's [project.scripts]).

    noisesweep run --grid l2 [runner flags]   # = python sweeps/run.py ...
    noisesweep report RUN_DIR [...]           # = python -m analysis.report ...
    noisesweep grids                          # the shipped grids: what each reproduces, configs, time
    noisesweep status RUN_DIR [RUN_DIR ...]   # where experiments stand, from their files (no Ray)
    noisesweep slurm --nodes 2 --time 4:00:00 --grid l2 [runner flags]   # submit it with sbatch
    noisesweep evaluate RUN_DIR --suite mnist_c   # score finished configs on new conditions, no training

Exit status: 0 done; 1 configs errored (run); 2 bad input (flags, grid, folder); 130 a run
stopped before its end (resumable).
"""

from __future__ import annotations

import argparse
import signal
import sys

COMMANDS = {
    "run": "train a grid's configs on Ray Tune (python sweeps/run.py)",
    "report": "tables and figures from experiments' logs (python -m analysis.report)",
    "grids": "list the shipped grids: what each reproduces, configs and time",
    "status": "where an experiment stands, from its files alone",
    "slurm": "run a grid as a Slurm batch job that requeues itself at its time limit (sweeps/slurm.py)",
    "evaluate": "score a finished experiment's configs under new test-time conditions, without training",
}


def grids_main(argv) -> int:
    argparse.ArgumentParser(prog="noisesweep grids", description=COMMANDS["grids"]).parse_args(argv)
    from sweeps.catalogue import catalogue

    print("\n".join(catalogue()))
    return 0


def status_main(argv) -> int:
    p = argparse.ArgumentParser(prog="noisesweep status", description=COMMANDS["status"] + ": configs per "
                                "state, epochs done of planned, elapsed and ETA while it runs, the errored ones.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="experiment folders (runs/NAME)")
    args = p.parse_args(argv)
    from sweeps.status import StatusError, report

    code = 0
    for n, run in enumerate(args.runs):
        if n:
            print()
        try:
            report(run)
        except StatusError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
    return code


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        p = argparse.ArgumentParser(prog="noisesweep", usage="noisesweep {run,report,grids,status,slurm,evaluate} [flags]",
                                    description="Noise and L2 sweeps of image classifiers "
                                    "and denoisers on Ray Tune.", epilog=__doc__.split("\n\n")[-1],
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("command", choices=list(COMMANDS), help="; ".join(f"{k}: {v}" for k, v in COMMANDS.items()))
        p.parse_args(argv[:1])  # prints help (exit 0) or the error (exit 2); each command has its own --help
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        from sweeps import run

        return run.main(rest, prog="noisesweep run")
    if command == "slurm":
        from sweeps import slurm

        return slurm.main(rest, prog="noisesweep slurm")
    if command == "evaluate":
        from sweeps import evaluate

        return evaluate.main(rest, prog="noisesweep evaluate")
    if command == "report":
        from analysis import report

        return report.main(rest, prog="noisesweep report")
    # Listing commands end quietly when their reader does (`noisesweep grids | head`).
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return grids_main(rest) if command == "grids" else status_main(rest)


if __name__ == "__main__":
    sys.exit(main())
