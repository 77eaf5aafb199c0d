"""What a user sees: the runner's live view with stdout to a file, and `noisesweep status`
on a running, an interrupted (Ctrl-C, then the printed resume command) and a finished
experiment, checked against the logs."""

import re
import signal
import subprocess
import sys

from tests.sweeps_running import ROOT, Runner, hold_trial_workers, release, rows_by_trial, run, runner_cmd, wait_until
from tests.synthetic import write_mnist_cache

EPOCHS = 12
# Three configs alone (--pack 1) on two slots: one waits.
GRID = f"""
    defaults: {{dataset: mnist, arch: mlp500_300, epochs: {EPOCHS}, noise_type: gaussian, noise_scale: 0.1}}
    blocks:
      - {{seed: [0, 1, 2]}}
"""
DURATION = r"(\d+h\d\dm|(\d+m)?\d+s)"  # sweeps.progress.duration: 7s, 1m12s, 2h05m; a slow machine's first minute passes
NOISE = ("cuInit", "NodeDef", "oneDNN", "absl", "cudart", "Trial status", "Checkpoint successfully", "INFO")


def status(run_dir):
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "status", str(run_dir)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    counts = dict((k, int(v)) for v, k in re.findall(r"(\d+) (\w+)", lines[1].split("(of")[0]))
    done, planned = map(int, re.search(r"epochs: (\d+)/(\d+) done", proc.stdout).groups())
    return lines[0], counts, done, planned, proc.stdout


def test_live_view_and_status_through_a_sweeps_life(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=3000, n_test=500)
    cmd, env = runner_cmd(tmp_path, GRID, "life", "--pack", "1", num_cpus=2)  # two running
    exp = tmp_path / "runs" / "life"
    sweep = Runner(cmd, env, tmp_path / "runner.log")
    rows = wait_until(lambda: (lambda r: r if sum(map(len, r.values())) >= 3 else None)(rows_by_trial(exp)),
                      what="three reported epochs")

    # Running: the configs per state and the epochs match the logs read at the same time. The
    # workers are held meanwhile (`status` takes seconds, in which a fast machine could end a
    # trial), and still held when Ctrl-C comes, so that the sweep is stopped mid-run.
    held = hold_trial_workers(sweep.pid)
    try:
        head, counts, done, planned, out = status(exp)
        after = rows_by_trial(exp)
        sweep.proc.send_signal(signal.SIGINT)
    finally:
        release(held)
    assert head.startswith("life: running (pid ")
    assert planned == 3 * EPOCHS and sum(map(len, rows.values())) <= done <= sum(map(len, after.values()))
    assert counts["running"] == 2 and counts["pending"] == 1 and counts["finished"] == 0
    assert re.search(rf"elapsed {DURATION}, ETA {DURATION}", out), out
    assert sweep.wait() == 130
    live = sweep.output()

    # Interrupted: nothing running any more; what trained stays counted.
    head, counts, done, planned, _ = status(exp)
    logged = rows_by_trial(exp)
    assert head == "life: stopped (resume with --resume)"
    assert done == sum(len(r) for r in logged.values()) and counts["running"] == 0
    ended_before = sum(len(r) == EPOCHS for r in logged.values())
    assert counts["finished"] == ended_before and counts["unfinished"] == len(logged) - ended_before
    assert counts["pending"] == 3 - len(logged)

    # The summary names the unfinished configs and prints the command that finishes them.
    assert "unfinished" in live
    printed = next(line for line in live.splitlines() if line.startswith("resume with: "))
    resume_cmd = printed[len("resume with: "):].split()
    assert resume_cmd[:2] == ["python", "sweeps/run.py"] and "--resume" in resume_cmd
    resumed = run([sys.executable, *resume_cmd[1:], "--cache-dir", str(tmp_path / "cache"), "--num-cpus", "2"], env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    # Each epoch logged once, those before the stop and those after the resume.
    assert sorted(len(r) for r in rows_by_trial(exp).values()) == [EPOCHS] * 3
    assert all([r["epoch"] for r in rows] == list(range(1, EPOCHS + 1)) for rows in rows_by_trial(exp).values())
    head, counts, done, planned, out = status(exp)
    assert head == "life: finished" and counts["finished"] == 3 and done == planned == 3 * EPOCHS
    final_rows = [r[-1] for r in rows_by_trial(exp).values()]
    mean = sum(r["val_accuracy"] for r in final_rows) / 3
    assert f"best val_accuracy: mlp500_300 gaussian0.1_l2-0, {mean:.4f} (mean of 3 seeds)" in out, out

    for text in (live, resumed.stdout):
        assert "\x1b" not in text and "\r" not in text  # plain lines in a file
        noisy = [line for line in text.splitlines() if any(n in line for n in NOISE)]
        assert not noisy, noisy
    progress = [line for line in live.splitlines() if line.startswith("[")]
    assert progress[0].startswith("[0/3 configs done, 1 running, 2 pending] elapsed") and "ETA estimating" in progress[0]
    assert any(re.search(rf"ETA {DURATION}", line) for line in progress)  # once an epoch time is known
    final = [line for line in resumed.stdout.splitlines() if line.startswith("[")][-1]
    assert final.startswith("[3/3 configs done] elapsed") and "best so far: mlp500_300 " in final
    # one line per config as it ends (before the stop or after the resume), in the summary's words
    ended = [line for line in (live + resumed.stdout).splitlines() if re.match(r"  \S+: finished, epochs ", line)]
    assert len(ended) == len({line.split(":")[0] for line in ended}) == 3
    shown = sorted(float(line.rsplit(" ", 1)[1]) for line in ended)
    assert all(f"epochs {EPOCHS}/{EPOCHS}, val_accuracy " in line for line in ended)
    assert shown == sorted(round(r["val_accuracy"], 4) for r in final_rows)
    assert "3/3 configs finished (0 diverged, 0 errored, 0 unfinished)" in resumed.stdout
    assert len(resumed.stdout.splitlines()) <= 25, resumed.stdout


def test_status_of_a_folder_that_is_no_experiment_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "status", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {tmp_path}: not an experiment folder " \
                                                         "(no noisesweep.json)"


def test_noisesweep_grids_lists_every_shipped_grid_with_its_trial_count(tmp_path):
    from sweeps.grids import known_grids, load_grid

    proc = subprocess.run([sys.executable, "-m", "sweeps.cli", "grids"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    listed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+): (\d+) configs", proc.stdout, re.M)}
    grids = {name: load_grid(name) for name in known_grids()}
    assert listed == {name: len(g.trials) for name, g in grids.items() if not g.search}
    searches = {m.group(1): (int(m.group(2)), int(m.group(3)))
                for m in re.finditer(r"^(\w+): search of (\d+) configs x (\d+) replicates", proc.stdout, re.M)}
    assert searches == {name: (g.search["configs"], g.search["replicates"]) for name, g in grids.items() if g.search}
    assert searches  # search_mlp500_300
    assert re.search(r"^l2: 15 configs \(l2:tiny 2\)\..*\n  reproduces: study 001 2d", proc.stdout, re.M)
    # The runner lists the same, and starts nothing.
    same = subprocess.run([sys.executable, "sweeps/run.py", "--list", "--storage-path", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and same.stdout == proc.stdout and not (tmp_path / "runs").exists()
