"""Training K configs of one architecture as one pack, each exactly as alone: classifiers,
denoisers, the VAE, a task of one's own (what each learns and how it is scored is its
task's, sweeps.tasks.base.Training).

The pack's loss is the sum of the members' own losses (each its mean loss plus its own L2
penalty and the losses its model adds), so each member's gradient is its solo gradient, and the optimizer
(per element: SGD, Adam, Adadelta, RMSprop, Adagrad, Nadam) updates it as alone. Each
member has its own initial weights (built under its seed), its own order per epoch and
its own noise (sweeps.training.batches), its own dropout masks (models.packed). A member whose
loss turns NaN is recorded as diverged at that epoch and frozen: its loss leaves the sum,
its gradients and its optimizer state are zeroed (its weights stay as they are), while the
others go on with their own numbers. A member that early stopping ends
(sweeps.training.early_stopping, its own rule and state) is frozen the same way after its last
row, and scored on a hold-out's test split right then.

A solo trial is a pack of one: the same step, the same order, the same
noise, so packed and solo runs of a config agree.
"""

from __future__ import annotations

import io
import json
import math
import os

import numpy as np

from sweeps import schema
from sweeps.training.batches import order
from sweeps.training.early_stopping import EarlyStop
from sweeps.tasks.base import Outcome, num_classes_of, steps_per_epoch, subset

EVAL_BATCH = 1024  # validation batches: a sum over images, so their size changes no figure
STATE_FILE = "pack.json"
ARRAYS_FILE = "pack.npz"


