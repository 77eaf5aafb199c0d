"""Run a declared grid as Ray Tune trials: `python sweeps/run.py --grid NAME|PATH[:tiny]`.

The command line: flags (sweeps.options), the Slurm dispatch (--slurm), signals and exit
statuses. What a run does lives in modules named for it: planning (sweeps.planning),
the checks before anything starts (sweeps.preflight), printing a plan (sweeps.dry_run),
driving the sweep (sweeps.driving) and its summary (sweeps.summary).

Everything that can be wrong with the input (grid, flags, experiment folder, data) is
found before Ray starts: one `error:` line and exit status 2, no trial started, nothing
on disk changed.
"""

from __future__ import annotations

import os
import signal
import sys

if __package__ in (None, ""):
    # Run as a script: put the repository root, not sweeps/, first on the path.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from sweeps import options  # noqa: E402
from sweeps.grids import GridError  # noqa: E402
from sweeps.lock import LockError  # noqa: E402
from sweeps.options import Options, UsageError  # noqa: E402
from sweeps.storage import StorageError  # noqa: E402


def run(opts: Options):
    """Plan, check and run; (exit status, the plan or None). Raises UsageError and GridError
    for bad input, before anything started."""
    from sweeps import dry_run, driving, planning, preflight, quiet, summary

    if opts.list:
        from sweeps.catalogue import catalogue

        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `--list | head` ends quietly, as `noisesweep grids`
        print("\n".join(catalogue()))
        return 0, None
    opts = options.checked(opts)
    if opts.verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"
    plan = planning.plan_experiment(opts)
    if plan.grid.duplicates_dropped:
        print(f"note: {plan.grid.duplicates_dropped} duplicate configs in {plan.grid.path} dropped")
    if plan.growth:
        dry_run.print_growth(plan, every=opts.dry_run)
    if opts.dry_run:
        dry_run.print_plan(plan)
        return 0, plan
    if not plan.steps:
        print(f"nothing to run: every config the grid names is finished in {plan.exp.path}")
        return (summary.write_report(plan) if opts.report else 0), plan
    if not opts.address:
        preflight.check_local_gpus(opts.gpus_per_trial)
    try:
        # Refused before any trial started, the lock leaves no empty experiment folder behind.
        with plan.exp.locked(take_stale=opts.resume):
            preflight.check_free_space(plan.exp, opts.storage_path)
            return driving.execute(plan, opts), plan
    except LockError as e:
        raise UsageError(str(e)) from None


def term_as_interrupt():
    """A SIGTERM handler: the first SIGTERM (a scheduler's preemption, `kill`, a Slurm job's
    own stop at its time limit) stops the sweep as Ctrl-C does: trials stopped, Tune's state
    saved, resumable. Later ones are ignored (the stop is under way, and Slurm's SIGKILL ends
    it after its KillWait): Slurm sends one to every process of a job it requeues or preempts,
    also while the runner is saving, which a second interrupt would cut short."""
    received = []

    def handler(*_):
        if received:
            return
        received.append(True)
        if callable(signal.getsignal(signal.SIGINT)):  # Tune's handler, or Python's Ctrl-C
            os.kill(os.getpid(), signal.SIGINT)
        else:
            # SIGINT ignored: a background command of a script (the Slurm job's runner) starts
            # so, and only Tune's handler takes it, during the trials. The stop, directly.
            raise KeyboardInterrupt

    return handler


def main(argv=None, prog: str = "python sweeps/run.py") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # A module of one's own beside where the runner starts (a builder named mypkg.nets:small,
    # --models mypkg.nets) imports; Ray's workers and the --pack auto timing get the driver's
    # path. Last on it: a student's tensorflow.py or keras.py there shadows nothing installed.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    if "--slurm" in argv:
        from sweeps import slurm

        return slurm.main([a for a in argv if a != "--slurm"], prog=f"{prog} --slurm")
    opts = options.parse(argv, prog)
    signal.signal(signal.SIGTERM, term_as_interrupt())
    try:
        return run(opts)[0]
    except (GridError, UsageError, StorageError) as e:  # StorageError: a file of the experiment, unread
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the trials began (loading data, starting Ray)
        print("\nstopped before any trial started", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
