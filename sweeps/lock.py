"""One runner per experiment: a lock file in the experiment folder naming who holds it.

Two terminals starting the same experiment would interleave their trials'
logs; the second is refused and told which process runs it. A lock left by
a runner that died (its pid is gone on this host) is stale: `--resume`
takes it over.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager

from sweeps.slurm_job import current_job

LOCK_FILE = ".noisesweep.lock"


class LockError(Exception):
    """The experiment is held by another runner, or its folder cannot be written."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def read_holder(exp_path: str) -> dict | None:
    """The lock's content, or None when there is no lock (or it is unreadable); a lock that
    holds no record of a runner reads as an empty one, which no running runner wrote."""
    try:
        with open(os.path.join(exp_path, LOCK_FILE)) as f:
            holder = json.load(f)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else {}


def _number(value, default: int) -> int:
    """A lock's pid or restart count as a whole number (`default` for anything else: a lock
    edited by hand, or written by something else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def holder_is_running(holder: dict) -> bool:
    """Whether the runner that wrote `holder` may still be running. One on another host
    cannot be checked from here, so it counts as running, unless it ran in an earlier run
    of this Slurm job (a requeued job's first run is over, wherever it ran)."""
    if _earlier_run_of_this_job(holder):
        return False
    if not holder.get("host"):
        return False  # no runner's record: nobody to wait for
    if holder.get("host") != socket.gethostname():
        return True
    pid = _number(holder.get("pid"), -1)
    return pid > 0 and _alive(pid)


def _earlier_run_of_this_job(holder: dict) -> bool:
    job, restart = current_job()
    return bool(job) and holder.get("slurm_job") == job and _number(holder.get("slurm_restart"), 0) < restart


def describe(holder: dict) -> str:
    return f"pid {holder.get('pid')} on host {holder.get('host')} (since {holder.get('since')})"


@contextmanager
def experiment_lock(exp_path: str, take_stale: bool):
    """Hold the experiment's lock for the duration of the block.

    Raises LockError naming the holder if a live runner has it, or naming the
    dead one if the lock is stale and `take_stale` is false; also when the
    lock cannot be written at all (a read-only or full disk).
    """
    path = os.path.join(exp_path, LOCK_FILE)
    mine = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    job, restart = current_job()
    if job:
        mine.update(slurm_job=job, slurm_restart=restart)
    try:
        os.makedirs(exp_path, exist_ok=True)
    except OSError as e:
        raise LockError(f"{exp_path}: cannot write there ({e.strerror})") from None
    with _one_at_a_time(exp_path):
        _acquire(exp_path, path, mine, take_stale)
    try:
        yield
    finally:
        if read_holder(exp_path) == mine:
            os.remove(path)


@contextmanager
def _one_at_a_time(exp_path: str):
    """Runners take the lock one at a time (an flock on the experiment folder): two that
    find the same stale lock would otherwise each remove what may be the other's new one,
    and both run."""
    try:
        fd = os.open(exp_path, os.O_RDONLY)
    except OSError as e:
        raise LockError(f"{exp_path}: cannot open it to lock ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as e:  # a filesystem without locks (some NFS mounts)
            raise LockError(f"{exp_path}: cannot lock it ({e.strerror}); its filesystem takes no flock") from None
        yield
    finally:
        os.close(fd)  # releases the flock


def _acquire(exp_path: str, path: str, mine: dict, take_stale: bool) -> None:
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = read_holder(exp_path) or {}
            if holder_is_running(holder):
                raise LockError(f"{exp_path} is being run by {describe(holder)}; "
                                f"if that runner is dead, delete {path}") from None
            if not take_stale and not _earlier_run_of_this_job(holder):
                raise LockError(f"{exp_path} was left by {describe(holder)}, which is no longer "
                                "running; pass --resume to continue it") from None
            os.remove(path)
            continue
        except OSError as e:
            raise LockError(f"{exp_path}: cannot write there ({e.strerror})") from None
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
        except OSError as e:
            os.remove(path)
            raise LockError(f"{exp_path}: cannot write there ({e.strerror})") from None
        return
