"""Packed sweeps through the runner and real Ray Tune: members are trials everywhere a user looks."""

import json
import os
import pickle
import re
import signal
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from analysis.load import load_experiment
from sweeps.storage import Storage
from sweeps.training import tensorboard
from tests.sweeps_running import Runner, rows_by_trial, run_to_end, runner_cmd, wait_until
from tests.synthetic import write_mnist_cache

GRID = """
    # two seeds x two L2 factors that learn, and one member whose L2 blows it up
    defaults: {dataset: mnist, arch: mlp64, epochs: 3, noise_type: gaussian, noise_scale: 0.2}
    blocks:
      - {seed: [0, 1], l2: [0.0, 0.001]}
      - {seed: 2, l2: 10000.0}
"""


def tensorboard_curves(exp) -> dict:
    """Run (folder under `exp`, as TensorBoard names it) -> {tag: [(step, value)]}, read
    with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer(size_guidance={"scalars": 0}).AddRunsFromDirectory(str(exp))
    mux.Reload()
    return {run: {tag: [(e.step, e.value) for e in mux.Scalars(run, tag)] for tag in tags["scalars"]}
            for run, tags in mux.Runs().items()}


def check_tensorboard_matches_logs(exp, df) -> None:
    """Every config (a pack's members too) is a TensorBoard run under its folder's name,
    with each epoch's val_accuracy and loss as its result.json has them (a diverged
    epoch's NaN left out, as Tune leaves it out)."""
    curves = tensorboard_curves(exp)
    for trial, rows in df.sort_values("epoch").groupby("trial"):
        assert trial in curves, (trial, sorted(curves))
        for metric in ("val_accuracy", "loss"):
            logged = [(int(e), float(v)) for e, v in zip(rows["epoch"], rows[metric]) if np.isfinite(v)]
            shown = curves[trial].get("ray/tune/" + metric, [])
            assert [e for e, _ in shown] == [e for e, _ in logged], (trial, metric)
            assert [v for _, v in shown] == pytest.approx([v for _, v in logged], rel=1e-6)


def test_a_member_writer_killed_mid_write_leaves_tensorboard_one_run_with_each_epoch_once(tmp_path):
    """A worker SIGKILLed between writing a member's event file and renaming it into place
    (as a fault test once caught it) leaves its half write on disk; the restarted worker's
    whole file must be the only one TensorBoard reads for that member."""
    rows = [{"epoch": e, "val_accuracy": 0.5 + e / 100, "loss": 1.0 / e, "timestamp": 1000.0 + e} for e in range(1, 7)]
    member = tmp_path / "exp" / "pack_0" / "m00"
    killed = (f"import os, signal, pickle, sys; from sweeps.storage import Storage\n"
              f"os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)  # the kill lands before the rename\n"
              f"Storage({str(tmp_path / 'exp')!r}).write_bytes(pickle.loads(sys.stdin.buffer.read()), 'pack_0', 'm00', "
              f"{tensorboard.EVENT_FILE!r})\n")
    proc = subprocess.run([sys.executable, "-c", killed], input=pickle.dumps(tensorboard.event_file(rows[:2])),
                          cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == -signal.SIGKILL and len(os.listdir(member)) == 1  # its half write, left behind
    Storage(str(tmp_path / "exp")).write_bytes(tensorboard.event_file(rows), "pack_0", "m00", tensorboard.EVENT_FILE)
    curves = tensorboard_curves(tmp_path / "exp")
    assert sorted(curves) == ["pack_0/m00"]
    assert [e for e, _ in curves["pack_0/m00"]["ray/tune/val_accuracy"]] == [1, 2, 3, 4, 5, 6]


def test_a_packed_sweep_reports_as_the_same_sweep_run_alone(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=2000, n_test=1000)
    summaries = {}
    for pack in ("5", "1"):
        cmd, env = runner_cmd(tmp_path, GRID, f"p{pack}", "--pack", pack, "--report")
        proc = run_to_end(cmd, env, "5/5")
        assert "5/5 configs finished (1 diverged, 0 errored, 0 unfinished)" in proc.stdout
        exp = tmp_path / "runs" / f"p{pack}"
        df = load_experiment(str(exp))
        assert df["trial"].nunique() == 5  # one trial per config, packed or not
        finals = df.groupby("trial")["epoch"].max()
        assert sorted(finals.tolist()) == [1, 3, 3, 3, 3]  # the diverged member stopped at its epoch 1
        assert df.loc[df["l2"] == 10000.0, "diverged"].tolist() == [True]
        check_tensorboard_matches_logs(exp, df)
        summaries[pack] = pd.read_csv(exp / "report" / "summary.csv").sort_values("l2").reset_index(drop=True)
        if pack == "5":
            spec = json.loads((exp / "noisesweep.json").read_text())
            # One pack, its members in the interleaved order: the lone seed-2 cell's config (4)
            # ranks with the seed-0 ones, before the seed-1 ones.
            assert [step["packs"] for step in spec["steps"]] == [[[0, 1, 4, 2, 3]]]
            packs = [d for d in os.listdir(exp) if d.startswith("pack_mlp64_5m_")]
            assert len(packs) == 1
            members = json.loads((exp / packs[0] / "members.json").read_text())
            assert sorted(df["trial"].unique()) == sorted(f"{packs[0]}/{m}" for m in members)
            assert f"{packs[0]}/mlp64_gaussian0.2_l2-0_s0_m00: finished, epochs 3/3, val_accuracy" in proc.stdout
            for m in members:
                assert json.loads((exp / packs[0] / m / "params.json").read_text())["arch"] == "mlp64"
        else:
            assert not any(d.startswith("pack_") for d in os.listdir(exp))
    packed, alone = summaries["5"], summaries["1"]
    assert len(packed) == len(alone) == 3  # L2 0, 0.001 (2 seeds each) and the diverged cell
    assert packed["n"].tolist() == alone["n"].tolist()
    assert packed["n_diverged"].tolist() == alone["n_diverged"].tolist()
    learned = packed["n_diverged"] == 0
    assert (packed.loc[learned, "val_accuracy_mean"] - alone.loc[learned, "val_accuracy_mean"]).abs().max() <= 2e-3
    assert packed.loc[learned, "val_loss_mean"].tolist() == pytest.approx(
        alone.loc[learned, "val_loss_mean"].tolist(), rel=0.01)


def test_killed_workers_of_a_pack_and_a_lone_trial_restart_from_their_checkpoints(tmp_path):
    """Seeds 0 and 1 in one pack and seed 2 alone, side by side; both workers SIGKILLed mid-run:
    Tune restarts each in a new worker from its checkpoint, every epoch logged once."""
    write_mnist_cache(tmp_path / "cache", n_train=4000, n_test=500)
    epochs = 6
    cmd, env = runner_cmd(tmp_path, f"{{arch: mlp500_300, epochs: {epochs}, seed: [0, 1, 2]}}\n", "kill",
                          "--pack", "2", "--max-failures", "2", num_cpus=2)  # side by side
    sweep = Runner(cmd, env, tmp_path / "runner.log")
    exp = tmp_path / "runs" / "kill"
    held = set()

    def both_two_epochs_in():
        rows = rows_by_trial(exp)
        pack = next((r for n, r in rows.items() if "/" in n and len(r) >= 2), None)
        alone = next((r for n, r in rows.items() if "/" not in n and len(r) >= 2), None)
        for r in (pack, alone):
            # Each worker stopped (SIGSTOP) once it is two epochs in, so that the faster of the two
            # cannot end its trial while the other gets there.
            if r and r[-1]["pid"] not in held:
                held.add(r[-1]["pid"])
                os.kill(r[-1]["pid"], signal.SIGSTOP)
        return (pack, alone) if pack and alone else None

    pack_rows, alone_rows = wait_until(both_two_epochs_in, what="two epochs of the pack and of the lone trial")
    killed = {"pack": (pack_rows[-1]["pid"], pack_rows[-1]["epoch"]),
              "alone": (alone_rows[-1]["pid"], alone_rows[-1]["epoch"])}
    for pid, _ in killed.values():
        os.kill(pid, signal.SIGKILL)  # each worker, mid-run
    assert sweep.wait() == 0, sweep.output()[-4000:]
    out = sweep.output()
    trials = rows_by_trial(exp)
    assert len(trials) == 3
    # Each loss and each retry's end is one line of the live view; the tracebacks stay in error.txt.
    retries = re.findall(r"^  (pack_\S+ \(2 configs\)|\S+): worker lost; retry 1 of 2 from epoch (\d+)$", out, re.M)
    assert sorted(name.endswith("(2 configs)") for name, _ in retries) == [False, True], out
    assert out.count(", after 1 retry") == 3, out  # the pack's 2 members and the lone config
    assert not any(s in out for s in ("Traceback", "ActorDiedError", "A worker died")), out
    for name, rows in trials.items():
        killed_pid, seen = killed["pack" if "/" in name else "alone"]
        # The last epoch the killed worker reported: Tune's driver may log one it had queued
        # after the rows above were read (and a pack may train the one it had logged again).
        killed_after = max([seen, *(r["epoch"] for r in rows if r["pid"] == killed_pid)])
        assert killed_after < epochs, f"{name}: the kill came after the last epoch"
        assert [r["epoch"] for r in rows] == list(range(1, epochs + 1)), name  # every epoch once
        after = [r for r in rows if r["epoch"] > killed_after]
        assert after and killed_pid not in {r["pid"] for r in after}  # a new worker carried on...
        if "/" in name:
            # ...from the checkpoint: the epochs before the kill's are the dead worker's. (The epoch
            # a pack had logged when killed may be trained again: its members' rows are written
            # just before the checkpoint that holds them, and replaced when that epoch is redone.)
            assert {r["pid"] for r in rows if r["epoch"] < killed_after} == {killed_pid}
        else:
            assert {r["pid"] for r in rows if r["epoch"] <= killed_after} == {killed_pid}
            assert after[0]["epoch"] == killed_after + 1  # from the checkpoint, not from scratch
            lone_retry = next(int(e) for n, e in retries if not n.endswith("(2 configs)"))
            assert lone_retry == after[0]["epoch"], out  # the retry line says where it went on from
    check_tensorboard_matches_logs(exp, load_experiment(str(exp)))  # there too, every epoch once
