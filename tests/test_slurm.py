"""A sweep as a Slurm job (sweeps/slurm.py), on a real Slurm: slurmctld and slurmd on this
machine, their files in a temporary folder (tests/slurm_local.py). `.ci/run` installs Slurm
where it is missing; elsewhere these tests are skipped, saying why."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.slurm_local import local_slurm, why_unavailable
from tests.sweeps_running import ROOT, duplicated_epochs, epochs_of, hold_trial_workers, release, rows_by_trial, wait_until
from tests.synthetic import write_mnist_cache

# One local Slurm at a time (two test processes: one runs them all, in order), started
# first: most of their time is spent waiting on Slurm's clock.
pytestmark = [pytest.mark.faults, pytest.mark.xdist_group("slurm"), pytest.mark.waits]


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


def runner_pid(exp: Path) -> int | None:
    """The pid of the runner at work on `exp` (the job's `python -m sweeps.run`), if any."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        if "sweeps.run" in cmd and str(exp.parent) in " ".join(cmd):
            return proc.pid
    return None


def minutes_run(info: dict) -> int:
    """The whole minutes a job's current run has taken (`scontrol show job`'s RunTime,
    [D-]HH:MM:SS), rounded up."""
    days, _, clock = info["RunTime"].rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (1 if s else 0)


def test_a_job_requeued_by_slurm_and_stopped_at_its_time_limit_ends_with_every_config_trained_once(
        tmp_path, short_dir, fault_record):
    """Two stops of one job, as a cluster makes them: `scontrol requeue` (Slurm's TERM to every
    process of the job: preemption's path) and the job's time limit (Slurm's USR1 before it;
    the job stops its runner and requeues itself). The limit is lowered on the running job
    to two minutes past the run's time so far, so that it falls due while trials are midway:
    Slurm checks limits every 30 s, and the USR1 (--signal-before 60) arrives at the first
    check within 60 s of the end, which leaves the job at least 30 s to stop and requeue
    itself however long the run took to get there (a limit already past, on a loaded
    machine, ended the job as TIMEOUT instead)."""
    epochs = 4
    write_mnist_cache(tmp_path / "cache", n_train=10000, n_test=500)
    grid = tmp_path / "slow.yaml"
    grid.write_text(f"{{arch: mlp500_300, epochs: {epochs}, seed: [0, 1, 2, 3]}}\n")
    with local_slurm(short_dir / "s", cpus=2, extra_conf="KillWait=30") as cluster:
        job, exp = submit(cluster, tmp_path, str(grid), "rq", "--pack", "1", "--cpus-per-node", "2", "--time", "10",
                          "--signal-before", "60")

        def rows_midway(before: dict):
            """Some config has an epoch logged since `before`, and some config is unfinished."""
            now = rows_by_trial(exp)
            grown = any(len(r) > len(before.get(n, [])) for n, r in now.items())
            unfinished = len(now) < 4 or any(len(r) < epochs for r in now.values())
            return now if grown and unfinished else None

        def finished(rows: dict) -> dict:
            return {n: (exp / n / "result.json").read_bytes() for n, r in rows.items() if len(r) == epochs}

        def restarted(k: int):
            info = cluster.job(job)
            return info.get("JobState") == "RUNNING" and int(info.get("Restarts", 0)) >= k

        # Run 0: requeued by hand once a config is midway.
        wait_until(lambda: rows_midway({}), timeout=180, every=0.2, what="an epoch in run 0")
        first_pid = runner_pid(exp)
        cluster.run("scontrol", "requeue", job)
        wait_until(lambda: restarted(1), timeout=120, every=0.5, what="the job to run again (restart 1)")
        # Run 0's processes are gone before Slurm starts the job again: what it logged is all here
        # (its workers may log an epoch while it stops).
        before_run1 = rows_by_trial(exp)
        done_at_term = finished(before_run1)

        # Run 1: its time limit, lowered to 1 minute, falls due; the workers are held (SIGSTOP)
        # from its first new epoch until the USR1, so that the sweep cannot end first (run 0
        # may have left it a few epochs, which a fast machine trains in a blink).
        pid = wait_until(lambda: (lambda p: p if p not in (None, first_pid) else None)(runner_pid(exp)),
                         timeout=120, every=0.2, what="run 1's runner")
        held = []

        def run1_midway():
            now = rows_midway(before_run1)
            if now:
                held.extend(hold_trial_workers(pid))  # at once, in the poll that sees it
            return now

        wait_until(run1_midway, timeout=180, every=0.05, what="an epoch in run 1")
        assert held, job_output(exp, job)[-3000:]
        limit = minutes_run(cluster.job(job)) + 2
        cluster.run("scontrol", "update", f"JobId={job}", f"TimeLimit={limit}")
        try:
            wait_until(lambda: "time limit near" in job_output(exp, job), timeout=240, every=0.1,
                       what="Slurm's USR1 before the time limit")
        finally:
            release(held)
        cluster.run("scontrol", "update", f"JobId={job}", "TimeLimit=10")  # for run 2
        wait_until(lambda: restarted(2), timeout=120, every=0.5, what="the job to run again (restart 2)")
        done_at_limit = finished(rows_by_trial(exp))

        info = cluster.wait_job(job, timeout=300)
        out = job_output(exp, job)
        assert info["JobState"] == "COMPLETED" and info["Restarts"] == "2", str(info) + out[-5000:]
    assert "4/4 configs finished" in out, out[-5000:]
    assert "noisesweep: requeueing job" in out, out[-5000:]
    # The stopped run's way on, should Slurm not requeue it (scancel): a job of its own.
    assert f"resume with: noisesweep slurm --name rq --storage-path {tmp_path / 'runs'} --resume" in out, out[-5000:]
    seen = epochs_of(exp)
    assert len(seen) == 4 and all(e == list(range(1, epochs + 1)) for e in seen.values()), seen
    for name, content in {**done_at_term, **done_at_limit}.items():
        assert (exp / name / "result.json").read_bytes() == content, f"{name} trained again"
    spec = json.loads((exp / "noisesweep.json").read_text())
    assert [(j["job_id"], j["restart"]) for j in spec["slurm_jobs"]] == [(job, 2)]  # its latest run
    fault_record(fault="Slurm: scontrol requeue, then the time limit (USR1), each mid-run", trials=4,
                 epochs=epochs, trials_lost=0, epochs_duplicated=duplicated_epochs(exp), trainings_repeated=0,
                 recover_s=None, finished_at_stops=[len(done_at_term), len(done_at_limit)])


# -- the submit side and the job's ports, without a Slurm -------------------------------------

def slurm_cli(capsys, *argv) -> tuple[int, str, str]:
    from sweeps import cli

    code = cli.main(["slurm", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_job_script_asks_for_the_allocation_the_signal_and_runs_the_runners_flags(capsys, tmp_path):
    code, out, err = slurm_cli(capsys, "--print", "--nodes", "3", "--cpus-per-node", "8", "--gpus-per-node", "2",
                               "--time", "1:30:00", "--partition", "gpu", "--account", "lab", "--sbatch=--mem=32G",
                               "--signal-before", "300", "--grid", "smoke:tiny", "--name", "tiny",
                               "--max-failures", "3", "--storage-path", str(tmp_path / "runs"))
    path = tmp_path / "runs" / "tiny" / "slurm" / "job.sbatch"
    assert code == 0 and out.strip() == str(path), err
    text = path.read_text()
    for line in ["--nodes=3", "--cpus-per-task=8", "--gpus-per-node=2", "--time=1:30:00", "--partition=gpu",
                 "--account=lab", "--mem=32G", "--requeue", "--signal=B:USR1@300", "--open-mode=append",
                 f"--output={tmp_path / 'runs' / 'tiny' / 'slurm' / 'slurm-%j.out'}"]:
        assert f"#SBATCH {line}\n" in text, line
    runner = next(line for line in text.splitlines() if "-m sweeps.run" in line)
    assert "--grid smoke:tiny" in runner and "--max-failures 3" in runner and "--name tiny" in runner
    assert f"--storage-path {tmp_path / 'runs'}" in runner
    assert subprocess.run(["bash", "-n", str(path)]).returncode == 0  # the shell takes it
    # Its Ray's temp folder is made new, the job's own: one made there first is not taken over.
    assert 'RAY_TMPDIR=$(mktemp -d "/tmp/ns-$SLURM_JOB_ID.XXXXXX") || exit 1' in text
    assert not (tmp_path / "runs" / "tiny" / "noisesweep.json").exists()  # the job starts the experiment


@pytest.mark.parametrize("argv,needle", [
    (["--nodes", "0"], "--nodes 0: must be at least 1"),
    (["--time", "soon"], "--time 'soon': not a Slurm time"),
    (["--signal-before", "5"], "--signal-before 5: at least 10 s"),
    (["--sbatch", "mem=1G"], "--sbatch 'mem=1G': an sbatch option"),
    (["--address", "auto"], "--address: not for a Slurm job"),
    (["--grid", "nosuch"], "--grid 'nosuch'"),
    # Nothing that would add a line to the job script (a shell command after a line break).
    (["--partition", "debug\ntouch /tmp/owned"], "--partition 'debug\\ntouch /tmp/owned': one word"),
    (["--account", "lab x"], "--account 'lab x': one word"),
    (["--sbatch", "--mem=1G\ntouch /tmp/owned"], "--sbatch '--mem=1G\\ntouch /tmp/owned': one word"),
    (["--name", "x\ntouch /tmp/owned"], "--name 'x\\ntouch /tmp/owned': must be a plain folder name"),
])
def test_bad_slurm_flags_exit_2_with_one_line_and_write_nothing(capsys, tmp_path, argv, needle):
    code, out, err = slurm_cli(capsys, "--print", *(["--grid", "smoke:tiny"] if "--grid" not in argv else []),
                               *argv, "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and err.startswith("error: ") and needle in err and err.count("\n") == 1, err
    assert not (tmp_path / "runs").exists()


def test_the_storage_path_is_taken_as_the_runner_takes_it_and_a_uri_is_refused(capsys, tmp_path, monkeypatch):
    """`~/runs` is the home folder's runs, not a folder named ~ under the working folder; an
    s3:// path (the script and the job's output cannot go there) is refused, nothing written."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    code, out, err = slurm_cli(capsys, "--print", "--grid", "smoke:tiny", "--name", "t", "--storage-path", "~/runs")
    script = tmp_path / "home" / "runs" / "t" / "slurm" / "job.sbatch"
    assert code == 0 and out.strip() == str(script), err
    assert f"--storage-path {tmp_path / 'home' / 'runs'}" in script.read_text()
    assert not (tmp_path / "~").exists()
    code, out, err = slurm_cli(capsys, "--print", "--grid", "smoke:tiny", "--name", "t", "--storage-path",
                               "s3://bucket/runs")
    assert code == 2 and err.startswith("error: --storage-path s3://bucket/runs: ") and err.count("\n") == 1, err
    assert sorted(os.listdir(tmp_path)) == ["home"]


def test_a_refused_submission_leaves_no_experiment_behind(capsys, tmp_path, monkeypatch):
    # A real sbatch refusing an option it does not know (or no sbatch at all on this machine).
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=none\nSlurmctldHost=localhost\n")
    monkeypatch.setenv("SLURM_CONF", str(conf))
    code, out, err = slurm_cli(capsys, "--sbatch=--no-such-option=1", "--grid", "smoke:tiny", "--name", "tiny",
                               "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and err.startswith("error: sbatch") and err.count("\n") == 1, err
    assert "no-such-option" in err or "not found on PATH" in err, err
    assert not (tmp_path / "runs" / "tiny").exists()


def test_a_refused_submission_leaves_what_another_runner_wrote_meanwhile(capsys, tmp_path, monkeypatch):
    """The experiment folder was new when the command looked, but a runner started in it
    before sbatch answered (here: an sbatch that starts one, then refuses): the refusal takes
    back its own script and nothing of the other runner's."""
    exp = tmp_path / "runs" / "tiny"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(f"#!/bin/sh\necho '{{}}' > {exp}/noisesweep.json\necho 'sbatch: error: refused' >&2\n"
                                    "exit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    code, out, err = slurm_cli(capsys, "--grid", "smoke:tiny", "--name", "tiny", "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and err.startswith("error: sbatch") and "refused" in err, err
    assert os.listdir(exp) == ["noisesweep.json"]  # its script, and the folder it made for it, gone
    assert (exp / "noisesweep.json").read_text() == "{}\n"


def test_two_jobs_sharing_a_host_and_the_nodes_of_one_job_get_ports_of_their_own():
    from sweeps.slurm import ports

    taken = {}
    for job in range(1000, 1020):  # Slurm gives ids in sequence: 20 jobs in a row, 4 nodes each
        for node in range(4):
            given = ports(job, node)
            span = set(range(given["min-worker-port"], given["max-worker-port"] + 1))
            mine = span | {p for flag, p in given.items() if "worker-port" not in flag}
            assert len(mine) == len(span) + len(given) - 2  # a node's own ports do not overlap
            assert all(1024 < p < 65536 for p in mine)
            clash = [other for other, theirs in taken.items() if mine & theirs]
            assert not clash, (job, node, clash)
            taken[(job, node)] = mine
