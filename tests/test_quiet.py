"""What the runner keeps off the console in its Ray workers (sweeps.quiet)."""

import os
import subprocess
import sys

import pytest

from tests.sweeps_running import ROOT

# A worker stopped by Ctrl-C while a weakref callback runs, then a real error in one.
SCRIPT = """
import gc, sys, weakref
from sweeps.quiet import quiet_ray_workers
quiet_ray_workers()
class A: pass
def stopped(_): raise KeyboardInterrupt
def broken(_): raise ValueError("a real error")
a, b = A(), A()
r1, r2 = weakref.ref(a, stopped), weakref.ref(b, broken)
del a; gc.collect()
print("after the stop", flush=True)
del b; gc.collect()
"""


def test_a_stopped_workers_ignored_interrupt_is_not_printed_and_other_errors_are():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "after the stop\n"
    assert "KeyboardInterrupt" not in proc.stderr
    assert proc.stderr.count("Exception ignored in") == 1 and "ValueError: a real error" in proc.stderr


# Pack after pack in one worker, as a reused Ray actor trains them: each pack's compiled
# step is traced anew, which TensorFlow reports as retracing. Then a warning of another kind.
PACKS = """
from sweeps.quiet import import_tensorflow
tf = import_tensorflow()

class Pack:
    def __init__(self, k):
        self.w = tf.Variable(tf.ones([k]))
        self.step = tf.function(self._step)
    def _step(self, x):
        return tf.reduce_sum(self.w * x)

for k in range(1, 9):
    Pack(k).step(tf.ones([k]))
tf.get_logger().warning("a warning of another kind")
"""


def test_a_worker_training_pack_after_pack_does_not_warn_of_retracing(monkeypatch):
    monkeypatch.delenv("NOISESWEEP_VERBOSE", raising=False)
    proc = subprocess.run([sys.executable, "-c", PACKS], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "retracing" not in proc.stderr and "a warning of another kind" in proc.stderr
    # -v shows everything, this warning included.
    proc = subprocess.run([sys.executable, "-c", PACKS], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NOISESWEEP_VERBOSE": "1"})
    assert proc.returncode == 0 and "triggered tf.function retracing" in proc.stderr


# A pack's noise draws (float16) made into tensors with TensorFlow's oneDNN kernels on: on a
# CPU without AVX-512 oneDNN logs an error line at a process's first float16 op.
HALF = """
import numpy as np
from sweeps.quiet import import_tensorflow
tf = import_tensorflow()
# A trial sets its threads after the import (sweeps.training.trainable): nothing may have run yet.
tf.config.threading.set_intra_op_parallelism_threads(1)
from sweeps.training.batches import SplitFeed
from sweeps.grids import trial_config
member = trial_config({"arch": "mlp64", "seed": 0, "noise_type": "gaussian", "noise_scale": 0.1}, {})
feed = SplitFeed([member], np.zeros((20, 28, 28), np.uint8), np.zeros(20, np.uint8), "train")
print(tuple(feed.inputs(tf.constant([[0, 1, 2]])).shape))
"""


def test_a_worker_with_onednn_prints_no_float16_fallback_line(monkeypatch):
    monkeypatch.delenv("NOISESWEEP_VERBOSE", raising=False)
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}  # as a runner's worker has them
    shown = subprocess.run([sys.executable, "-c", HALF], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**env, "NOISESWEEP_VERBOSE": "1"})  # -v: nothing kept off
    if "DT_HALF" not in shown.stderr:
        pytest.skip("this CPU has AVX-512: oneDNN logs nothing about float16 here")
    proc = subprocess.run([sys.executable, "-c", HALF], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and proc.stdout == "(1, 3, 28, 28, 1)\n", proc.stderr[-2000:]
    assert "DT_HALF" not in proc.stderr and "oneDNN" not in proc.stderr, proc.stderr[-2000:]
