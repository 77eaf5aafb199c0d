"""A pack's compiled part, kept by a worker from pack to pack of the same shape.

The compiled part is the packed network's variables, its optimizer, the training feed and
the compiled training and scoring steps. Every new `tf.function` is traced and (under XLA)
compiled anew, and TensorFlow keeps each compiled program for the life of the process.
A reused Ray worker that built a new step for each trial grew 8.3 MiB and spent 2.1 s a
trial on it (bench/RESULTS.md).

So a worker keeps its last engine. A new pack of the same shape puts its members' initial
weights, L2 factors, data, noise draws and seeds into the same variables, and resets the
optimizer's state, and the same compiled program runs. The shape is what `key` names:
everything sweeps.packing lets no member change, plus the member count, the feed's layout
and which layers carry L2. An engine in use by a live pack is never handed to another one
(two packs in one process each get their own), and a pack of another shape replaces the
kept engine, so a worker holds one pack's data at most, as before.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np

from sweeps.training.batches import SplitFeed, layout
from sweeps.tasks.base import make_optimizer, steps_per_epoch, subset

_kept: dict = {}  # "engine": the worker's last Engine, "owner": a weak reference to its pack


def key(members: list[dict], arrays: dict, n_train: int, num_classes: int) -> tuple:
    """What an engine's compiled steps depend on, for these members (as the batches see
    them: sweeps.tasks.base.Training.feed_members)."""
    from sweeps.packing import group_key

    images, _ = subset(members[0], arrays, "train")
    return (group_key(members[0]), len(members), n_train, num_classes, layout(members, images, "train"),
            any(m["l2"] for m in members))


def engine_for(owner, members: list[dict], arrays: dict, models: list, n_train: int, num_classes: int, training):
    """An engine holding these members (`models`: their Keras models, built under their
    seeds; `training`: their task's sweeps.tasks.base.Training): the worker's kept one
    refilled when it has the same key and no live pack uses it, else a new one, which is
    then kept."""
    from models.packed import PackError

    members = training.feed_members(members)
    k = key(members, arrays, n_train, num_classes)
    kept, engine = _kept.get("engine"), None
    in_use = _kept.get("owner") is not None and _kept["owner"]() is not None
    if kept is not None and kept.key == k and not in_use:
        try:
            kept.load(members, arrays, models)
            engine = kept
        except PackError:  # the same key, yet other weights regularised: a step of its own
            pass
    if engine is None:
        if not in_use:
            release()  # the old engine's data goes before the new one's is made
        engine = Engine(k, members, arrays, models, n_train, training)
    _kept.update(engine=engine, owner=weakref.ref(owner))
    return engine


def has_convolutions(model) -> bool:
    """Whether any layer of `model` (nested ones included) is a convolution of some kind."""
    return any("Conv" in type(layer).__name__ for layer in model._flatten_layers(include_self=False))


def pack_net(models: list, jit: bool, gpu: bool = False):
    """The network a pack trains as: models.packed's hand-written layers where they hold the
    model, else the model's own call vectorised (models.vectorized), which holds any Keras
    model; a conv net's is vectorised on a GPU only. `jit`: whether the step is compiled by
    XLA (grouped convolutions then)."""
    from models.packed import PackError, PackedNet
    from models.vectorized import VectorizedNet

    from sweeps.training.backends import is_tensorflow

    try:
        if not is_tensorflow():  # the hand-written layers are TensorFlow's
            raise PackError("not TensorFlow")
        return PackedNet(models, grouped=jit)
    except PackError:
        return VectorizedNet(models, vectorize=gpu or not has_convolutions(models[0]))


def release() -> None:
    """Let the kept engine (and the pack data it holds) go: the worker trains something else."""
    if _kept:
        _kept.clear()
        # An engine and its compiled steps refer to each other: only a collection frees them.
        gc.collect()


class Engine:
    """The variables and compiled steps of a pack of len(members) members."""

    def __init__(self, key: tuple, members: list[dict], arrays: dict, models: list, n_train: int, training):
        from sweeps.training import backends

        first = members[0]
        self.key = key
        self.k = len(members)
        self.train = SplitFeed(members, *subset(first, arrays, "train"), "train")
        self.test = None  # made on first use (test_feed): a hold-out run scores it once
        # XLA fuses the batch's gather, noise and dense layers into a few kernels: 1.5x faster
        # on CPU for the MLPs; but its CPU convolutions are 2-3x slower than TensorFlow's own
        # (bench/RESULTS.md), and it took minutes to compile a vectorised conv net with
        # BatchNormalization: nets with convolutions run unfused. (JAX compiles every step.)
        jit = not has_convolutions(models[0])
        gpu = backends.has_gpu()
        self.net = pack_net(models, jit, gpu)
        if not gpu and getattr(self.net, "draws", False):
            # A model of one's own that draws random numbers (dropout) is not compiled on a
            # CPU: XLA draws other numbers than TensorFlow's own kernels from the same seed,
            # and slowly (a lone MLP with dropout: 1.66 s an epoch compiled, 0.47 s not), so
            # a member alone, which would run uncompiled, and packed must not differ in it.
            jit = False
        self.optimizer = make_optimizer(first, steps_per_epoch(n_train, first))
        self.optimizer.build(self.net.variables)
        self._optimizer_start = [np.array(v.numpy()) for v in self.optimizer.variables]
        # Read as the steps are traced: functions of what the members share (the key).
        self.targets, self.loss_fn, self.score = training.targets, training.loss, training.score
        self.seeds = backends.variable(np.array([m["seed"] for m in members], backends.index_dtype()))
        self.alive = backends.variable(np.ones(self.k, bool))
        self.loss_sum = backends.variable(np.zeros(self.k, np.float32))
        self.metric_sum = backends.variable(np.zeros(self.k, np.float32))
        self.train_step = backends.compile_step(self._step, jit, lambda *_: self._held(self.train))
        self.eval_step = backends.compile_step(self._scores, jit, lambda feed, *_: self._held(feed))

    def _held(self, feed) -> list:
        """Every variable a step on `feed` reads or assigns."""
        return [*self.net.variables, *self.net.state, *self.net.constants, *self.optimizer.variables, self.seeds,
                self.alive, self.loss_sum, self.metric_sum, *feed.variables()]

    def load(self, members: list[dict], arrays: dict, models: list) -> None:
        """Hold these members instead, as a new engine would: their weights, L2 factors,
        data, noise and seeds; the optimizer's state as built; every member training."""
        self.net.load(models)
        for v, start in zip(self.optimizer.variables, self._optimizer_start):
            v.assign(start)
        if not self.train.refill(members, *subset(members[0], arrays, "train")):
            raise ValueError("load: members of another training layout than the engine's key")
        if self.test is not None and not self.test.refill(members, *subset(members[0], arrays, "test")):
            self.test = None  # made again on first use
        self.seeds.assign([m["seed"] for m in members])
        self.alive.assign(np.ones(self.k, bool))

    def test_feed(self, members: list[dict], arrays: dict) -> SplitFeed:
        """The test split's feed for these members (the engine's own members)."""
        if self.test is None:
            self.test = SplitFeed(members, *subset(members[0], arrays, "test"), "test")
        return self.test

    # -- the compiled parts -------------------------------------------------------------
    def _per_image(self, fn, y, flat, shape):
        """`fn(y, flat)` on the flattened batch (`flattened`) -> `[K, B]`, averaged over any
        axes beyond the image's (a per-pixel loss), as Keras averages a loss."""
        from keras import ops

        return ops.mean(ops.reshape(ops.cast(fn(y, flat), "float32"), (*shape, -1)), -1)

    def _batch(self, feed, idx):
        """The members' inputs `[K, B, ...]` and targets flattened to `[K * B, ...]`."""
        from keras import ops

        labels = ops.reshape(feed.targets(idx), (-1,))
        return feed.inputs(idx), self.targets(lambda: feed.clean(idx), labels)

    def _step(self, idx, size, counter):
        """One batch of every member: `idx` `[K, batch_size]`, of which the first `size`
        columns are real (an epoch's last batch is padded to the one compiled shape)."""
        from keras import ops

        from sweeps.training.backends import gradients

        x, y = self._batch(self.train, idx)
        shape = ops.shape(idx)
        real = ops.cast(ops.arange(shape[1]) < size, "float32")
        n = ops.cast(size, "float32")

        def losses(trainable):
            outputs, added, state = self.net.forward(x, True, ops.convert_to_tensor(self.seeds), counter, trainable)
            flat = flattened(outputs)
            # A solo Keras step's loss: mean loss, weight penalties, the losses the model adds.
            per_image = self._per_image(self.loss_fn, y, flat, shape)
            loss = ops.sum(per_image * real, axis=1) / n + self.net.penalty(trainable) + added
            # A member whose outputs are no numbers has diverged, whatever its loss says: Keras
            # clips probabilities before their log, and under XLA a NaN clips to a bound.
            finite = ops.all(ops.isfinite(ops.reshape(outputs, (shape[0], -1))), axis=1)
            loss = ops.where(finite, loss, ops.full([self.k], float("nan")))
            total = ops.sum(ops.where(ops.convert_to_tensor(self.alive), loss, ops.zeros_like(loss)))
            return total, (loss, flat, state)

        _, (loss, flat, state), grads = gradients(losses, self.net.variables)
        alive = ops.convert_to_tensor(self.alive)
        grads = self.net.masked(grads, alive)
        self.optimizer.apply(grads, self.net.variables)
        self.net.constrain(alive)
        self.net.commit(state, alive)
        # Keras's epoch loss and metric: the batches' values weighted by their sizes.
        self.loss_sum.assign_add(loss * n)
        if self.score is not None:
            self.metric_sum.assign_add(ops.sum(self._per_image(self.score, y, flat, shape) * real, 1))

    def _scores(self, feed, idx, size):
        from keras import ops

        x, y = self._batch(feed, idx)
        outputs, added, _ = self.net.forward(x, training=False)
        flat = flattened(outputs)
        shape = ops.shape(idx)
        real = ops.cast(ops.arange(shape[1]) < size, "float32")
        hits = (ops.sum(self._per_image(self.score, y, flat, shape) * real, 1) if self.score is not None
                else ops.zeros([self.k]))
        # The losses a model adds (activity regularisers) weighted by the batch's size, as Keras
        # averages a loss over batches (such a model's batches are not padded: net.pads_scoring).
        return (ops.sum(self._per_image(self.loss_fn, y, flat, shape) * real, axis=1), hits,
                added * ops.cast(size, "float32"))


# The output activations a Keras loss looks through to their inputs (keras's `_get_logits`:
# a cross-entropy on a softmax's or sigmoid's output is computed from its logits, exactly,
# where on probabilities it clips them to [1e-7, 1 - 1e-7] first).
_ACTIVATIONS = {"Softmax": "softmax", "Sigmoid": "sigmoid"}


def flattened(outputs):
    """A pack's outputs `[K, B, ...]` as one batch `[K * B, ...]`, the shape a Keras loss takes
    from a solo model, made by the same activation op where the outputs end in one (directly,
    or one per member, stacked): the loss then sees what it sees in a solo Keras step.
    (On JAX a Keras loss has no op to look through, for a solo model either.)"""
    from sweeps.training.backends import is_tensorflow

    if not is_tensorflow():
        from keras import ops

        return ops.reshape(outputs, (-1, *outputs.shape[2:]))
    import tensorflow as tf

    def flat(t):
        return tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], axis=0))

    op = getattr(outputs, "op", None)
    if op is None:  # eager: no op to look through
        return flat(outputs)
    if op.type == "Pack" and len({i.op.type for i in op.inputs}) == 1 and op.inputs[0].op.type in _ACTIVATIONS:
        kind, logits = op.inputs[0].op.type, tf.stack([i.op.inputs[0] for i in op.inputs])
    elif op.type in _ACTIVATIONS:
        kind, logits = op.type, op.inputs[0]
    else:
        return flat(outputs)
    return getattr(tf.nn, _ACTIVATIONS[kind])(flat(logits))
