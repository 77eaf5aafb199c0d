"""A sweep as a Slurm job (sweeps/slurm.py), on a real Slurm: slurmctld and slurmd on this
machine, their files in a temporary folder (tests/slurm_local.py). `.ci/run` installs Slurm
where it is missing; elsewhere these tests are skipped, saying why."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.slurm_local import local_slurm, why_unavailable
from tests.sweeps_running import ROOT, rows_by_trial
from tests.synthetic import write_mnist_cache

pytestmark = pytest.mark.faults


@pytest.fixture
def short_dir():
    """A folder of a short path: Slurm's and Ray's sockets live in it (108 bytes at most)."""
    reason = why_unavailable()
    if reason:  # .ci/run installs Slurm where it can (root and apt-get)
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="ns-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def submit(cluster, tmp_path, grid: str, name: str, *flags) -> tuple[str, Path]:
    """`noisesweep slurm` as a user types it, against `cluster`: (job id, experiment folder)."""
    cmd = [sys.executable, "-m", "sweeps.cli", "slurm", *flags, "--grid", grid, "--name", name,
           "--storage-path", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache")]
    done = subprocess.run(cmd, cwd=ROOT, env=cluster.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    job = re.search(r"submitted Slurm job (\d+)", done.stdout).group(1)
    return job, tmp_path / "runs" / name


def job_output(exp: Path, job: str) -> str:
    path = exp / "slurm" / f"slurm-{job}.out"
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_grid_submitted_to_a_two_node_allocation_runs_on_both_and_writes_its_report(tmp_path, short_dir):
    write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=1000)
    with local_slurm(short_dir / "s", cpus=1, nodes=2) as cluster:
        job, exp = submit(cluster, tmp_path, "smoke:tiny", "smoke", "--nodes", "2", "--pack", "1", "--report")
        info = cluster.wait_job(job, timeout=300)
        out = job_output(exp, job)
        assert info["JobState"] == "COMPLETED", out[-4000:] + cluster.log()
    assert "2/2 configs finished" in out, out[-4000:]
    # The runner joined a Ray of two nodes, one CPU each (Slurm's), and both took a trial.
    assert "ray: 2 nodes, 2 CPUs" in out, out[-4000:]
    assert len({rows[0]["node_id"] for rows in rows_by_trial(exp).values()}) == 2
    assert (exp / "report" / "report.md").is_file()
    assert (exp / "report" / "figures" / "accuracy_vs_noise.png").stat().st_size > 0
    spec = json.loads((exp / "noisesweep.json").read_text())
    assert [j["job_id"] for j in spec["slurm_jobs"]] == [job]
    assert spec["slurm_jobs"][0]["nodes"] == "node[1-2]"
    status = subprocess.run([sys.executable, "-m", "sweeps.cli", "status", str(exp)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert f"slurm job {job}: last started" in status.stdout, status.stdout