class Pack:
    """K member configs (alike in all but sweeps.packing.MEMBER_KEYS) and their data."""

    def __init__(self, members: list[dict], arrays: dict, references: dict | None = None, validate: bool = True):
        import keras

        from sweeps import tasks
        from sweeps.training.engine import engine_for

        self.members = members
        first = members[0]
        self.k = len(members)
        self.epochs = first["epochs"]
        self.batch_size = first["batch_size"]
        self.validate = validate  # False: no validation each epoch (a reference is scored at its end)
        self.training = training = tasks.for_config(first).training(members, arrays, references or {})
        self.names = training.metric_names()
        schema.check_metrics(dict.fromkeys(self.names))  # a task's metric the analysis would not know
        num_classes = num_classes_of(arrays)
        n = len(subset(first, arrays, "train")[0])
        if first["validation"] == "holdout":
            held = first["holdout_size"]
            if held >= n:
                raise ValueError(f"holdout_size {held} leaves no training images out of {n}")
            # The test split is made at the end (finish): it is scored once.
            self.n_train, self.val_rows = n - held, (n - held, n)
        else:
            self.n_train = n
        models = []
        for i, m in enumerate(members):
            keras.utils.set_random_seed(m["seed"])  # the weights its solo trial starts from
            models.append(training.build(i))
        self.engine = engine_for(self, members, arrays, models, self.n_train, num_classes, training)
        del models
        self.train, self.net, self.optimizer = self.engine.train, self.engine.net, self.engine.optimizer
        # The test feed is made at the first use: a hold-out member's end, or now to validate on.
        engine = self.engine  # not self: a pack's end must free it for the next (no cycle)
        feed_members = training.feed_members(members)
        self._test_split = lambda: engine.test_feed(feed_members, arrays)
        if first["validation"] == "holdout":
            self.val = self.train
        else:
            self.val = self._test_split()
            self.val_rows = (0, self.val.size)
        self.epochs_done = 0
        self.rows: list[list[dict]] = [[] for _ in members]
        self.diverged = [False] * self.k
        self.stops = [EarlyStop.of(m) for m in members]
        self._train_step, self._eval_step = self.engine.train_step, self.engine.eval_step

    # -- epochs -------------------------------------------------------------------------
    def train_epoch(self) -> list[dict]:
        """One epoch of every member still training; returns each member's metrics (the
        task's: loss, its metric and their val_ values, named as Keras's fit logs them),
        diverged ones included."""
        from sweeps.training.backends import scalar

        epoch = self.epochs_done
        self.engine.loss_sum.assign(np.zeros(self.k, np.float32))
        self.engine.metric_sum.assign(np.zeros(self.k, np.float32))
        rows = np.stack([order(m["seed"], epoch, self.n_train) for m in self.members]).astype(np.int32)
        b = self.batch_size
        steps = steps_per_epoch(self.n_train, self.members[0])
        if self.net.pads:  # one compiled shape: the last batch padded with index 0, masked out
            rows = np.pad(rows, [[0, 0], [0, steps * b - self.n_train]])
        for s in range(steps):
            size = min(b, self.n_train - s * b)
            self._train_step(rows[:, s * b:(s + 1) * b], scalar(size), scalar(epoch * steps + s))
        values = [self.engine.loss_sum.numpy() / self.n_train, self.engine.metric_sum.numpy() / self.n_train]
        if self.validate:
            values += self.evaluate(self.val, *self.val_rows)
        self.epochs_done += 1
        names = [n for n in self.names if self.validate or not n.startswith("val_")]
        return [{name: float(v[i]) for name, v in zip(names, self._with_metric(values))} for i in range(self.k)]

    def _with_metric(self, values: list) -> list:
        """(loss, metric, val_loss, val_metric) less the metrics of a task that has none."""
        return values if self.training.metric else values[::2]

    def evaluate(self, feed, start: int, stop: int):
        """Every member's (loss, metric) on rows [start, stop) of `feed`: its mean loss plus
        its weight penalty and the losses the model adds, as Keras's evaluate reports a
        regularised model's loss (the metric's values are meaningless for a task without)."""
        from sweeps.training.backends import scalar

        ce, hits, added = np.zeros(self.k), np.zeros(self.k), np.zeros(self.k)
        for a in range(start, stop, EVAL_BATCH):
            size = min(EVAL_BATCH, stop - a)
            # Every batch in one compiled shape where the net allows: the last one padded with
            # row `start`, masked out.
            rows = np.full(EVAL_BATCH if self.net.pads_scoring else size, start, np.int32)
            rows[:size] = np.arange(a, a + size)
            idx = np.ascontiguousarray(np.broadcast_to(rows[None], (self.k, len(rows))))
            c, h, extra = self._eval_step(feed, idx, scalar(size))
            ce += np.asarray(c)
            hits += np.asarray(h)
            added += np.asarray(extra)
        n = stop - start
        return (ce + added) / n + np.asarray(self.net.penalty()), hits / n

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
        self.engine.alive.assign(alive)
        if not alive.all():
            self.net.still(self.optimizer.variables, alive)

    def finish(self, members: list[int] | None = None) -> list[Outcome]:
        """The end-of-training outcome of `members` (default all), in their order: the task's
        (its `finish`, from the member's trained Keras model), or for a task without one that
        validated on a hold-out, its test loss and metric (the test split is scored once, at
        a member's end); an empty outcome for the others and for diverged members."""
        members = range(self.k) if members is None else members
        if self.training.finish is not None:
            from sweeps.quiet import stderr_silenced

            # Keras's predict feeds through tf.data, whose graphs log a "NodeDef mentions
            # attribute" error line to file descriptor 2 as they start: nothing a user acts on.
            with stderr_silenced():
                return [Outcome() if self.diverged[i] else self.training.finish(i, self.member_model(i))
                        for i in members]
        if self.members[0]["validation"] != "holdout" or not members:
            return [Outcome() for _ in members]
        test = self._test_split()
        values = self._with_metric(list(self.evaluate(test, 0, test.size)))
        names = [f"test_{n}" for n in self.names if not n.startswith("val_")]
        return [Outcome() if self.diverged[i] else Outcome({n: float(v[i]) for n, v in zip(names, values)})
                for i in members]

    def member_model(self, i: int):
        """Member i's Keras model with its weights as trained so far (and its state)."""
        import keras

        # Built under its seed, as at the start: what the weights leave out (the seed of a
        # VAE's sampling draws) is then the member's own, packed or alone.
        keras.utils.set_random_seed(self.members[i]["seed"])
        model = self.training.build(i)
        model.set_weights(self.net.member_weights(i))
        return model

    @property
    def done(self) -> bool:
        return self.epochs_done >= self.epochs or all(self.frozen(i) for i in range(self.k))

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, folder: str) -> None:
        """Weights, the network's state (BatchNormalization's statistics), optimizer state, rows,
        divergence and early stopping: everything a restart needs."""
        arrays = {f"w{i}": v.numpy() for i, v in enumerate(self.net.variables)}
        arrays.update({f"s{i}": np.asarray(v.numpy()) for i, v in enumerate(self.net.state)})
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
            for i, v in enumerate(self.net.state):
                v.assign(arrays[f"s{i}"])
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
        if hasattr(self.net, "set_member_weights"):  # state (BatchNormalization's) among the weights
            self.net.set_member_weights(0, model.get_weights())
        else:
            for v, w in zip(self.net.variables, model.get_weights()):
                v.assign(np.reshape(w, v.shape))
        for v, w in zip(self.optimizer.variables, model.optimizer.variables):
            v.assign(np.reshape(np.asarray(w), v.shape))
        self._set_alive()
