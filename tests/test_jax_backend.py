"""The pack engine on Keras's JAX backend (KERAS_BACKEND=jax), on the CPU, in a process
without TensorFlow (tests/jax_packs.py): a model of one's own with BatchNormalization and
dropout, a built-in classifier and a dense denoiser each train packed as alone."""

import json
import subprocess
import sys

import pytest

from tests.jax_packs import CASES
from tests.sweeps_running import ROOT

# One test process runs them all: the module's one JAX run (about 27 s) is made once, not
# once in each process that gets one of its tests.
pytestmark = pytest.mark.xdist_group("jax")


@pytest.fixture(scope="module")
def jax_run():
    done = subprocess.run([sys.executable, "-m", "tests.jax_packs"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_engine_runs_on_jax_without_tensorflow(jax_run):
    assert jax_run["backend"] == "jax"
    assert not jax_run["tensorflow_loaded"]


@pytest.mark.parametrize("case", list(CASES))
def test_a_pack_on_jax_trains_each_member_as_alone(jax_run, case):
    run = jax_run[case]
    assert run["vectorized"]  # the model's own call, vectorised by jax.vmap
    assert run["same_start"] == [True, True]  # each member starts from its solo trial's weights
    metric = "val_binary_accuracy" if CASES[case].get("task") == "denoise" else "val_accuracy"
    for packed, solo in zip(run["packed"], run["solo"]):
        assert [r["epoch"] for r in packed] == [r["epoch"] for r in solo] == [1, 2]
        for p, s in zip(packed, solo):
            assert abs(p[metric] - s[metric]) <= 2e-3, (p, s)
            for key in ("loss", "val_loss"):
                assert p[key] == pytest.approx(s[key], rel=0.01), (key, p, s)
    first, second = (rows[-1]["loss"] for rows in run["packed"])
    assert first != second  # other seeds and L2 factors: other numbers
    assert run["packed"][0][-1]["loss"] < run["packed"][0][0]["loss"]  # it learns
