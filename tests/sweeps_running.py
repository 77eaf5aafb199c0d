"""Starting the runner as a user does (a subprocess) and watching its experiment folder."""

import glob
import json
import os
import subprocess
import sys
import textwrap
import time

from analysis.load import read_json_lines, trial_dirs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def runner_cmd(tmp_path, grid_text, name, *extra, num_cpus=1):
    """(command, environment) of `sweeps/run.py` on a grid written to tmp_path, with the
    storage and dataset cache in tmp_path. One trial slot unless the test needs two at once
    (`num_cpus=2`; None: no --num-cpus): each slot is a Ray worker that imports TensorFlow and
    compiles its packs, about 10 s of CPU here, and the suite is bound by its CPU."""
    grid = tmp_path / f"{name}.yaml"
    grid.write_text(textwrap.dedent(grid_text))
    cmd = [sys.executable, "sweeps/run.py", "--grid", str(grid), "--name", name,
           "--storage-path", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), *extra]
    if num_cpus:
        cmd += ["--num-cpus", str(num_cpus)]
    return cmd, {**os.environ, "RAY_DEDUP_LOGS": "0"}


class Runner:
    """A runner in the background, its output in a file: a pipe nobody drains while the
    test polls fills up and blocks the runner."""

    def __init__(self, cmd, env, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, text=True)

    @property
    def pid(self):
        return self.proc.pid

    def wait(self, timeout=300):
        try:
            self.proc.wait(timeout=timeout)
        finally:
            self.proc.kill()
            self._log.close()
        return self.proc.returncode

    def output(self):
        return open(self.log_path).read()


def hold_trial_workers(driver_pid) -> list:
    """SIGSTOP every Ray worker under a runner's driver (its embedded Ray's trial actors, idle
    ones too): no trial reports again, while the driver goes on saving Tune's state. The
    caller SIGKILLs what this returns once done with it."""
    import psutil

    held = []
    for proc in psutil.Process(driver_pid).children(recursive=True):
        try:
            title = " ".join(proc.cmdline())
            if title.startswith("ray::") and not title.startswith(("ray::DashboardAgent", "ray::RuntimeEnvAgent")):
                proc.suspend()
                held.append(proc)
        except psutil.NoSuchProcess:
            pass
    return held


def _signal_held(held, act) -> None:
    """`act` (psutil's resume or kill) on each process hold_trial_workers held, those still there."""
    import psutil

    for proc in held:
        try:
            act(proc)
        except psutil.NoSuchProcess:
            pass


def release(held) -> None:
    """SIGCONT what hold_trial_workers held."""
    _signal_held(held, lambda proc: proc.resume())


def kill_held(held) -> None:
    """SIGKILL what hold_trial_workers held, once its driver is gone: a stopped process
    cannot act on its Ray's end."""
    _signal_held(held, lambda proc: proc.kill())


def saved_statuses(tune_folder) -> dict:
    """Trial folder -> status in the newest Tune experiment state saved in `tune_folder` (an
    experiment's top or its grow-k/), {} while none is there or it is mid-copy: what a
    --resume would read."""
    paths = sorted(glob.glob(os.path.join(str(tune_folder), "experiment_state-*.json")), key=os.path.getmtime)
    if not paths:
        return {}
    try:
        with open(paths[-1]) as f:
            state = json.load(f)
        trials = [json.loads(trial) for trial, _ in state["trial_data"]]
        return {t["relative_logdir"]: t["status"] for t in trials}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def wait_until_saved(tune_folder, ended: int) -> list:
    """Wait until the saved experiment state records at least `ended` trials ended (Tune
    saves it about each second, and only what it holds survives a driver's SIGKILL
    exactly); their folders."""
    def ended_now():
        done = [name for name, status in saved_statuses(tune_folder).items() if status == "TERMINATED"]
        return done if len(done) >= ended else None

    return wait_until(ended_now, what=f"a saved state with {ended} trial(s) ended")


def run(cmd, env, timeout=300):
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def run_to_end(cmd, env, finished: str | None = None, timeout=300):
    """Run the runner to its end: exit 0, and `finished` ("4/4", ...) configs finished if given."""
    proc = run(cmd, env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    if finished:
        assert f"{finished} configs finished" in proc.stdout, proc.stdout[-3000:]
    return proc


def rows_by_trial(exp) -> dict:
    """Trial folder (a pack's member: PACK/MEMBER) -> the rows of its result.json (so far)."""
    if not os.path.isdir(exp):
        return {}
    out = {}
    for folder in trial_dirs(str(exp)):  # one per config: a pack's members, not the pack
        path = os.path.join(folder, "result.json")
        if os.path.isfile(path):
            out[os.path.relpath(folder, exp)] = read_json_lines(path)[0]
    return out


def epochs_of(exp) -> dict:
    """Trial folder -> the epochs its result.json holds, in order."""
    return {name: [r["epoch"] for r in rows] for name, rows in rows_by_trial(exp).items()}


def duplicated_epochs(exp) -> int:
    """Epochs logged more than once, over every trial."""
    return sum(len(e) - len(set(e)) for e in epochs_of(exp).values())


def wait_until(condition, timeout=240, every=0.05, what="the condition"):
    """Poll `condition()` until it returns something truthy; return it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
