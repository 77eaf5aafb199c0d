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
from sweeps.training.feeds import SplitFeed, prepare
from sweeps.grids import trial_config
member = trial_config({"arch": "mlp64", "seed": 0, "noise_type": "gaussian", "noise_scale": 0.1}, {})
feed = SplitFeed(prepare([member], np.zeros((20, 28, 28), np.uint8), np.zeros(20, np.uint8), "train", (28, 28, 1)))
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


# The runner's driver: trials asking for half a GPU on a Ray without one. Ray's autoscaler
# reports the infeasible request every half minute (caught here, as Ray sends it, by a handler
# of the test's own); the console shows the live view's one line instead.
WAITING = """
import sys, time
import ray
from sweeps.quiet import quiet_ray_driver
from sweeps.console import LiveView
from sweeps.progress import Sweep
quiet_ray_driver()
ray.init(num_cpus=1, num_gpus=0, logging_level="ERROR")  # no GPU, also on a machine with one
sent = []
ray._private.worker.global_worker_stdstream_dispatcher.add_handler("test", lambda data: sent.extend(data["lines"]))
@ray.remote(num_gpus=0.5)
def train(): return 1
pending = train.remote()
configs = [{"arch": "mlp64", "seed": s, "epochs": 2} for s in (0, 1)]
view = LiveView(Sweep(configs, [[0], [1]], slots=1), gpus=0.5, waiting_s=0)
view.on_step_end(0, [])  # a line
view.waiting_s = 3600
deadline = time.time() + 60
while not any("No available node types" in line for line in sent) and time.time() < deadline:
    view.on_step_end(0, [])  # no more lines for an hour
    time.sleep(0.2)
print("ray said:", any("No available node types" in line for line in sent), flush=True)
"""


def test_trials_waiting_for_a_gpu_are_one_line_of_the_live_view_not_the_autoscalers():
    proc = subprocess.run([sys.executable, "-c", WAITING], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "ray said: True" in proc.stdout, out
    assert out.count("waiting for a GPU: each Tune trial asks 0.5 on one node and this Ray cluster's nodes have "
                     "at most 0; 2 configs wait until a GPU node joins") == 1, out
    assert "No available node types" not in out and "(autoscaler" not in out, out


# A runner started as a background command of a script (the Slurm job's), with SIGINT ignored
# as bash does for those: the first TERM stops it all the same, outside Tune's handler too,
# and the TERMs after it are ignored.
TERMED = """
import os, signal, sys, time
from sweeps.run import term_as_interrupt
assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
signal.signal(signal.SIGTERM, term_as_interrupt())
try:
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    print("not stopped")
except KeyboardInterrupt:
    print("stopped", flush=True)
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(0.2)
print("a second TERM ignored", flush=True)
"""


def test_the_first_term_stops_a_runner_whose_sigint_is_ignored_and_later_ones_are_ignored():
    import signal

    proc = subprocess.run([sys.executable, "-c", TERMED], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert proc.returncode == 0 and proc.stdout == "stopped\na second TERM ignored\n", proc.stdout + proc.stderr
