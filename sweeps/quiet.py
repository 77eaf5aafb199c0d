"""Start-up noise kept off the console unless the run is verbose (-v).

TensorFlow prints its C++ banners (absl's "All log messages before InitializeLog", "Could
not find cuda drivers", a CPU-instructions note) straight to file descriptor 2 while it is
imported, before any log level applies, and on a machine without a GPU every first op
logs "failed call to cuInit". Ray Train logs "Checkpoint successfully created" after
every epoch of every trial, TensorFlow warns of "retracing" as a reused worker starts
a pack of a new shape, and of "Using a while_loop for converting" an op as a pack of a
model with dropout is vectorised (models.vectorized: the random draws are made member by
member, as they must be). None of it is anything a user acts on. Warnings that are
(data sources, missing GPUs, storage) are printed by the runner itself and stay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys

VERBOSE_ENV = "NOISESWEEP_VERBOSE"  # "1": show everything; the runner's -v sets it, workers inherit it


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


@contextlib.contextmanager
def stderr_silenced():
    """File descriptor 2 to /dev/null for the block (C++ code writes there directly)."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_keras_backend() -> None:
    """On TensorFlow, TensorFlow imported without its start-up lines before a module of one's
    own (a builder, --models) imports Keras, which would print them; the environment left as
    it was (Ray's workers inherit it, and pick their own log level). Nothing on JAX."""
    from models.backends import is_tensorflow

    if verbose() or "tensorflow" in sys.modules or not is_tensorflow():
        return
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    import_tensorflow()
    if level is None:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = level


def import_tensorflow(gpu: bool = False):
    """TensorFlow, imported without its start-up lines. Without a GPU its C++ log is
    limited to fatal errors (the cuInit probe is an error line); with one, to errors."""
    if "tensorflow" not in sys.modules and not verbose():
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if gpu else "3")
    with stderr_silenced():
        import tensorflow as tf

        # The first device query runs the cuInit probe, which logs through absl at
        # error level whatever TF_CPP_MIN_LOG_LEVEL says: done here, under the silence.
        tf.config.list_physical_devices("GPU")
    logger = tf.get_logger()
    if not verbose() and not any(isinstance(f, _PackRetracing) for f in logger.filters):
        logger.addFilter(_PackRetracing())
    return tf


class _PackRetracing(logging.Filter):
    """TensorFlow's "N out of the last M calls to <...> triggered tf.function retracing".
    A worker keeps one compiled step (sweeps.training.engine) and builds another for each pack
    of a new shape, so a reused worker that trains packs of several shapes (a grid's
    architectures, a group's smaller last pack) traces the same method again, as it must;
    TensorFlow counts that as retracing and warns, trial after trial in a large sweep.
    Also its vectoriser's "Using a while_loop for converting StatelessRandomUniformV2":
    a member's dropout mask drawn from its own seed is such an op."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "triggered tf.function retracing" not in message and "Using a while_loop for converting" not in message


def quiet_ray_workers() -> None:
    """Ray Train's per-checkpoint INFO line off, in a trial's worker, and no traceback from
    a worker stopped while a weakref callback ran (sys.unraisablehook)."""
    if not verbose():
        logging.getLogger("ray.train").setLevel(logging.WARNING)
        logging.getLogger("ray.tune").setLevel(logging.WARNING)
        sys.unraisablehook = _unless_stopping


def _unless_stopping(unraisable, _default=sys.__unraisablehook__) -> None:
    # Ctrl-C stops the trials: the signal that ends a worker can land inside a callback
    # Python cannot raise from, and it prints "Exception ignored in: ..." with a traceback,
    # which Ray forwards to the runner's console. That is the stop the user asked for.
    if not issubclass(unraisable.exc_type, (KeyboardInterrupt, SystemExit)):
        _default(unraisable)


# Ray's driver-side lines that the live view says in its own words (sweeps.console): a dead
# worker's 400-character raylet notice (the trial's retry or error line says it), and the
# autoscaler's "No available node types can fulfill resource request" every half minute
# while trials wait for a GPU (the live view's waiting line says it, at most every few minutes).
_SAID_BY_THE_LIVE_VIEW = ("A worker died or was killed while executing a task",
                          "No available node types can fulfill",  # resource requests, placement groups
                          "Tip: use `ray status` to view detailed cluster status")


def quiet_ray_driver() -> None:
    """Before ray.init in the runner (not with -v): Tune's 20-line traceback of each failed
    trial stays in its error.txt, and the Ray notices above are left out of the driver's
    console. The rest of what Ray forwards (workers' output, other autoscaler events) stays."""
    if verbose():
        return
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "0")  # read as Tune's controller starts
    tune_log = logging.getLogger("ray.tune.tune")  # "Trials did not complete: [...]": the summary says which
    if not any(isinstance(f, _TrialsIncomplete) for f in tune_log.filters):
        tune_log.addFilter(_TrialsIncomplete())
    from ray._private import worker

    shown = worker.print_to_stdstream  # ray.init binds the driver's log handler to this name
    if getattr(shown, "noisesweep", False):
        return

    def print_to_stdstream(data, *args, **kwargs):
        lines = [line for line in data.get("lines", []) if not any(s in line for s in _SAID_BY_THE_LIVE_VIEW)]
        if lines:
            shown({**data, "lines": lines}, *args, **kwargs)

    print_to_stdstream.noisesweep = True
    worker.print_to_stdstream = print_to_stdstream


class _TrialsIncomplete(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Trials did not complete")
