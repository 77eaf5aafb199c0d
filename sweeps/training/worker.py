"""What a Ray worker keeps from trial to trial: its last pack's engine.

Every new `tf.function` is traced and (under XLA) compiled anew, and TensorFlow keeps each
compiled program for the life of the process. A reused Ray worker that built a new step for
each trial grew 8.3 MiB and spent 2.1 s a trial on it (bench/RESULTS.md). So a worker keeps
its last engine, and a new pack of the same shape (sweeps.training.spec.PackSpec.key:
everything sweeps.packing lets no member change, plus the member count, the feed's layout
and which layers carry L2) is loaded into it. An engine in use by a live pack is never
handed to another one (two packs in one process each get their own), and a pack of another
shape replaces the kept engine, so a worker holds one pack's data at most.
"""

from __future__ import annotations

import gc
import weakref

_kept: dict = {}  # "engine": the worker's last Engine, "owner": a weak reference to its pack


def engine_for(owner, spec, models: list):
    """An engine holding the pack `spec` describes (`models`: its members' Keras models,
    built under their seeds) for `owner`: the worker's kept one loaded when it has the same
    key and no live pack uses it, else a new one, which is then kept."""
    from models.packed import PackError
    from sweeps.training.engine import Engine

    kept, engine = _kept.get("engine"), None
    in_use = _kept.get("owner") is not None and _kept["owner"]() is not None
    if kept is not None and kept.key == spec.key and not in_use:
        try:
            kept.load(spec, models)
            engine = kept
        except PackError:  # the same key, yet other weights regularised: a step of its own
            pass
    if engine is None:
        if not in_use:
            release()  # the old engine's data goes before the new one's is made
        engine = Engine(spec, models)
    _kept.update(engine=engine, owner=weakref.ref(owner))
    return engine


def release() -> None:
    """Let the kept engine (and the pack data it holds) go: the worker trains something else."""
    if _kept:
        _kept.clear()
        # An engine and its compiled steps refer to each other: only a collection frees them.
        gc.collect()
