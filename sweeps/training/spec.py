"""A pack described once: its members, what they learn (their task's Training), the splits
they train and validate on, the shapes and steps of an epoch. Every fact about a pack that
the engine, the loop and the checkpoints need is derived here, once.
"""

from __future__ import annotations

import numpy as np

from sweeps import conditions, schema
from sweeps.data.arrays import input_shape_of, num_classes_of, subset, train_size
from sweeps.optimizers import steps_per_epoch
from sweeps.training.feeds import FeedData, order, prepare


def build_member(training, members: list[dict], i: int):
    """Member i's Keras model, built under its seed: the weights its solo trial starts from
    (and, for what the weights leave out, such as a VAE's sampling seed, its own)."""
    import keras

    keras.utils.set_random_seed(members[i]["seed"])
    return training.build(i)


class PackSpec:
    """K member configs (alike in all but sweeps.packing.MEMBER_KEYS) on their dataset's
    arrays. `validate`: False for no validation each epoch (a reference classifier is
    scored once, at its end)."""

    def __init__(self, members: list[dict], arrays: dict, references: dict | None = None, validate: bool = True,
                 scoring: dict | None = None):
        from sweeps import tasks
        from sweeps.packing import group_key

        first = members[0]
        self.members, self.arrays, self.validate = members, arrays, validate
        group = group_key(first)  # what no member may change (sweeps.packing)
        self.k = len(members)
        self.epochs, self.batch_size = first["epochs"], first["batch_size"]
        self.holdout = first["validation"] == "holdout"
        self.training = training = tasks.for_config(first).training(members, arrays, references or {})
        self.metric_names = training.metric_names()
        schema.check_metrics(dict.fromkeys(self.metric_names))  # a task's metric the analysis would not know
        # The members as the batches see them (a denoiser's noise on both splits).
        self.feed_members = training.feed_members(members)
        self.train_split = subset(first, arrays, "train")
        n = len(self.train_split[0])
        self.n_train = train_size(first, n)  # a hold-out is the tail of the training split
        self.steps = steps_per_epoch(self.n_train, first)
        self.num_classes = num_classes_of(arrays)
        self.input_shape = input_shape_of(arrays)
        # What the members are scored on after training (sweeps.conditions): `scoring` holds
        # the images made once for the experiment (sweeps.preflight.scoring_images), by
        # scoring_key; what it lacks is made here.
        self.section = conditions.section_of(first)
        self.conditions = conditions.conditions(self.section)
        self.evaluate_every = first.get("evaluate_every")
        self._scoring = scoring or {}
        self._condition_feeds: dict = {}
        self.train_feed = prepare(self.feed_members, *self.train_split, "train", self.input_shape)
        self._test_feed = None
        # Everything a compiled step depends on: a worker's kept engine serves the next pack
        # with the same key (sweeps.training.worker).
        self.key = (group, self.k, self.n_train, self.num_classes, self.train_feed.layout,
                    any(m["l2"] for m in members))

    def test_split(self):
        return subset(self.members[0], self.arrays, "test")

    def test_feed(self) -> FeedData:
        """The test split's feed, made on first use (a hold-out run scores it once, at its end)."""
        if self._test_feed is None:
            self._test_feed = prepare(self.feed_members, *self.test_split(), "test", self.input_shape)
        return self._test_feed

    def condition_feed(self, condition) -> FeedData:
        """The test split under `condition`, as the members' scoring feed: its images (a
        corruption's, a benchmark's, or clean, cut to the members' test_subset), each
        member's standardisation and clip, the condition's noise from the evaluation seed."""
        if condition not in self._condition_feeds:  # made once: scored again every evaluate_every epochs
            x, y = self.condition_images(condition)
            members = conditions.feed_members(self.members, condition, self.section["seed"])
            self._condition_feeds[condition] = prepare(members, x, y, "test", self.input_shape)
        return self._condition_feeds[condition]

    def condition_images(self, condition) -> tuple[np.ndarray, np.ndarray]:
        """The uint8 test images and labels of `condition`, cut to the members' test_subset
        (its noise, if any, is added later, by a feed or `conditions.inputs`)."""
        made = self._scoring.get(conditions.scoring_key(self.section["seed"], condition))
        images, labels = made if made is not None else conditions.images(condition, self.section, self.arrays)
        return subset(self.members[0], {"x_test": images, "y_test": labels}, "test")

    def validation(self) -> tuple[str, int, int]:
        """(split, first row, end row) validated on each epoch: the hold-out, or the test split."""
        if self.holdout:
            return "train", self.n_train, len(self.train_split[0])
        return "test", 0, len(self.test_split()[0])

    def epoch_names(self) -> list[str]:
        """The keys of a member's epoch metrics, as Keras's fit logs them."""
        return [n for n in self.metric_names if self.validate or not n.startswith("val_")]

    def orders(self, epoch: int) -> np.ndarray:
        """Each member's training order in `epoch` (0-based), `[K, n_train]` int32."""
        return np.stack([order(m["seed"], epoch, self.n_train) for m in self.members]).astype(np.int32)

    def models(self) -> list:
        return [build_member(self.training, self.members, i) for i in range(self.k)]
