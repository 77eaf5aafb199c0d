"""A pack's members as the epochs leave them: each member's rows, whether it diverged, its
early stopping, and how many epochs the pack has trained. Pure Python: no TensorFlow, no
Tune. It is what a checkpoint keeps of the members besides their weights (`state`), and
what every observer of an epoch reads.
"""

from __future__ import annotations

import math

from sweeps.training.early_stopping import EarlyStop


class Ledger:
    """The rows and stops of K members of `epochs` epochs (`members`: their configs)."""

    def __init__(self, members: list[dict]):
        self.seeds = [m["seed"] for m in members]
        self.epochs = members[0]["epochs"]
        self._members = members
        self.k = len(members)
        self.epochs_done = 0
        self.rows: list[list[dict]] = [[] for _ in members]
        self.diverged = [False] * self.k
        self.stops = [EarlyStop.of(m) for m in members]
        self.robustness: list[list[dict]] = [[] for _ in members]  # scores under test-time conditions

    def frozen(self, i: int) -> bool:
        """Whether member i trains no more: diverged, or ended by early stopping."""
        return self.diverged[i] or bool(self.stops[i] and self.stops[i].stopped)

    def alive(self) -> list[bool]:
        """Which members still train."""
        return [not self.frozen(i) for i in range(self.k)]

    @property
    def done(self) -> bool:
        return self.epochs_done >= self.epochs or not any(self.alive())

    def record(self, metrics: list[dict], extra: dict) -> list[int]:
        """The epoch just trained: each training member's row (its metrics, the epoch, whether
        it diverged, its early stopping's word, and `extra`: timing and where it ran), and
        the members it froze. Returns the members that trained it."""
        trained = [i for i in range(self.k) if not self.frozen(i)]
        self.epochs_done += 1
        for i in trained:
            diverged = not math.isfinite(metrics[i]["loss"])
            row = {**metrics[i], "epoch": self.epochs_done, "diverged": diverged, **extra}
            stop = self.stops[i]
            if stop is not None and not diverged:
                stop.update(self.epochs_done, metrics[i])
                row.update(stop.row())
            self.rows[i].append(row)
            self.diverged[i] = diverged
        return trained

    def ended(self, trained: list[int]) -> list[int]:
        """Of the members that trained the epoch just recorded, those whose last epoch it was."""
        return list(trained) if self.done else [i for i in trained if self.frozen(i)]

    def close(self, i: int, metrics: dict) -> None:
        """Member i's end-of-training metrics, into its last row."""
        self.rows[i][-1].update(metrics)

    def scored(self, i: int, rows: list[dict]) -> None:
        """Member i's scores under the test-time conditions at its last epoch (sweeps.conditions)."""
        self.robustness[i] += rows

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict:
        """Everything a restart needs, as JSON."""
        return {"epochs_done": self.epochs_done, "diverged": self.diverged, "rows": self.rows,
                "members": self.seeds, "early_stop": [s.state() if s else None for s in self.stops],
                "robustness": self.robustness}

    def load(self, state: dict, where: str) -> None:
        """Continue from `state()` of this pack (`where`: the checkpoint, for the message)."""
        if state["members"] != self.seeds:
            raise ValueError(f"{where}: a checkpoint of another pack")
        self.epochs_done, self.diverged, self.rows = state["epochs_done"], state["diverged"], state["rows"]
        self.robustness = state.get("robustness") or [[] for _ in range(self.k)]
        saved = state.get("early_stop") or [None] * self.k
        self.stops = [EarlyStop.of(m, s) for m, s in zip(self._members, saved)]

    def load_solo(self, state: dict) -> None:
        """Continue a solo trial from the state file of an experiment made before packing
        (its epochs and early stopping; its rows are Tune's)."""
        self.epochs_done = state["epochs_done"]
        self.stops = [EarlyStop.of(self._members[0], state.get("early_stop"))]
