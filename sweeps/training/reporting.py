"""The observers of a pack's epochs (sweeps.training.loop) that write what the analysis
reads: the members' files (end-of-training artifacts, a larger pack's members' rows and
TensorBoard events) and the row and checkpoint each epoch reports to Ray Tune. They only
read the epoch; the loop has made every change to the pack before they run.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket

import numpy as np
import ray
from ray import tune

from sweeps import schema
from sweeps.training import tensorboard

def write_artifacts(folder, artifacts: dict) -> None:
    """Each artifact into `folder` (a sweeps.storage.Storage): arrays as .npz, the rest as JSON."""
    for name, value in artifacts.items():
        if name.endswith(".npz"):
            buffer = io.BytesIO()
            np.savez_compressed(buffer, **value)
            folder.write_bytes(buffer.getvalue(), name)
        else:
            folder.write_json(value, name)


def context() -> dict:
    """Where a row was made: Ray's node, the host, the GPUs Ray gave the trial
    (CUDA_VISIBLE_DEVICES is set to them) and whether TensorFlow's oneDNN kernels were on, in
    every row so a log says where and how it ran."""
    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "gpus": ",".join(str(g) for g in ray.get_gpu_ids()), "onednn": onednn()}


def onednn() -> bool:
    """Whether TensorFlow's oneDNN CPU kernels are on in this process: its own answer (it
    also depends on the CPU when TF_ENABLE_ONEDNN_OPTS is unset), else the variable's."""
    try:
        from tensorflow.python.util import _pywrap_util_port
        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a private module: a later TensorFlow may move it
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").lower() in ("1", "true")


def member_means(rows: list[list[dict]]) -> dict:
    """`mean_<metric>` over the members' latest rows (diverged ones left out, NaN if all
    are): what a search (sweeps.search) and its scheduler see of a sampled config."""
    latest = [r[-1] for r in rows if r]
    alive = [r for r in latest if not r.get("diverged")]
    names = [m for m in schema.METRICS if m != "epoch_time_s" and latest and all(m in r for r in latest)]
    return {f"mean_{m}": float(np.mean([r[m] for r in alive])) if alive else math.nan for m in names}


def listed_folders(folder, members: list[dict], names: list[str]) -> list[str]:
    """A pack's member folders as its folder lists them (checked: names read from a file
    become paths), else `names` (sweeps.packing.member_dirnames)."""
    listed = folder.read_json(schema.MEMBERS_FILE)
    if isinstance(listed, list) and len(listed) == len(members):
        if not all(schema.is_plain_name(n) for n in listed):  # names that would be paths elsewhere
            raise ValueError(f"{folder.join(schema.MEMBERS_FILE)}: {listed!r} are not folder names")
        return listed
    return names


def member_folders(folder, members: list[dict], names: list[str]) -> list[str]:
    """A pack's member folders: those its folder already lists, else `names`
    (sweeps.packing.member_dirnames). A restarted pack keeps the names it started with: under
    names given otherwise (a later version's), a member that ended before the restart would
    be listed in a folder it never wrote.

    A pack of several then makes its folder read as its members' (analysis.load): the member
    list and each member's `params.json`, written as the pack starts, before it builds
    (seconds, and it may fail), so that no reader ever sees the pack's folder as one trial."""
    names = listed_folders(folder, members, names)
    if len(members) > 1:
        folder.write_json(names, schema.MEMBERS_FILE)
        for name, member in zip(names, members):
            folder.write_json(member, name, "params.json")
    return names


class MemberFiles:
    """Each member's files in its folder (a pack of one's in the trial's folder, `folder`, a
    sweeps.storage.Storage; a larger pack's members' each in `folder/NAME`): the artifacts
    of its end, and for a larger pack its rows as `result.json` and a TensorBoard event
    file (sweeps.training.tensorboard), rewritten whole each epoch from the rows the
    checkpoint keeps, so a pack restarted from an older checkpoint leaves no epoch twice."""

    def __init__(self, folder, folders: list[str]):
        self.folder, self.folders = folder, folders  # the members' folders' names

    def __call__(self, epoch) -> None:
        ledger = epoch.ledger
        for i, outcome in zip(epoch.ended, epoch.outcomes):
            if outcome.artifacts:  # before the row that says the member finished
                write_artifacts(self._member(ledger, i), outcome.artifacts)
        for i in epoch.scored:  # all its scores so far, whole: a restart leaves none twice
            self._member(ledger, i).write_bytes(robustness_csv(ledger.robustness[i]), schema.ROBUSTNESS_FOLDER,
                                                TRAINING_SCORES)
        if ledger.k == 1:
            return  # its rows are Tune's own (TuneRow)
        for i in epoch.trained:
            lines = "".join(json.dumps(r) + "\n" for r in ledger.rows[i])
            self.folder.write_bytes(lines.encode(), self.folders[i], "result.json")
            self.folder.write_bytes(tensorboard.event_file(ledger.rows[i]), self.folders[i], tensorboard.EVENT_FILE)


    def _member(self, ledger, i: int):
        return self.folder if ledger.k == 1 else self.folder.child(self.folders[i])


TRAINING_SCORES = "train.csv"  # a config's scores made as it trained (schema.ROBUSTNESS_FOLDER)


def robustness_csv(rows: list[dict]) -> bytes:
    """Scores under test-time conditions as schema.ROBUSTNESS_COLUMNS CSV, a metric a task
    lacks left empty."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=schema.ROBUSTNESS_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                         for k in schema.ROBUSTNESS_COLUMNS})
    return out.getvalue().encode()


class TuneRow:
    """Each epoch's row to Tune, with the epoch's checkpoint when it has one. A pack of one
    reports its member's row as its own, so its folder is an ordinary trial's; a larger
    pack's row holds every member's epoch, divergence and headline metric, and the means
    a search reads (`member_means`)."""

    def __init__(self, folders: list[str], context: dict):
        self.folders, self.context = folders, context  # the members' folders' names: their keys in a pack's row

    def __call__(self, epoch) -> None:
        ledger = epoch.ledger
        if ledger.k == 1:
            row = ledger.rows[0][-1]
        else:
            row = {"epoch": ledger.epochs_done, "epoch_time_s": epoch.seconds, **self.context,
                   **member_means(ledger.rows), "members": {
                       name: {k: rows[-1].get(k) for k in ("epoch", "diverged", "stopped",
                                                           schema.headline_metric(rows[-1]))}
                       for name, rows in zip(self.folders, ledger.rows) if rows}}
        if epoch.checkpoint is None:
            tune.report(row)
        else:
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(epoch.checkpoint))
