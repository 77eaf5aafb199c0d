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


# What marks a test file as one that starts Ray or a runner: its tests take tens of seconds.
_STARTS_RAY = ("sweeps_running", "ray.init(", "Cluster(", "sweeps/run.py", "run.main(")


def pytest_collection_modifyitems(config, items):
    """The longest tests first, so that the test processes end together (xdist hands tests out
    in this order): the xdist groups (a local Slurm, a multi-node Ray: minutes, run in order by
    one process) at once, beside them the files that start Ray or a runner, then the rest."""
    starts_ray: dict = {}

    def rank(item) -> int:
        if any(m.name == "xdist_group" for m in item.iter_markers()):
            return 0
        path = str(item.fspath)
        if path not in starts_ray:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            starts_ray[path] = any(s in text for s in _STARTS_RAY)
        return 1 if starts_ray[path] else 2

    items.sort(key=rank)  # stable: each file's tests keep their order
