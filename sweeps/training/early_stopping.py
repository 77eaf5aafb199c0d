"""Early stopping as a grid setting (seed 003: `EarlyStopping(monitor='val_loss', patience=5)`).

Keras's own rule (keras.callbacks.EarlyStopping, mode "auto", no baseline, weights not
restored), kept as plain state so that one rule serves a solo trial's Keras loop and each
member of a pack, and so that its state goes into a checkpoint and comes back from it: a
trial restarted after a fault stops at the epoch it would have stopped at uninterrupted.
No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sweeps.schema import maximized

# The grid's keys: null patience is no early stopping; the others need a patience.
KEYS = ("patience", "monitor", "min_delta")
DEFAULT_MONITOR = "val_loss"


@dataclass
class EarlyStop:
    """One trial's early-stopping state; `update` after every epoch says whether to stop.

    `best_epoch` and `stopped_epoch` count epochs from 1, as the trial's rows do.
    """

    patience: int
    monitor: str = DEFAULT_MONITOR
    min_delta: float = 0.0
    wait: int = 0
    best: float | None = None
    best_epoch: int | None = None
    stopped_epoch: int | None = None

    @classmethod
    def of(cls, config: dict, state: dict | None = None) -> EarlyStop | None:
        """The config's early stopping (None without a patience), continued from `state`
        (`state()` of an earlier run of the same trial) if given."""
        if config.get("patience") is None:
            return None
        stop = cls(config["patience"], config.get("monitor") or DEFAULT_MONITOR, abs(config.get("min_delta") or 0.0))
        if state:
            for key in ("wait", "best", "best_epoch", "stopped_epoch"):
                setattr(stop, key, state[key])
        return stop

    @property
    def stopped(self) -> bool:
        return self.stopped_epoch is not None

    def _improved(self, value: float) -> bool:
        if self.best is None:  # Keras: the first value seen is the best so far, whatever it is
            return True
        if maximized(self.monitor):
            return value - self.min_delta > self.best
        return value + self.min_delta < self.best

    def update(self, epoch: int, metrics: dict) -> bool:
        """After epoch `epoch` (from 1) with its `metrics`: True when the trial stops here.

        As Keras: every epoch adds one to the wait; an improvement on the best by more
        than min_delta resets it; the trial stops once the wait reaches the patience,
        never after its first epoch. An epoch without the monitored metric is skipped.
        """
        value = metrics.get(self.monitor)
        if value is None or self.stopped:
            return self.stopped
        value = float(value)
        self.wait += 1
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return False
        if self.wait >= self.patience and epoch > 1:
            self.stopped_epoch = epoch
        return self.stopped

    def row(self) -> dict:
        """What a trial's row says of it: whether it stopped here, and its best epoch so far."""
        return {"stopped": self.stopped, "best_epoch": self.best_epoch}

    def state(self) -> dict:
        """Everything a restart needs, as JSON."""
        return asdict(self)
