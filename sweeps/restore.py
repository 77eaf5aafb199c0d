"""Before Tune restores a step: each trial it will continue has its logs cut back to
the epoch its checkpoint holds.

Tune's driver appends every reported row to a trial's `result.json` and `progress.csv`
and uploads them with the experiment's state, but a driver killed between a report
and the next state save leaves rows the saved state does not know about: restored from
its last checkpoint, the trial trains those epochs again and Tune appends them a second
time. Rows after the checkpoint the state names are therefore dropped before Tune starts
(its loggers copy these files down and append to them), so every epoch is logged once.
A larger pack's members write their own logs from the checkpoint (sweeps.training.reporting) and
need nothing here.

Tune's CSV logger takes a continued trial's columns from its first new row and appends
under the header already in `progress.csv`: when the rows' keys changed (a newer
version's row; a hold-out trial's last row, with its test scores, first after a restart)
its values land under the wrong columns. Such a file is written again from `result.json`
(`realign`): before a step is restored and after it ran.
"""

from __future__ import annotations

import csv
import io
import json

from sweeps.storage import Storage

RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.csv"
ITERATION = "training_iteration"


def cut_back(step: Storage) -> int:
    """Cut the logs of every unfinished trial in the Tune experiment in `step` to the rows
    up to its last checkpoint; the number of result rows dropped."""
    dropped = 0
    for trial, folder in _trials(step):
        if trial.status == "TERMINATED":
            continue  # Tune does not run it again
        kept = trial.latest_checkpoint_result
        # No checkpoint: the trial starts afresh and Tune writes its logs anew.
        if kept is not None:
            dropped += _cut_trial(folder, int(kept.metrics[ITERATION]))
    return dropped


def realign(step: Storage) -> int:
    """Write again from its `result.json` every trial's `progress.csv` whose rows do not
    fit its header, in the Tune experiment in `step`; the number of files written."""
    return sum(_realign(folder) for _, folder in _trials(step))


def _trials(step: Storage):
    """(Tune's trial, its folder) for every trial of the Tune experiment in `step`."""
    from ray.tune import ExperimentAnalysis

    fs, path = step.filesystem
    for trial in ExperimentAnalysis(path, storage_filesystem=fs).trials:
        yield trial, step.child(trial.storage.trial_dir_name)


def _cut_trial(folder: Storage, last: int) -> int:
    dropped = 0
    for name, cut in ((RESULT_FILE, _cut_json_lines), (PROGRESS_FILE, _cut_csv)):
        # A misaligned progress.csv is made from the result.json just cut: nothing left to cut.
        if name == PROGRESS_FILE and _realign(folder):
            continue
        text = folder.read_bytes(name)
        if text is None:
            continue
        kept, n = cut(text.decode(), last)
        if n:
            folder.write_bytes(kept.encode(), name)
            dropped += n if name == RESULT_FILE else 0
    return dropped


def _realign(folder: Storage) -> bool:
    """Whether the trial's progress.csv had rows of another width than its header (but
    for a torn last line) and was written again from its result.json. Never when that
    would lose a row: a trial Tune retried within a run can hold epochs in progress.csv
    alone (its driver put back an older result.json; analysis.load reads them there)."""
    text = folder.read_bytes(PROGRESS_FILE)
    if text is None:
        return False
    text = text.decode()
    rows = list(csv.reader(io.StringIO(text)))
    # A torn last line (the driver killed mid-write: no newline after it) is _cut_csv's to drop.
    body = rows[1:] if text.endswith("\n") else rows[1:-1]
    result = None if all(len(r) == len(rows[0]) for r in body) else folder.read_bytes(RESULT_FILE)
    if result is None:
        return False
    lines = _json_rows(result.decode())
    if len(lines) < len(body) or not lines:
        return False
    folder.write_bytes(_csv_of(lines).encode(), PROGRESS_FILE)
    return True


def _json_rows(json_lines: str) -> list[dict]:
    """The rows of a result.json, less torn lines and anything that is no row."""
    rows = []
    for line in json_lines.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a torn line
        if isinstance(row, dict):
            rows.append(row)
    return rows


def _csv_of(json_rows: list[dict]) -> str:
    """result.json's rows as Tune's CSV logger writes them: without the config, nested keys
    flattened with "/"; the columns those of the last row, in its order (the rows Tune
    appends when the trial goes on have them so), then any other key a row has."""
    from ray.tune.utils import flatten_dict

    rows = [flatten_dict({k: v for k, v in row.items() if k != "config"}, delimiter="/") for row in json_rows]
    out = io.StringIO()
    writer = csv.DictWriter(out, list(dict.fromkeys([*(rows[-1] if rows else ()), *(k for r in rows for k in r)])))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _cut_json_lines(text: str, last: int) -> tuple[str, int]:
    """JSON lines -> (those with training_iteration <= last, the number dropped). A torn
    last line (the driver killed mid-write) is dropped too."""
    kept, dropped = [], 0
    for line in text.splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if row.get(ITERATION, 0) <= last:
            kept.append(line + "\n")
        else:
            dropped += 1
    return "".join(kept), dropped


def _cut_csv(text: str, last: int) -> tuple[str, int]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or ITERATION not in rows[0]:
        return text, 0
    col = rows[0].index(ITERATION)

    def keep(row):
        try:
            return int(float(row[col])) <= last
        except (IndexError, ValueError):
            return False  # a torn row

    body = [r for r in rows[1:] if keep(r)]
    if len(body) == len(rows) - 1:
        return text, 0
    out = io.StringIO()
    csv.writer(out).writerows([rows[0], *body])
    return out.getvalue(), len(rows) - 1 - len(body)
