"""Training K configs of one architecture as one pack, each exactly as alone: classifiers,
denoisers, the VAE, a task of one's own (what each learns and how it is scored is its
task's, sweeps.tasks.base.Training).

The pack's loss is the sum of the members' own losses (each its mean loss plus its own L2
penalty and the losses its model adds), so each member's gradient is its solo gradient, and the optimizer
(per element: SGD, Adam, Adadelta, RMSprop, Adagrad, Nadam) updates it as alone. Each
member has its own initial weights (built under its seed), its own order per epoch and
its own noise (sweeps.training.feeds), its own dropout masks (models.packed). A member whose
loss turns NaN is recorded as diverged at that epoch and frozen: its loss leaves the sum,
its gradients and its optimizer state are zeroed (its weights stay as they are), while the
others go on with their own numbers. A member that early stopping ends
(sweeps.training.early_stopping, its own rule and state) is frozen the same way after its last
row, and scored on a hold-out's test split right then.

A solo trial is a pack of one: the same step, the same order, the same
noise, so packed and solo runs of a config agree.

`Pack` is the one owner of a pack's state: its description (`spec`), its compiled part
(`engine`) and its members' rows and stops (`ledger`). sweeps.training.loop drives it an
epoch at a time.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from sweeps.tasks.base import Outcome
from sweeps.training.ledger import Ledger
from sweeps.training.spec import PackSpec, build_member

STATE_FILE = "pack.json"
ARRAYS_FILE = "pack.npz"


class Pack:
    """K member configs (alike in all but sweeps.packing.MEMBER_KEYS) and their data."""

    def __init__(self, members: list[dict], arrays: dict, references: dict | None = None, validate: bool = True,
                 scoring: dict | None = None):
        from sweeps.training.worker import engine_for

        self.ledger = Ledger(members)
        self.spec = PackSpec(members, arrays, references, validate, scoring)
        self.engine = engine_for(self, self.spec, self.spec.models())

    @property
    def k(self) -> int:
        return self.spec.k

    @property
    def members(self) -> list[dict]:
        return self.spec.members

    @property
    def done(self) -> bool:
        return self.ledger.done

    # -- an epoch's parts (sweeps.training.loop calls them in order) --------------------
    def train_epoch(self) -> list[dict]:
        """One epoch of every member still training; returns each member's metrics (the
        task's: loss, its metric and their val_ values, named as Keras's fit logs them),
        frozen ones included."""
        epoch = self.ledger.epochs_done
        values = list(self.engine.train_epoch(self.spec.orders(epoch), epoch))
        if self.spec.validate:
            values += self.engine.scores(*self.spec.validation())
        names = self.spec.epoch_names()
        return [{name: float(v[i]) for name, v in zip(names, self._with_metric(values))} for i in range(self.k)]

    def validation_scores(self) -> tuple[np.ndarray, np.ndarray]:
        """Every member's (loss, metric) on its validation rows, now."""
        return self.engine.scores(*self.spec.validation())

    def _with_metric(self, values: list) -> list:
        """(loss, metric, val_loss, val_metric) less the metrics of a task that has none."""
        return values if self.spec.training.metric else values[::2]

    def freeze(self) -> None:
        """Train only the members the ledger says still train."""
        self.engine.freeze(self.ledger.alive())

    def finish(self, members: list[int] | None = None) -> list[Outcome]:
        """The end-of-training outcome of `members` (default all), in their order: the task's
        (its `finish`, from the member's trained Keras model), or for a task without one that
        validated on a hold-out, its test loss and metric (the test split is scored once, at
        a member's end); an empty outcome for the others and for diverged members."""
        members = range(self.k) if members is None else members
        training, diverged = self.spec.training, self.ledger.diverged
        if training.finish is not None:
            from sweeps.quiet import stderr_silenced

            # Keras's predict feeds through tf.data, whose graphs log a "NodeDef mentions
            # attribute" error line to file descriptor 2 as they start: nothing a user acts on.
            with stderr_silenced():
                return [Outcome() if diverged[i] else training.finish(i, self.member_model(i)) for i in members]
        if not self.spec.holdout or not members:
            return [Outcome() for _ in members]
        test = self.engine.scores("test", 0, len(self.spec.test_split()[0]))
        values = self._with_metric(list(test))
        names = [f"test_{n}" for n in self.spec.metric_names if not n.startswith("val_")]
        return [Outcome() if diverged[i] else Outcome({n: float(v[i]) for n, v in zip(names, values)})
                for i in members]

    def due_scoring(self, trained: list[int], ended: list[int]) -> list[int]:
        """The members to score under the test-time conditions now: those that ended, and with
        `evaluate_every` those that trained an epoch of that period; never a diverged one."""
        if not self.spec.conditions:
            return []
        every = self.spec.evaluate_every
        due = set(ended) | (set(trained) if every and self.ledger.epochs_done % every == 0 else set())
        return [i for i in sorted(due) if not self.ledger.diverged[i]]

    def score_conditions(self, members: list[int]) -> list[list[dict]]:
        """`members`' rows (schema.ROBUSTNESS_COLUMNS) under every condition of the spec, each
        at its last epoch; the pack is scored together, its frozen members as they froze."""
        if self.spec.training.judge is not None:
            return [self._judged(i) for i in members]
        accuracy = "accuracy" in self.spec.metric_names
        rows = [[] for _ in members]
        for condition in self.spec.conditions:
            loss, metric = self.engine.scores_on(self.spec.condition_feed(condition))
            for out, i in zip(rows, members):
                out.append({**self._where(i, condition), "accuracy": float(metric[i]) if accuracy else None,
                            "loss": float(loss[i])})
        return rows

    def _where(self, i: int, condition) -> dict:
        return {"epoch": self.ledger.rows[i][-1]["epoch"], "suite": condition.suite, "condition": condition.name,
                "severity": condition.severity}

    def _judged(self, i: int) -> list[dict]:
        """Member i under every condition, by its task's judge on its Keras model (a denoiser:
        its reconstruction of the clean originals, and its reference classifier's accuracy)."""
        from sweeps import conditions
        from sweeps.noise import to_unit_float, with_channels
        from sweeps.quiet import stderr_silenced

        model, seed = self.member_model(i), self.spec.section["seed"]
        originals = with_channels(to_unit_float(self.spec.test_split()[0]))
        rows = []
        with stderr_silenced():  # Keras's predict: tf.data's start-up lines (see finish)
            for condition in self.spec.conditions:
                images, labels = self.spec.condition_images(condition)
                x = conditions.inputs(self.members[i], condition, images, seed)
                rows.append({**self._where(i, condition),
                             **self.spec.training.judge(i, model, x, originals[:len(x)], labels.astype(np.int64))})
        return rows

    def member_model(self, i: int):
        """Member i's Keras model with its weights as trained so far (and its state)."""
        # Built under its seed, as at the start: what the weights leave out (the seed of a
        # VAE's sampling draws) is then the member's own, packed or alone.
        model = build_member(self.spec.training, self.members, i)
        model.set_weights(self.engine.member_weights(i))
        return model

    # -- checkpoints ----------------------------------------------------------------------
    def save(self, folder: str) -> None:
        """Weights, the network's state (BatchNormalization's statistics), optimizer state, rows,
        divergence and early stopping: everything a restart needs."""
        buffer = io.BytesIO()
        np.savez(buffer, **self.engine.arrays())
        with open(os.path.join(folder, ARRAYS_FILE), "wb") as f:
            f.write(buffer.getvalue())
        with open(os.path.join(folder, STATE_FILE), "w") as f:
            json.dump(self.ledger.state(), f)

    def restore(self, folder: str) -> None:
        """Continue from a checkpoint `save` wrote (or, for a solo trial of an experiment
        started before packing, one holding its Keras model)."""
        if not os.path.exists(os.path.join(folder, STATE_FILE)) and self.k == 1:
            import keras

            with open(os.path.join(folder, "state.json")) as f:
                self.ledger.load_solo(json.load(f))
            self.engine.load_solo_model(keras.models.load_model(os.path.join(folder, "model.keras")))
        else:
            with open(os.path.join(folder, STATE_FILE)) as f:
                self.ledger.load(json.load(f), folder)
            with np.load(os.path.join(folder, ARRAYS_FILE)) as arrays:
                self.engine.load_arrays(arrays)
        self.freeze()
