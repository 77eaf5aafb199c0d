"""Inside a Slurm job: which job this process runs in, and its record in the experiment's
noisesweep.json (`noisesweep status` prints them). The submitting side is sweeps.slurm.
"""

from __future__ import annotations

import os
import time

SLURM_DIR = "slurm"  # in the experiment folder: the job script and its output


def submitted_job() -> bool:
    """Whether this process runs in a job that `noisesweep slurm` submitted (its script sets
    NOISESWEEP_SLURM_SCRIPT; a runner typed into `salloc` is in a Slurm job too, not in one of these)."""
    return bool(os.environ.get("NOISESWEEP_SLURM_SCRIPT"))


def current_job() -> tuple[str | None, int]:
    """(id, restart count) of the Slurm job this process runs in; (None, 0) outside one."""
    return os.environ.get("SLURM_JOB_ID"), int(os.environ.get("SLURM_RESTART_COUNT") or 0)


def job_record() -> dict | None:
    """This process's Slurm job as noisesweep.json records it, or None outside one."""
    job, restart = current_job()
    if not job:
        return None
    return {"job_id": job, "restart": restart,
            "nodes": os.environ.get("SLURM_JOB_NODELIST", ""), "script": os.environ.get("NOISESWEEP_SLURM_SCRIPT", ""),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def recorded(spec: dict, job: dict) -> dict:
    """`spec` (noisesweep.json) with `job` in its list of Slurm jobs: a requeued job's
    entry replaced by its latest run."""
    jobs = [j for j in spec.get("slurm_jobs", []) if j.get("job_id") != job["job_id"]]
    return {**spec, "slurm_jobs": [*jobs, job]}
