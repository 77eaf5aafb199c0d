"""Growing a finished sweep with --resume and a larger grid: only the new configs train,
every earlier file stays byte for byte (even when the growth step's driver is SIGKILLed
and the same command is run again), and the experiment reads as one; the interleaved
order, checked on the order trials started in."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from analysis.load import load_experiment
from tests.sweeps_running import (ROOT, Runner, hold_trial_workers, kill_held, rows_by_trial, run, runner_cmd, wait_until,
                                  wait_until_saved)
from tests.synthetic import write_mnist_cache

EPOCHS = 2
FIRST = """
    defaults: {dataset: mnist, arch: mlp64, epochs: 2, noise_type: gaussian}
    blocks:
      - {noise_scale: [0.1, 0.3], seed: [0, 1]}
"""
# Two more seeds, one more noise scale: 12 configs, of which the first grid's 4.
GROWN = """
    defaults: {dataset: mnist, arch: mlp64, epochs: 2, noise_type: gaussian}
    blocks:
      - {noise_scale: [0.1, 0.3, 0.5], seed: [0, 1, 2, 3]}
"""


def files(exp) -> dict:
    """Every file under the experiment's trial folders (a pack's members too) -> its bytes."""
    out = {}
    for name in rows_by_trial(exp):
        for f in (exp / name).iterdir():
            if f.is_file():
                out[str(f.relative_to(exp))] = f.read_bytes()
    return out


def config(exp, name) -> dict:
    return json.loads((exp / name / "params.json").read_text())


@pytest.mark.faults
def test_growing_a_finished_sweep_trains_only_the_new_configs(tmp_path, fault_record):
    write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=500)
    exp = tmp_path / "runs" / "g"
    # One at a time and alone: the order trials start in is the order Tune numbered them.
    cmd, env = runner_cmd(tmp_path, FIRST, "g", "--pack", "1", "--max-concurrent", "1")
    first = run(cmd, env)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    rows = rows_by_trial(exp)
    assert len(rows) == 4
    by_start = sorted(rows.items(), key=lambda kv: kv[0].rsplit("_", 1)[1])  # Tune's trial number
    # Interleaved (the default): both cells' seed 0 before either cell's seed 1, though the
    # grid declares the seeds innermost.
    assert [config(exp, name)["seed"] for name, _ in by_start] == [0, 0, 1, 1]
    starts = [r[0]["timestamp"] for _, r in by_start]
    assert starts == sorted(starts)
    before, names_before = files(exp), set(rows)

    # Alone, two at a time.
    grow, _ = runner_cmd(tmp_path, GROWN, "g", "--resume", "--report", "--pack", "1")
    dry = run(grow + ["--dry-run"], env)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines()[0] == "g: 4 configs finished (skipped), 0 not finished (continued), 8 new (to run)"
    assert dry.stdout.count("  new: ") == 8 and dry.stdout.count("  skipped: ") == 4
    assert files(exp) == before

    # The growth step's driver SIGKILLed once two of its configs have finished, then the
    # same command again: the first step is untouched, what finished is not trained again.
    sweep = Runner(grow, env, tmp_path / "grow.log")
    new_done = wait_until(lambda: (lambda d: d if len(d) >= 2 else None)(
        [n for n, r in rows_by_trial(exp).items() if n.startswith("grow-2/") and len(r) == EPOCHS]),
        what="two configs of the growth step finished")
    # The workers held first: a config takes well under a second here (the actors are reused),
    # so the rest of the step could otherwise finish in the wait below.
    held = hold_trial_workers(sweep.pid)
    assert held, "no Ray worker under the runner to hold"
    # What the saved state records survives the kill exactly: wait until it records those two.
    wait_until_saved(exp / "grow-2", ended=len(new_done))
    os.kill(sweep.pid, signal.SIGKILL)
    sweep.wait()
    kill_held(held)
    killed_with = sum(n.startswith("grow-2/") and len(r) == EPOCHS for n, r in rows_by_trial(exp).items())
    assert killed_with < 8, "the growth step ended before the kill: nothing was cut short"
    finished_new = {n: (exp / n / "result.json").read_bytes() for n in new_done}
    t0 = time.perf_counter()
    grown = run(grow, env)
    recover = time.perf_counter() - t0
    assert grown.returncode == 0, grown.stdout[-3000:] + grown.stderr[-3000:]
    assert "configs finished (0 diverged, 0 errored, 0 unfinished)" in grown.stdout
    assert {n: (exp / n / "result.json").read_bytes() for n in new_done} == finished_new
    seen = {n: [row["epoch"] for row in r] for n, r in rows_by_trial(exp).items()}
    assert all(e == list(range(1, EPOCHS + 1)) for e in seen.values()), seen  # each epoch once
    fault_record(fault="driver SIGKILL while a growth step runs, then the same command", trials=12, epochs=EPOCHS,
                 trials_lost=0, epochs_duplicated=0, trainings_repeated=0, recover_s=round(recover, 1),
                 finished_before_kill=4 + killed_with)
    after = files(exp)
    assert {k: after[k] for k in before} == before  # every earlier file, byte for byte
    rows = rows_by_trial(exp)
    new = {name for name in rows if name.startswith("grow-2/")}
    assert len(rows) == 12 and len(new) == 8 and set(rows) - new == names_before
    trained = sorted((config(exp, n)["noise_scale"], config(exp, n)["seed"]) for n in new)
    assert trained == sorted([(s, d) for s in (0.1, 0.3) for d in (2, 3)] + [(0.5, d) for d in range(4)])
    record = json.loads((exp / "noisesweep.json").read_text())
    assert [s["folder"] for s in record["steps"]] == ["", "grow-2"]
    assert [len(s["trials"]) for s in record["steps"]] == [4, 8]

    # The report reads one experiment: 3 cells of 4 seeds, means as computed by hand.
    summary = pd.read_csv(exp / "report" / "summary.csv")
    assert sorted(summary["noise_scale"]) == [0.1, 0.3, 0.5] and summary["n"].tolist() == [4, 4, 4]
    df = load_experiment(str(exp))
    last = df[df["epoch"] == 2]
    for _, cell in summary.iterrows():
        finals = last.loc[last["noise_scale"] == cell["noise_scale"], "val_accuracy"]
        assert len(finals) == 4
        assert cell["val_accuracy_mean"] == pytest.approx(sum(finals) / 4, abs=1e-9)

    status = subprocess.run([sys.executable, "-m", "sweeps.cli", "status", str(exp)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert status.stdout.splitlines()[:3] == [
        "g: finished", "configs: 12 finished, 0 running, 0 pending, 0 diverged, 0 errored, 0 unfinished (of 12)",
        "epochs: 24/24 done"]

    again = run(grow, env)
    assert again.returncode == 0 and "12 configs finished (skipped), 0 not finished (continued), 0 new" in again.stdout
    assert "nothing to run" in again.stdout and files(exp) == after
