"""Fixtures shared by test files."""

import json
import os

import pytest


@pytest.fixture
def fault_record(request):
    """Record a fault test's facts as a JSON line in $NOISESWEEP_FAULT_LOG (if set), from
    which docs/RELIABILITY.md's table is written."""
    def record(**facts):
        path = os.environ.get("NOISESWEEP_FAULT_LOG")
        if path:
            with open(path, "a") as f:
                f.write(json.dumps({"test": request.node.name, **facts}) + "\n")
    return record


@pytest.fixture
def deterministic_ops():
    """TensorFlow's ops made deterministic, as in a trial
    (sweeps.training.trainable.configure_tensorflow): packed and solo numbers compare exactly."""
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    yield


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (pyproject's addopts): one test process per core, at most 4. Each runner a
    test starts uses a local Ray of 2 CPUs and a few GiB: more processes only queue."""
    return max(1, min(4, os.cpu_count() or 1))



def pytest_collection_modifyitems(items):
    """Tests marked `waits` first (a stable sort; the rest keep their order): they spend
    minutes waiting on an outside clock (Slurm checks its jobs' limits every 30 s) with the
    machine idle. Started first, the other tests run beside those waits; started last, as
    their files' names placed them, they were the suite's last minutes, on one core."""
    items.sort(key=lambda item: item.get_closest_marker("waits") is None)
