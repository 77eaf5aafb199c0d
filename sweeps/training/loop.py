"""The epoch loop: every transition of a pack's epoch, in one place and in order (train,
record, freeze, the ended members' end-of-training scoring, their scores under the test-time
conditions, the checkpoint), then the
observers, which only read what the epoch left (sweeps.training.reporting: the members'
files and Tune's row).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field

from sweeps import schema


@dataclass(frozen=True)
class Epoch:
    """What an observer reads after an epoch: the pack's ledger (its members' rows, stops,
    epochs done), the members that trained this epoch and those it ended with their outcomes
    (their metrics already in their last rows), the seconds it took, and, when this epoch
    is checkpointed, the folder holding the checkpoint (while the observers run)."""

    ledger: object
    trained: list[int]
    seconds: float
    ended: list[int] = field(default_factory=list)
    outcomes: list = field(default_factory=list)
    checkpoint: str | None = None
    scored: list[int] = field(default_factory=list)  # members scored under the test-time conditions


def epoch(pack, context: dict | None = None, checkpoint_every: int = 0, observers=()) -> Epoch:
    """Train one epoch of `pack` (sweeps.training.pack.Pack) and call each observer with its
    Epoch. `context`: what every row of it says of where it ran; `checkpoint_every`: save
    every that many epochs and at the end (0: never)."""
    started = time.perf_counter()
    metrics = pack.train_epoch()
    seconds = time.perf_counter() - started
    ledger = pack.ledger
    trained = ledger.record(metrics, {"epoch_time_s": seconds, "timestamp": int(time.time()), **(context or {})})
    pack.freeze()
    ended = ledger.ended(trained)  # at the pack's end, or stopped early while others go on
    outcomes = pack.finish(ended)
    for i, outcome in zip(ended, outcomes):
        schema.check_metrics(outcome.metrics)  # a metric the analysis would not know
        ledger.close(i, outcome.metrics)
    scored = pack.due_scoring(trained, ended)
    for i, rows in zip(scored, pack.score_conditions(scored) if scored else []):
        ledger.scored(i, rows)
    done = Epoch(ledger, trained, seconds, ended, outcomes, scored=scored)
    if not checkpoint_every or (ledger.epochs_done % checkpoint_every and not ledger.done):
        _notify(observers, done)
        return done
    with tempfile.TemporaryDirectory(prefix="noisesweep-ckpt-") as folder:
        pack.save(folder)
        done = Epoch(ledger, trained, seconds, ended, outcomes, checkpoint=folder, scored=scored)
        _notify(observers, done)
    return done


def _notify(observers, done: Epoch) -> None:
    for observe in observers:
        observe(done)


def train(pack, context: dict | None = None, checkpoint_every: int = 0, observers=(), epochs: int | None = None):
    """Epochs of `pack` until it is done (or `epochs` of them, counted from where it is),
    each as `epoch`; the Epochs, in order."""
    out = []
    while not pack.done and (epochs is None or len(out) < epochs):
        out.append(epoch(pack, context, checkpoint_every, observers))
    return out
