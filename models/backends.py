"""What the pack engine and the packed networks do otherwise on each Keras backend: compile a
step, take its gradients, hold its data, find a GPU. Everything else in a step is written once,
against `keras.ops`. (Beside the networks, in models/: they hold variables through it too.)

TensorFlow (the default) compiles a step with `tf.function` (and XLA where asked), which
reads and updates the engine's variables in place. JAX compiles pure functions: a step
is run inside a `keras.StatelessScope` that maps each variable the step touches to its
value, taken in as an argument of the `jax.jit`-compiled function, and the values the step
assigned come back out and are put into the variables. So the same step code runs on both,
and a JAX step needs neither TensorFlow nor its own copy of the engine.
"""

from __future__ import annotations

import numpy as np


def name() -> str:
    """Keras's backend: what it runs on once imported, and before, what it will run on
    (its own rule: $KERAS_BACKEND, else ~/.keras/keras.json, else TensorFlow), so that
    TensorFlow can be imported quietly before Keras imports it."""
    import json
    import os
    import sys

    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def version() -> str:
    """The backend and its version (what a measured speed depends on)."""
    import importlib

    return f"{name()} {importlib.import_module(name()).__version__}"


def is_tensorflow() -> bool:
    return name() == "tensorflow"


def has_gpu() -> bool:
    """Whether the backend computes on a GPU here."""
    if is_tensorflow():
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU"))
    if name() == "jax":
        import jax

        return jax.default_backend() == "gpu"
    return False


def variable(value, dtype=None):
    """A non-trainable variable holding `value` (a pack's data, seeds, sums). TensorFlow's
    own variable there, as before: it wraps a tensor made from a numpy array without
    another copy."""
    import keras

    if is_tensorflow():
        import tensorflow as tf

        return tf.Variable(value, trainable=False, dtype=dtype)
    return keras.Variable(np.asarray(value) if dtype is None else np.asarray(value, dtype=dtype),
                          trainable=False, dtype=dtype)


def index_dtype():
    """The integer type of a step's indices and labels: int64 held on TensorFlow (which
    keeps int32 variables in host memory, which an XLA step on a GPU cannot read), int32
    on JAX (64-bit integers are off there by default)."""
    return np.int64 if is_tensorflow() else np.int32


def scalar(value: int):
    """An int32 argument of a compiled step that does not make it trace again per value."""
    if is_tensorflow():
        import tensorflow as tf

        return tf.constant(value, tf.int32)
    return np.int32(value)


def take(x, indices):
    """Rows `indices` of `x` (a variable or tensor). TensorFlow's gather reads a variable's
    rows only (keras.ops.take reads the whole variable first: a pack's 94 MB of noise
    draws, each step)."""
    if is_tensorflow():
        import tensorflow as tf

        return tf.gather(x, indices)
    from keras import ops

    return ops.take(ops.convert_to_tensor(x), indices, axis=0)


def gradients(loss_fn, variables: list):
    """(total, aux, gradients of total) for `loss_fn(trainable) -> (total, aux)`, over
    `variables` (a pack's stacked trainable variables)."""
    if is_tensorflow():
        import tensorflow as tf

        with tf.GradientTape() as tape:
            total, aux = loss_fn(variables)
        return total, aux, tape.gradient(total, variables)
    import jax

    (total, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)([v.value for v in variables])
    return total, aux, grads


def compile_step(fn, jit: bool, variables):
    """`fn` compiled as the backend compiles a step. `variables()`: every variable `fn`
    reads or assigns, given the call's arguments (a JAX step takes them in as values;
    one it did not name would be compiled in as a constant)."""
    if is_tensorflow():
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit)
    return _StatelessStep(fn, variables)


class _StatelessStep:
    """A step on JAX: `jax.jit` of `fn` run over the values of its variables. Arguments
    that are not arrays (a feed) are part of what is compiled: one program per such
    argument and per shape of the arrays, as tf.function traces one per Python object and
    shape."""

    def __init__(self, fn, variables):
        self.fn, self.variables = fn, variables
        self._compiled: dict = {}

    def __call__(self, *args):
        import jax

        arrays = [i for i, a in enumerate(args) if isinstance(a, (np.ndarray, np.generic, jax.Array))]
        # One program per shape too (a BatchNormalization net's short last batch), as
        # tf.function traces one per shape.
        static = (tuple((i, id(a)) for i, a in enumerate(args) if i not in arrays),
                  tuple((np.shape(args[i]), str(args[i].dtype)) for i in arrays))
        held = self.variables(*args)
        if static not in self._compiled:
            self._compiled[static] = self._compile(args, arrays, held)
        compiled, written = self._compiled[static]
        new, out = compiled([v.value for v in held], [args[i] for i in arrays])
        for v, value in zip((held[i] for i in written), new):
            v.assign(value)
        return out

    def _compile(self, args, arrays, held):
        import jax
        import keras

        written: list[int] = []
        fixed = [None if i in arrays else a for i, a in enumerate(args)]

        def pure(values, array_args):
            call = list(fixed)
            for i, a in zip(arrays, array_args):
                call[i] = a
            with keras.StatelessScope(state_mapping=list(zip(held, values))) as scope:
                out = self.fn(*call)
            now = [scope.get_current_value(v) for v in held]
            # Only what the step assigned comes back: an unchanged array returned would be
            # copied out (a pack's images and noise draws, every step).
            written[:] = [i for i, (a, b) in enumerate(zip(now, values)) if a is not b]
            return [now[i] for i in written], out

        compiled = jax.jit(pure)
        # Traced once here, so that `written` is known before the first call's outputs
        # are put back.
        compiled = compiled.lower([v.value for v in held], [args[i] for i in arrays]).compile()
        return compiled, written
