"""Models of one's own (tests/user_models.py: BatchNormalization, a residual Add, dropout)
through the runner and real Ray Tune: a killed pack's worker restarts from its checkpoint
with every epoch once and the numbers of an uninterrupted run, and a model that cannot
train is refused before Ray starts."""

import os
import signal

import pytest

from tests.sweeps_running import Runner, rows_by_trial, run, run_to_end, runner_cmd, wait_until
from tests.synthetic import write_mnist_cache

GRID = """
    # two seeds, the second with an L2 factor: one pack of two members apart in both
    defaults: {arch: bn_resnet, epochs: 3, noise_type: gaussian, noise_scale: 0.2, train_subset: 800,
               test_subset: 500}
    blocks:
      - {seed: 0, l2: 0.0}
      - {seed: 1, l2: 0.001}
"""


def user_cmd(tmp_path, grid, name, *extra):
    cmd, env = runner_cmd(tmp_path, grid, name, *extra)
    return cmd, {**env, "NOISESWEEP_TASKS": "tests.user_models"}


def by_config(exp) -> dict:
    """Config label (a pack member's folder name less its place) -> its rows."""
    out = {}
    for name, rows in rows_by_trial(exp).items():
        leaf = name.split("/")[-1]
        # a member's folder ends in its place (_m01), a lone trial's in Tune's id (_f6056_00003)
        out[leaf.rsplit("_m", 1)[0] if "/" in name else leaf.rsplit("_", 2)[0]] = rows
    return out


def test_a_killed_pack_of_models_of_ones_own_restarts_with_the_numbers_of_an_uninterrupted_run(tmp_path):
    """Packed as alone is tests/test_vectorized.py's (the same Pack the trainable runs)."""
    write_mnist_cache(tmp_path / "cache", n_train=800, n_test=500)
    run_to_end(*user_cmd(tmp_path, GRID, "whole", "--pack", "2"), "2/2")
    packed = by_config(tmp_path / "runs" / "whole")
    assert len(packed) == 2 and all([r["epoch"] for r in rows] == [1, 2, 3] for rows in packed.values())
    assert sum(1 for d in os.listdir(tmp_path / "runs" / "whole") if d.startswith("pack_")) == 1
    assert all(rows[-1]["val_accuracy"] > rows[0]["val_accuracy"] or rows[0]["val_accuracy"] == 1.0
               for rows in packed.values())  # they learn

    # The same packed sweep, its pack's worker killed once a member has an epoch logged.
    epochs = 3
    sweep = Runner(*user_cmd(tmp_path, GRID, "kill", "--pack", "2"), tmp_path / "runner.log")
    exp = tmp_path / "runs" / "kill"

    def pack_one_epoch_in():
        for name, rows in rows_by_trial(exp).items():
            if "/" in name and rows:
                os.kill(rows[-1]["pid"], signal.SIGSTOP)  # held: it cannot finish while we look
                return rows[-1]
        return None

    seen = wait_until(pack_one_epoch_in, what="an epoch of the pack")
    assert seen["epoch"] < epochs, "the kill came after the last epoch"
    os.kill(seen["pid"], signal.SIGKILL)
    assert sweep.wait() == 0, sweep.output()[-4000:]
    killed = by_config(exp)
    assert set(killed) == set(packed)
    for config, rows in killed.items():
        assert [r["epoch"] for r in rows] == [1, 2, 3], config  # every epoch once
        assert rows[-1]["pid"] != seen["pid"]  # a new worker carried on from the checkpoint
        for r, u in zip(rows, packed[config]):  # ...with the numbers of the uninterrupted run
            for key in ("loss", "val_loss", "val_accuracy"):
                assert r[key] == pytest.approx(u[key], rel=1e-6), (config, key)


@pytest.mark.parametrize("arch, extra, words", [
    ("not_a_model", "", "its builder returned a str, not a Keras model"),
    ("wrong_output", "", "its output is (3,), the dataset has 10 classes"),
    ("flat_denoiser", ", noise_type: gaussian, noise_scale: 0.3", "its output (784,) does not fit the denoise task's loss"),
    ("ignores_l2", ", l2: [0, 0.0001]", "built with l2 = 0.0001 it adds no penalty, so every l2 of the grid trains the "
                                        "same model; give its weighted layers kernel_regularizer="),
])
def test_a_model_that_cannot_train_is_refused_before_ray_starts(tmp_path, arch, extra, words):
    write_mnist_cache(tmp_path / "cache", n_train=200, n_test=100)
    # --pack 1: `auto` would time the model first (test_pack_auto_...), and then refuse it the same
    proc = run(*user_cmd(tmp_path, f"{{arch: {arch}, seed: [0, 1]{extra}}}", "bad", "--pack", "1"))
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], proc.stderr
    assert f"arch = {arch!r} (a model of your own, tests.user_models.{arch})" in lines[0]
    assert "ray" not in proc.stdout.lower()
    assert not (tmp_path / "runs" / "bad").exists()  # nothing on disk


def test_pack_auto_measures_a_model_of_ones_own_once_and_says_what_it_chose(tmp_path):
    """`--pack auto` on a CPU times packs of the model in the trials' engine (sweeps.pack_speed),
    picks the K with the most member-steps per second (or the smallest within 5 % of it),
    keeps the figures in the cache folder, and reads them the next time."""
    import json
    import re

    grid = "{arch: bn_plain, seed: [0, 1, 2, 3], noise_type: gaussian, noise_scale: 0.2}"
    cmd, env = user_cmd(tmp_path, grid, "auto", "--dry-run")
    env = {**env, "NOISESWEEP_AUTO_SIZES": "1,2"}
    first = run(cmd, env)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    line = next(l for l in first.stdout.splitlines() if l.startswith("pack auto: bn_plain"))
    cache = tmp_path / "cache" / "pack_speed.json"
    assert "kept in " + str(cache) in line
    (entry,) = json.loads(cache.read_text()).values()
    rates = {int(k): r for k, r in entry["rates"].items()}
    assert entry["arch"] == "bn_plain" and set(rates) == {1, 2} and all(r > 0 for r in rates.values())
    shown = {int(k): r for k, r in re.findall(r"K=(\d+) (\d+)", line)}
    assert shown == {k: f"{r:.0f}" for k, r in rates.items()}, line  # the figures kept are those shown
    best = max(rates.values())
    k = min(k for k, r in rates.items() if r >= 0.95 * best)
    assert entry["k"] == k
    assert line.startswith(f"pack auto: bn_plain: {k} member{'s' if k > 1 else ''} a pack, measured on this CPU")
    packs = "2 Tune trials: 2 packs of configs trained together (sizes 2, 2), 0 alone"
    assert (packs in first.stdout) == (k == 2), first.stdout
    second = run(cmd, env)
    assert second.returncode == 0
    again = next(l for l in second.stdout.splitlines() if l.startswith("pack auto: bn_plain"))
    assert again == line.replace("kept in", "read from")  # the same figures, not measured again
