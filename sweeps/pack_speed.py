"""How many members a pack of a model of one's own holds under `--pack auto` on a CPU:
measured on this machine the first time the model is seen, then read from a cache.

sweeps.packing's table gives K per built-in architecture (measured in bench/). A model of
one's own (sweeps.model_check.of_ones_own) is measured instead: a child process, with
TensorFlow's threads as one trial's, builds packs of K = 1, 2, 4, ... members in the
engine the trials train in (sweeps.training.engine.Engine: its feed, noise and compiled step),
on generated images of the dataset's shape, and times a few training steps after the
compiling ones; it stops once a K is slower than the best so far. The K chosen has the
most member-steps per second, or is the smallest within CLOSE of that (it holds less and
its members finish sooner). The figures are kept in `pack_speed.json` in the data cache
folder, keyed by the model's structure, the input, batch size, optimizer, threads, the
CPU and TensorFlow's version, so a later run or `--dry-run` reads them.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

SIZES = (1, 2, 4, 8, 16)
SIZES_ENV = "NOISESWEEP_AUTO_SIZES"  # "1,2": the Ks tried (a quicker, coarser measurement)
WARMUP, STEPS = 2, 6  # compiling steps, then timed ones
CLOSE = 0.95
CACHE_FILE = "pack_speed.json"


def sizes() -> tuple[int, ...]:
    given = os.environ.get(SIZES_ENV)
    return tuple(int(v) for v in given.split(",")) if given else SIZES


def choose(rates: dict[int, float]) -> int:
    """The K with the most member-steps per second, or the smallest within CLOSE of it."""
    best = max(rates.values())
    return min(k for k, r in rates.items() if r >= CLOSE * best)


def measured(config: dict, cache_dir: str, threads: int = 1) -> dict:
    """{"rates": {K: member-steps/s}, "k": chosen, "cached": bool} for `config`'s model,
    measured in a child process (TensorFlow stays out of the driver) unless cached."""
    cmd = [sys.executable, "-m", "sweeps.pack_speed", json.dumps(config), cache_dir, str(threads)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Where the driver finds its modules (a module of one's own beside the user's grid, say),
    # and no GPU: the packs timed are a CPU trial's.
    path = os.pathsep.join(dict.fromkeys([root, *(p or os.getcwd() for p in sys.path)]))
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": ""})
    if proc.returncode != 0:
        return {"rates": {}, "k": 1, "cached": False, "failed": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["rates"] = {int(k): v for k, v in out["rates"].items()}
    return out


def describe(arch: str, result: dict, cache_dir: str) -> str:
    """One line for the run's first lines: what `auto` chose for `arch`, and why."""
    if result.get("failed"):
        return f"pack auto: {arch} alone (its measurement failed: {result['failed']})"
    rates = ", ".join(f"K={k} {r:.0f}" for k, r in sorted(result["rates"].items()))
    where = f"read from {os.path.join(cache_dir, CACHE_FILE)}" if result["cached"] else \
        f"kept in {os.path.join(cache_dir, CACHE_FILE)}"
    return (f"pack auto: {arch}: {result['k']} member{'s' if result['k'] > 1 else ''} a pack, measured on this CPU "
            f"(member-steps/s: {rates}; {where})")


# -- the child process ------------------------------------------------------------------
def _signature(model, config: dict, threads: int) -> str:
    import platform

    import keras

    from models.vectorized import _structure
    from models import backends

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    from sweeps.data.sources import shape_of

    parts = [repr(_structure(model)), shape_of(config["dataset"]), config["batch_size"], config["optimizer"],
             config.get("noise_type"), threads, cpu, os.cpu_count(), backends.version(), keras.__version__,
             sorted(sizes())]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _synthetic(config: dict, steps: int = STEPS) -> dict:
    """Random images and labels of the config's dataset's shape and classes, enough for the
    timed steps (speed does not depend on their values)."""
    import numpy as np

    from sweeps.data.sources import shape_of

    shape, classes = shape_of(config["dataset"])
    batch = config["batch_size"]
    n = batch * (WARMUP + steps)
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (n, *shape), dtype=np.uint8),
            "y_train": (np.arange(n) % classes).astype(np.int32),
            "x_test": np.zeros((batch, *shape), np.uint8), "y_test": np.zeros(batch, np.int32)}


def _pack_of(config: dict, k: int, arrays: dict):
    """(the sweeps.training.spec.PackSpec of k members of `config`, their models built under
    their seeds)."""
    from sweeps.tasks.base import unjudged
    from sweeps.training.spec import PackSpec

    # No reference classifier: it judges a denoiser at its end, which is not timed; nor a
    # hold-out: the step's time is the same on every training image.
    members = [unjudged({**config, "seed": i, "train_subset": None, "test_subset": None, "validation": "test"})
               for i in range(k)]
    spec = PackSpec(members, arrays, {})
    return spec, spec.models()


def _rate(config: dict, k: int, steps: int = STEPS) -> float:
    """Member-steps per second of a pack of k members of `config`'s model, timed over
    `steps` steps after the compiling ones."""
    import gc

    import numpy as np

    from models.backends import scalar
    from sweeps.training.engine import Engine

    arrays = _synthetic(config, steps)
    batch = config["batch_size"]
    spec, models = _pack_of(config, k, arrays)
    engine = Engine(spec, models)
    size = scalar(batch)
    rows = [np.tile(np.arange(s * batch, (s + 1) * batch, dtype=np.int32), (k, 1)) for s in range(WARMUP + steps)]
    for s in range(WARMUP):
        engine.train_step(engine.train, rows[s], size, scalar(s))
    engine.loss_sum.numpy()
    t0 = time.perf_counter()
    for s in range(WARMUP, WARMUP + steps):
        engine.train_step(engine.train, rows[s], size, scalar(s))
    engine.loss_sum.numpy()  # the steps have run
    seconds = time.perf_counter() - t0
    del engine, models
    gc.collect()
    return k * steps / seconds


def _child(config: dict, cache_dir: str, threads: int) -> dict:
    from models.backends import is_tensorflow

    if is_tensorflow():
        from sweeps.quiet import import_tensorflow

        tf = import_tensorflow()
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from sweeps import tasks

    tasks.all_tasks()  # models of one's own register on import ($NOISESWEEP_TASKS)
    _, (model,) = _pack_of(config, 1, _synthetic(config))
    signature = _signature(model, config, threads)
    path = os.path.join(cache_dir, CACHE_FILE)
    try:
        with open(path) as f:
            cache = json.load(f)
    except (OSError, ValueError):
        cache = {}
    if signature in cache:
        return {**cache[signature], "cached": True}
    rates: dict = {}
    for k in sizes():
        rates[k] = _rate(config, k)
        if rates[k] < CLOSE * max(rates.values()):
            break  # past the best: larger packs only hold more
    result = {"arch": config["arch"], "rates": rates, "k": choose(rates)}
    os.makedirs(cache_dir, exist_ok=True)
    cache[signature] = result
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(cache, f, indent=1)
    os.replace(tmp, path)  # a reader never sees half a file
    return {**result, "cached": False}


if __name__ == "__main__":
    print(json.dumps(_child(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]))))
