"""A pack's compiled part: the packed network's variables, its optimizer, the training and
test feeds and the compiled training and scoring steps, behind the few methods a pack
needs (an epoch's sums, scores on a split, which members train, the weights in and out
for checkpoints). Nothing outside this module touches the network or the optimizer.

A worker keeps its last engine for the next pack of the same shape (sweeps.training.worker):
`load` puts that pack's members' initial weights, L2 factors, data, noise draws and seeds
into the same variables, and resets the optimizer's state, so the same compiled program runs.
"""

from __future__ import annotations

import numpy as np

from sweeps.optimizers import make_optimizer
from sweeps.training.feeds import FeedData, SplitFeed

EVAL_BATCH = 1024  # scoring batches: a sum over images, so their size changes no figure


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

    from models.backends import is_tensorflow

    try:
        if not is_tensorflow():  # the hand-written layers are TensorFlow's
            raise PackError("not TensorFlow")
        return PackedNet(models, grouped=jit)
    except PackError:
        return VectorizedNet(models, vectorize=gpu or not has_convolutions(models[0]))


class Engine:
    """The variables and compiled steps of a pack (`spec`: its sweeps.training.spec.PackSpec;
    `models`: its members' Keras models, built under their seeds)."""

    def __init__(self, spec, models: list):
        from models import backends

        # XLA fuses the batch's gather, noise and dense layers into a few kernels: 1.5x faster
        # on CPU for the MLPs; but its CPU convolutions are 2-3x slower than TensorFlow's own
        # (bench/RESULTS.md), and it took minutes to compile a vectorised conv net with
        # BatchNormalization: nets with convolutions run unfused. (JAX compiles every step.)
        jit = not has_convolutions(models[0])
        self.train = SplitFeed(spec.train_feed)
        self.test = None  # made on first use (_feed): a hold-out run scores it once
        self._scoring: dict = {}  # a feed per layout for the conditions scored (scores_on)
        gpu = backends.has_gpu()
        self.key, self.k, self._spec = spec.key, spec.k, spec
        self.net = pack_net(models, jit, gpu)
        if not gpu and getattr(self.net, "draws", False):
            # A model of one's own that draws random numbers (dropout) is not compiled on a
            # CPU: XLA draws other numbers than TensorFlow's own kernels from the same seed,
            # and slowly (a lone MLP with dropout: 1.66 s an epoch compiled, 0.47 s not), so
            # a member alone, which would run uncompiled, and packed must not differ in it.
            jit = False
        self.optimizer = make_optimizer(spec.members[0], spec.steps)
        self.optimizer.build(self.net.variables)
        self._optimizer_start = [np.array(v.numpy()) for v in self.optimizer.variables]
        training = spec.training
        # Read as the steps are traced: functions of what the members share (the key).
        self.targets, self.loss_fn, self.score = training.targets, training.loss, training.score
        self.seeds = backends.variable(np.array([m["seed"] for m in spec.members], backends.index_dtype()))
        self.alive = backends.variable(np.ones(self.k, bool))
        self.loss_sum = backends.variable(np.zeros(self.k, np.float32))
        self.metric_sum = backends.variable(np.zeros(self.k, np.float32))
        # Both steps take the feed they read first: `_held` names its variables.
        self.train_step = backends.compile_step(self._step, jit, self._held)
        self.eval_step = backends.compile_step(self._scores, jit, self._held)

    def _held(self, feed, *_) -> list:
        """Every variable a step on `feed` reads or assigns."""
        return [*self.net.variables, *self.net.state, *self.net.constants, *self.optimizer.variables, self.seeds,
                self.alive, self.loss_sum, self.metric_sum, *feed.variables()]

    def load(self, spec, models: list) -> None:
        """Hold this pack instead (one of the engine's key), as a new engine would: its
        weights, L2 factors, data, noise and seeds; the optimizer's state as built; every
        member training."""
        self.net.load(models)
        for v, start in zip(self.optimizer.variables, self._optimizer_start):
            v.assign(start)
        if not self.train.refill(spec.train_feed):
            raise ValueError("load: members of another training layout than the engine's key")
        if self.test is not None and not self.test.refill(spec.test_feed()):
            self.test = None  # made again on first use
        self._spec = spec
        self.seeds.assign([m["seed"] for m in spec.members])
        self.alive.assign(np.ones(self.k, bool))

    def _feed(self, split: str) -> SplitFeed:
        if split == "train":
            return self.train
        if self.test is None:
            self.test = SplitFeed(self._spec.test_feed())
        return self.test

    # -- what a pack asks of it -----------------------------------------------------------
    def train_epoch(self, orders: np.ndarray, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """One epoch of every training member, each in its order (`orders` `[K, n_train]`);
        each member's mean loss and metric over it, as Keras's fit logs them."""
        from models.backends import scalar

        n, b, steps = self._spec.n_train, self._spec.batch_size, self._spec.steps
        self.loss_sum.assign(np.zeros(self.k, np.float32))
        self.metric_sum.assign(np.zeros(self.k, np.float32))
        if self.net.pads:  # one compiled shape: the last batch padded with index 0, masked out
            orders = np.pad(orders, [[0, 0], [0, steps * b - n]])
        for s in range(steps):
            self.train_step(self.train, orders[:, s * b:(s + 1) * b], scalar(min(b, n - s * b)), scalar(epoch * steps + s))
        return self.loss_sum.numpy() / n, self.metric_sum.numpy() / n

    def scores(self, split: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Every member's (loss, metric) on rows [start, stop) of `split`: its mean loss plus
        its weight penalty and the losses the model adds, as Keras's evaluate reports a
        regularised model's loss (the metric's values are meaningless for a task without)."""
        return self._scores_of(self._feed(split), start, stop)

    def scores_on(self, data: FeedData) -> tuple[np.ndarray, np.ndarray]:
        """Every member's (loss, metric) on the whole of `data` (a condition's test split):
        held in this engine's feed of its layout, so one compiled step serves every condition
        of a kind (clean and corrupted, or one noise type's scales)."""
        feed = self._scoring.get(data.layout)
        if feed is None:
            feed = self._scoring[data.layout] = SplitFeed(data)
        else:
            feed.refill(data)
        return self._scores_of(feed, 0, feed.size)

    def _scores_of(self, feed: SplitFeed, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        from models.backends import scalar

        ce, hits, added = np.zeros(self.k), np.zeros(self.k), np.zeros(self.k)
        for a in range(start, stop, EVAL_BATCH):
            size = min(EVAL_BATCH, stop - a)
            # Every batch in one compiled shape where the net allows: the last one padded with
            # row `start`, masked out.
            rows = np.full(EVAL_BATCH if self.net.pads_scoring else size, start, np.int32)
            rows[:size] = np.arange(a, a + size)
            idx = np.ascontiguousarray(np.broadcast_to(rows[None], (self.k, len(rows))))
            c, h, extra = self.eval_step(feed, idx, scalar(size))
            ce += np.asarray(c)
            hits += np.asarray(h)
            added += np.asarray(extra)
        n = stop - start
        return (ce + added) / n + np.asarray(self.net.penalty()), hits / n

    def freeze(self, alive: list[bool]) -> None:
        """Train only the `alive` members: the others' losses leave the sum, and their
        gradients and optimizer state are zeroed (their weights stay as they are)."""
        alive = np.array(alive)
        self.alive.assign(alive)
        if not alive.all():
            self.net.still(self.optimizer.variables, alive)

    def member_weights(self, i: int) -> list[np.ndarray]:
        """Member i's weights (and state), as its Keras model's get_weights lists them."""
        return self.net.member_weights(i)

    def arrays(self) -> dict:
        """The members' stacked weights, the network's state (BatchNormalization's statistics)
        and the optimizer's slots, by name: a checkpoint's arrays."""
        out = {f"w{i}": v.numpy() for i, v in enumerate(self.net.variables)}
        out.update({f"s{i}": np.asarray(v.numpy()) for i, v in enumerate(self.net.state)})
        out.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        return out

    def load_arrays(self, arrays) -> None:
        """The inverse of `arrays`."""
        for prefix, held in (("w", self.net.variables), ("s", self.net.state), ("o", self.optimizer.variables)):
            for i, v in enumerate(held):
                v.assign(arrays[f"{prefix}{i}"])

    def load_solo_model(self, model) -> None:
        """A pack of one continued from a solo trial's compiled Keras model (an experiment
        made before packing): its weights and its optimizer's slots."""
        if hasattr(self.net, "set_member_weights"):  # state (BatchNormalization's) among the weights
            self.net.set_member_weights(0, model.get_weights())
        else:
            for v, w in zip(self.net.variables, model.get_weights()):
                v.assign(np.reshape(w, v.shape))
        for v, w in zip(self.optimizer.variables, model.optimizer.variables):
            v.assign(np.reshape(np.asarray(w), v.shape))

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

    def _step(self, feed, idx, size, counter):
        """One batch of every member: `idx` `[K, batch_size]` of `feed` (the training feed), of
        which the first `size` columns are real (an epoch's last batch is padded to the one
        compiled shape)."""
        from keras import ops

        from models.backends import gradients

        x, y = self._batch(feed, idx)
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
    from models.backends import is_tensorflow

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
