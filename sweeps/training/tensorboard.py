"""A pack member's per-epoch metrics as a TensorBoard event file in its own folder.

Ray Tune's TBX logger writes one event file per Tune trial: a config trained alone gets
its own, but a pack is one Tune trial, so its members would share one run. Each member's
folder gets this file instead, rewritten whole each epoch from the rows the pack's
checkpoint keeps (like its result.json), so a pack resumed from an older checkpoint
leaves no epoch twice. Tags are Tune's (`ray/tune/val_accuracy`, ...): in TensorBoard a
member's curve and a lone trial's share a chart, under the folder name (arch, noise, L2,
seed).
"""

from __future__ import annotations

import math
import struct

from tensorboardX.proto.event_pb2 import Event
from tensorboardX.proto.summary_pb2 import Summary
from tensorboardX.record_writer import masked_crc32c

EVENT_FILE = "events.out.tfevents.0.noisesweep"
TAG_PREFIX = "ray/tune/"
NOT_CURVES = {"epoch", "pid", "timestamp", "diverged", "stopped", "best_epoch"}  # the step, the process, the clock, flags


def _record(event: Event) -> bytes:
    """One TFRecord: length, its masked CRC, the data, its masked CRC."""
    data = event.SerializeToString()
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def event_file(rows: list[dict]) -> bytes:
    """The event file of a member's rows: each numeric metric a scalar at its epoch."""
    first = float(rows[0].get("timestamp", 0)) if rows else 0.0
    out = [_record(Event(wall_time=first, file_version="brain.Event:2"))]
    for row in rows:
        # NaN (a diverged epoch) is left out, as Tune's logger does for a lone trial.
        values = [Summary.Value(tag=TAG_PREFIX + k, simple_value=float(v)) for k, v in row.items()
                  if k not in NOT_CURVES and isinstance(v, (int, float)) and not isinstance(v, bool)
                  and math.isfinite(v)]
        out.append(_record(Event(wall_time=float(row.get("timestamp", first)), step=int(row["epoch"]),
                                 summary=Summary(value=values))))
    return b"".join(out)
