"""Training K classifier configs of one architecture as one pack, each exactly as alone.

The pack's loss is the sum of the members' own losses (each its mean cross-entropy plus
its own L2 penalty), so each member's gradient is its solo gradient, and the optimizer
(per element: SGD, Adam, Adadelta, RMSprop, Adagrad, Nadam) updates it as alone. Each
member has its own initial weights (built under its seed), its own order per epoch and
its own noise (sweeps.batches), its own dropout masks (models.packed). A member whose
loss turns NaN is recorded as diverged at that epoch and frozen: its loss leaves the sum,
its gradients and its optimizer state are zeroed (its weights stay as they are), while the
others go on with their own numbers. A member that early stopping ends
(sweeps.early_stopping, its own rule and state) is frozen the same way after its last
row, and scored on a hold-out's test split right then.

A solo trial of a packable task is a pack of one: the same step, the same order, the same
noise, so packed and solo runs of a config agree.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os

import numpy as np

from sweeps.batches import SplitFeed, order
from sweeps.early_stopping import EarlyStop
from sweeps.tasks.base import make_optimizer, steps_per_epoch, subset

EVAL_BATCH = 1024  # validation batches: a sum over images, so their size changes no figure
STATE_FILE = "pack.json"
ARRAYS_FILE = "pack.npz"
# XLA fuses the batch's gather, noise and dense layers into a few kernels: 1.5x faster on
# CPU for the MLPs; but its CPU convolutions are 2-3x slower than TensorFlow's own
# (bench/RESULTS.md), so nets with convolutions run unfused, one convolution per member.


class Pack:
    """K member configs (sharing everything sweeps.packing.PACK_KEYS names) and their data."""

    def __init__(self, members: list[dict], arrays: dict):
        import keras
        import tensorflow as tf

        from models import build_model
        from models.packed import PackedNet

        self.members = members
        first = members[0]
        self.k = len(members)
        self.epochs = first["epochs"]
        self.batch_size = first["batch_size"]
        num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
        train_images, train_labels = subset(first, arrays, "train")
        self.train = SplitFeed(members, train_images, train_labels, "train")
        # Built at the first member's end and kept: a new feed each time would retrace the
        # evaluation step and keep every copy of the test data alive.
        self._test_split = functools.cache(lambda: SplitFeed(members, *subset(first, arrays, "test"), "test"))
        n = self.train.size
        if first["validation"] == "holdout":
            held = first["holdout_size"]
            if held >= n:
                raise ValueError(f"holdout_size {held} leaves no training images out of {n}")
            # The test split is made at the end (finish): it is scored once.
            self.n_train, self.val_rows, self.val = n - held, (n - held, n), self.train
        else:
            self.n_train, self.val = n, self._test_split()
            self.val_rows = (0, self.val.size)
        models = []
        for m in members:
            keras.utils.set_random_seed(m["seed"])  # the weights its solo trial starts from
            models.append(build_model(m["arch"], m["l2"], self.train.shape, num_classes=num_classes))
        jit = not any(type(layer).__name__ == "Conv2D" for layer in models[0].layers)
        self.net = PackedNet(models, grouped=jit)
        del models
        self.optimizer = make_optimizer(first, steps_per_epoch(self.n_train, first))
        self.optimizer.build(self.net.variables)
        self.loss_fn = keras.losses.get(first["loss_fn"])
        self.one_hot = first["loss_fn"] == "categorical_crossentropy"
        self.num_classes = num_classes
        self.seeds = tf.constant([m["seed"] for m in members], tf.int32)
        self.alive = tf.Variable(tf.ones([self.k], tf.bool), trainable=False)
        self.loss_sum = tf.Variable(tf.zeros([self.k]), trainable=False)
        self.correct = tf.Variable(tf.zeros([self.k]), trainable=False)
        self.epochs_done = 0
        self.rows: list[list[dict]] = [[] for _ in members]
        self.diverged = [False] * self.k
        self.stops = [EarlyStop.of(m) for m in members]
        self._train_step = tf.function(self._step, jit_compile=jit)
        self._eval_step = tf.function(self._scores, jit_compile=jit)

    # -- the compiled parts -------------------------------------------------------------
    def _losses(self, y, probs):
        """Each member's per-image loss `[K, B]` (Keras's own loss function)."""
        import tensorflow as tf

        if self.one_hot:
            y = tf.one_hot(y, self.num_classes)
        return self.loss_fn(y, probs)

    def _step(self, idx, size, counter):
        """One batch of every member: `idx` `[K, batch_size]`, of which the first `size`
        columns are real (an epoch's last batch is padded to the one compiled shape)."""
        import tensorflow as tf

        x, y = self.train.inputs(idx), self.train.targets(idx)
        seeds = tf.stack([self.seeds, tf.fill([self.k], counter)], axis=1)
        real = tf.cast(tf.range(tf.shape(idx)[1]) < size, tf.float32)
        n = tf.cast(size, tf.float32)
        with tf.GradientTape() as tape:
            probs = self.net(x, training=True, dropout_seeds=seeds)
            loss = tf.reduce_sum(self._losses(y, probs) * real, axis=1) / n + self.net.penalty()
            total = tf.reduce_sum(tf.where(self.alive, loss, tf.zeros_like(loss)))
        grads = self.net.masked(tape.gradient(total, self.net.variables), self.alive)
        self.optimizer.apply(grads, self.net.variables)
        # Keras's epoch loss: the batches' losses weighted by their sizes.
        self.loss_sum.assign_add(loss * n)
        self.correct.assign_add(self._hits(y, probs, real))

    def _hits(self, y, probs, real=1.0):
        import tensorflow as tf

        hit = tf.cast(tf.equal(tf.argmax(probs, -1, output_type=tf.int32), y), tf.float32)
        return tf.reduce_sum(hit * real, 1)

    def _scores(self, feed, idx, size):
        import tensorflow as tf

        x, y = feed.inputs(idx), feed.targets(idx)
        probs = self.net(x, training=False)
        real = tf.cast(tf.range(tf.shape(idx)[1]) < size, tf.float32)
        return tf.reduce_sum(self._losses(y, probs) * real, axis=1), self._hits(y, probs, real)

    # -- epochs -------------------------------------------------------------------------
    def train_epoch(self) -> list[dict]:
        """One epoch of every member still training; returns each member's metrics
        (loss, accuracy, val_loss, val_accuracy), diverged ones included."""
        import tensorflow as tf

        epoch = self.epochs_done
        self.loss_sum.assign(tf.zeros([self.k]))
        self.correct.assign(tf.zeros([self.k]))
        rows = tf.constant(np.stack([order(m["seed"], epoch, self.n_train) for m in self.members]).astype(np.int32))
        b = self.batch_size
        steps = steps_per_epoch(self.n_train, self.members[0])
        padded = tf.pad(rows, [[0, 0], [0, steps * b - self.n_train]])  # index 0, masked out
        for s in range(steps):
            size = min(b, self.n_train - s * b)
            self._train_step(padded[:, s * b:(s + 1) * b], tf.constant(size, tf.int32),
                             tf.constant(epoch * steps + s, tf.int32))
        loss = self.loss_sum.numpy() / self.n_train
        accuracy = self.correct.numpy() / self.n_train
        val_loss, val_accuracy = self.evaluate(self.val, *self.val_rows)
        self.epochs_done += 1
        out = []
        for i in range(self.k):
            out.append({"loss": float(loss[i]), "accuracy": float(accuracy[i]),
                        "val_loss": float(val_loss[i]), "val_accuracy": float(val_accuracy[i])})
        return out

    def evaluate(self, feed, start: int, stop: int):
        """Every member's (loss, accuracy) on rows [start, stop) of `feed`: mean cross-entropy
        plus its L2 penalty, as Keras's evaluate reports a regularised model's loss."""
        import tensorflow as tf

        ce, hits = np.zeros(self.k), np.zeros(self.k)
        for a in range(start, stop, EVAL_BATCH):
            size = min(EVAL_BATCH, stop - a)
            # Every batch in one compiled shape: the last one padded with row `start`, masked out.
            rows = np.full(EVAL_BATCH, start, np.int32)
            rows[:size] = np.arange(a, a + size)
            idx = tf.broadcast_to(tf.constant(rows)[None], [self.k, EVAL_BATCH])
            c, h = self._eval_step(feed, idx, tf.constant(size, tf.int32))
            ce += c.numpy()
            hits += h.numpy()
        n = stop - start
        return ce / n + self.net.penalty().numpy(), hits / n

    def frozen(self, i: int) -> bool:
        """Whether member i trains no more: diverged, or ended by early stopping."""
        return self.diverged[i] or bool(self.stops[i] and self.stops[i].stopped)

    def record(self, metrics: list[dict], extra: dict) -> list[int]:
        """Keep each training member's row of the epoch just trained (its metrics, the epoch,
        whether it diverged, its early stopping's word, and `extra`: timing and where it
        ran); freeze the members that diverged or stopped in it. Returns the members that
        trained this epoch."""
        trained = [i for i in range(self.k) if not self.frozen(i)]
        for i in trained:
            diverged = not math.isfinite(metrics[i]["loss"])
            row = {**metrics[i], "epoch": self.epochs_done, "diverged": diverged, **extra}
            stop = self.stops[i]
            if stop is not None and not diverged:
                stop.update(self.epochs_done, metrics[i])
                row.update(stop.row())
            self.rows[i].append(row)
            self.diverged[i] = diverged
        self._set_alive()
        return trained

    def ended(self, trained: list[int]) -> list[int]:
        """Of the members that trained the epoch just recorded, those whose last epoch it was."""
        return list(trained) if self.done else [i for i in trained if self.frozen(i)]

    def _set_alive(self) -> None:
        alive = np.array([not self.frozen(i) for i in range(self.k)])
        self.alive.assign(alive)
        if not alive.all():
            self.net.still(self.optimizer.variables, alive)

    def finish(self, members: list[int] | None = None) -> list[dict]:
        """Test metrics of `members` (default all), in their order, for members that validated
        on a hold-out (the test split is scored once, at a member's end); {} for the others
        and for diverged members."""
        members = range(self.k) if members is None else members
        if self.members[0]["validation"] != "holdout" or not members:
            return [{} for _ in members]
        test = self._test_split()
        loss, accuracy = self.evaluate(test, 0, test.size)
        return [{} if self.diverged[i] else {"test_loss": float(loss[i]), "test_accuracy": float(accuracy[i])}
                for i in members]

    @property
    def done(self) -> bool:
        return self.epochs_done >= self.epochs or all(self.frozen(i) for i in range(self.k))

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, folder: str) -> None:
        """Weights, optimizer state, rows, divergence and early stopping: everything a restart needs."""
        arrays = {f"w{i}": v.numpy() for i, v in enumerate(self.net.variables)}
        arrays.update({f"o{i}": np.asarray(v.numpy()) for i, v in enumerate(self.optimizer.variables)})
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        with open(os.path.join(folder, ARRAYS_FILE), "wb") as f:
            f.write(buffer.getvalue())
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump({"epochs_done": self.epochs_done, "diverged": self.diverged, "rows": self.rows,
                       "members": [m["seed"] for m in self.members],
                       "early_stop": [s.state() if s else None for s in self.stops]}, f)

    def restore(self, folder: str) -> None:
        """Continue from a checkpoint `save` wrote (or, for a solo trial of an experiment
        started before packing, one holding its Keras model)."""
        if not os.path.exists(os.path.join(folder, STATE_FILE)) and self.k == 1:
            return self._restore_keras(folder)
        with open(os.path.join(folder, STATE_FILE)) as f:
            state = json.load(f)
        if state["members"] != [m["seed"] for m in self.members]:
            raise ValueError(f"{folder}: a checkpoint of another pack")
        with np.load(os.path.join(folder, ARRAYS_FILE)) as arrays:
            for i, v in enumerate(self.net.variables):
                v.assign(arrays[f"w{i}"])
            for i, v in enumerate(self.optimizer.variables):
                v.assign(arrays[f"o{i}"])
        self.epochs_done, self.diverged, self.rows = state["epochs_done"], state["diverged"], state["rows"]
        saved = state.get("early_stop") or [None] * self.k
        self.stops = [EarlyStop.of(m, s) for m, s in zip(self.members, saved)]
        self._set_alive()

    def _restore_keras(self, folder: str) -> None:
        import keras

        with open(os.path.join(folder, "state.json")) as f:
            state = json.load(f)
        self.epochs_done = state["epochs_done"]
        self.stops = [EarlyStop.of(self.members[0], state.get("early_stop"))]
        model = keras.models.load_model(os.path.join(folder, "model.keras"))
        for v, w in zip(self.net.variables, model.get_weights()):
            v.assign(np.reshape(w, v.shape))
        for v, w in zip(self.optimizer.variables, model.optimizer.variables):
            v.assign(np.reshape(np.asarray(w), v.shape))
        self._set_alive()
