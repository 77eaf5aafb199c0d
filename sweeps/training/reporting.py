"""Each epoch of a pack (or a solo trial, a pack of one) reported to Ray Tune, in the rows
and files the analysis reads: its members' rows, checkpoints, and end-of-training files.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import tempfile
import time

import numpy as np
import ray
from ray import tune

from sweeps import schema
from sweeps.training import tensorboard

MEMBERS_FILE = schema.MEMBERS_FILE


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


def member_names(folder, members: list[dict]) -> list[str]:
    """A pack's member folders: those its folder already lists, else
    sweeps.packing.member_dirnames. A restarted pack keeps the names it started with: under
    names given otherwise (a later version's), a member that ended before the restart would
    be listed in a folder it never wrote."""
    from sweeps.packing import member_dirnames

    listed = folder.read_json(MEMBERS_FILE)
    if isinstance(listed, list) and len(listed) == len(members):
        return listed
    return member_dirnames(members)


def write_members(folder, names: list[str], members: list[dict]) -> None:
    """A pack's folder made to read as its members' (analysis.load): the member list and
    each member's `params.json`. Written as a pack starts, before it builds (seconds, and
    it may fail), so that no reader ever sees the pack's folder as one trial."""
    folder.write_json(names, MEMBERS_FILE)
    for name, member in zip(names, members):
        folder.write_json(member, name, "params.json")


class PackReport:
    """After every epoch of a pack (sweeps.training.pack.Pack): each member's row, in the
    same words a solo trial reports; a checkpoint every `checkpoint_every` epochs and at
    the end.

    A pack of one reports its member's row to Tune as its own, so its folder is an
    ordinary trial's. A larger pack gives each member a folder inside the pack's
    (`folder`, a sweeps.storage.Storage), with the member's `params.json` and its rows as
    `result.json` and a TensorBoard event file (sweeps.training.tensorboard), rewritten whole each
    epoch from the rows the checkpoint keeps: a pack restarted from an older checkpoint
    leaves no epoch twice. The pack's own row to Tune
    holds every member's epoch, divergence and headline metric.
    """

    def __init__(self, pack, folder, names: list[str]):
        self.pack = pack
        self.folder = folder
        self.names = names
        self.context = context()
        self.every = pack.members[0]["checkpoint_every"]

    def epoch(self, metrics: list[dict], seconds: float) -> None:
        pack = self.pack
        # Tune adds the worker's pid to a trial's own rows; members' rows carry it themselves.
        pid = {"pid": os.getpid()} if pack.k > 1 else {}
        trained = pack.record(metrics, {"epoch_time_s": seconds, "timestamp": int(time.time()), **self.context,
                                        **pid})
        ended = pack.ended(trained)  # at the pack's end, or stopped early while others go on
        for i, outcome in zip(ended, pack.finish(ended)):
            schema.check_metrics(outcome.metrics)
            pack.rows[i][-1].update(outcome.metrics)
            if outcome.artifacts:  # before the row that says the member finished
                write_artifacts(self.folder if pack.k == 1 else self.folder.child(self.names[i]), outcome.artifacts)
        done = pack.epochs_done
        if pack.k == 1:
            row = pack.rows[0][-1]
        else:
            for i in trained:
                lines = "".join(json.dumps(r) + "\n" for r in pack.rows[i])
                self.folder.write_bytes(lines.encode(), self.names[i], "result.json")
                self.folder.write_bytes(tensorboard.event_file(pack.rows[i]), self.names[i], tensorboard.EVENT_FILE)
            row = {"epoch": done, "epoch_time_s": seconds, **self.context, **member_means(pack.rows), "members": {
                name: {k: rows[-1].get(k) for k in ("epoch", "diverged", "stopped", schema.headline_metric(rows[-1]))}
                for name, rows in zip(self.names, pack.rows) if rows}}
        if done % self.every and not pack.done:
            tune.report(row)
            return
        with tempfile.TemporaryDirectory(prefix="noisesweep-ckpt-") as d:
            pack.save(d)
            tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))
