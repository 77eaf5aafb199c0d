"""Checks made once the plan is known and before any trial starts: the data each config
trains on, models of one's own that could not train, GPUs a local run asks for, the
storage's free space and whether every Ray node reaches it. Each refusal is one
UsageError line; nothing has started.
"""

from __future__ import annotations

import io
import socket

import numpy as np

from sweeps.options import Options, UsageError
from sweeps.storage import Storage

# Checkpoints (two kept per trial) and logs: a disk with less free space fails mid-sweep.
MIN_FREE_BYTES = 64 * 2**20


def load_datasets(trials: list[dict], opts: Options, where: str) -> dict:
    """Every dataset the trials train on; a hold-out as large as a dataset's training images
    (which the grid cannot know before the data is here) is refused now, before Ray starts."""
    from sweeps.data import DataError, DataUnavailable, load_dataset
    from sweeps.data.arrays import holdout_problem, subset

    out = {}
    for name in sorted({t["dataset"] for t in trials}):
        try:
            out[name] = load_dataset(name, cache_dir=opts.cache_dir, data_dir=opts.data_dir).arrays()
        except DataUnavailable as e:
            raise UsageError(str(e)) from None
        except DataError as e:  # a file of one's own holding what no trial could use
            raise UsageError(f"{where}: dataset = {name!r}: {e}") from None
    for t in trials:
        problem = t.get("validation") == "holdout" and holdout_problem(
            t["holdout_size"], len(subset(t, out[t["dataset"]], "train")[1]), f"training images of {t['dataset']}")
        if problem:
            raise UsageError(f"{where}: {problem}")
    return out


def scoring_images(trials: list[dict], datasets: dict, where: str, log=print, store=None) -> dict:
    """The images every config is scored on after training (their grids' `evaluate:`,
    sweeps.conditions), made once for the experiment, on this machine, before Ray starts:
    dataset -> scoring key -> (uint8 images, labels). A benchmark folder whose images or
    labels do not fit its dataset is refused here.

    `store` (the experiment's sweeps.storage.Storage): the corrupted images are kept there
    (`scoring/`) as they are made and read back from it afterwards, so a resumed run and a
    later `noisesweep evaluate` score on the very images the experiment was scored on."""
    import time

    from sweeps import benchmarks, conditions
    from sweeps.data.arrays import num_classes_of

    # Each condition's images as far as the configs read them (the largest test_subset; a
    # corruption of the first n images is the first n of the whole split's).
    wanted: dict = {}
    checked = set()
    for t in trials:
        section = conditions.section_of(t)
        if not section:
            continue
        arrays = datasets[t["dataset"]]
        for i, folder in enumerate(section.get("folders", [])):
            if (t["dataset"], folder) in checked:
                continue
            checked.add((t["dataset"], folder))
            try:
                benchmarks.check(folder, image_shape=arrays["x_test"].shape[1:], num_classes=num_classes_of(arrays),
                                 where=f"{where}: evaluate.folders[{i}]")
            except benchmarks.BenchmarkError as e:
                raise UsageError(str(e)) from None
        n = t["test_subset"] or len(arrays["x_test"])
        for c in conditions.conditions(section):
            if conditions.made(c):
                key = (t["dataset"], conditions.scoring_key(section["seed"], c))
                held = wanted.get(key)
                wanted[key] = (c, section, max(n, held[2] if held else 0))
    out: dict = {}
    for dataset in sorted({d for d, _ in wanted}):
        todo = [(key, *v) for (d, key), v in wanted.items() if d == dataset]
        started = time.perf_counter()
        largest = max(n for *_, n in todo)
        log(f"scoring: making {len(todo)} test sets of {dataset} (up to {largest:,} images each) for the "
            "evaluate: conditions", flush=True)
        arrays = datasets[dataset]
        cut = {}
        for key, c, section, n in todo:
            if n not in cut:
                cut[n] = {**arrays, "x_test": arrays["x_test"][:n], "y_test": arrays["y_test"][:n]}
            kept = _kept_images(store, dataset, key, n) if conditions.is_generated(c) else None
            if kept is not None:
                out.setdefault(dataset, {})[key] = (kept, cut[n]["y_test"])
                continue
            out.setdefault(dataset, {})[key] = conditions.images(c, section, cut[n])
            if store is not None and conditions.is_generated(c):
                buffer = io.BytesIO()
                np.save(buffer, out[dataset][key][0])
                store.write_bytes(buffer.getvalue(), *_kept_path(dataset, key, n))
        log(f"scoring: made in {time.perf_counter() - started:.1f} s", flush=True)
    return out


SCORING_FOLDER = "scoring"  # an experiment's made test sets (scoring_images)


def _kept_path(dataset: str, key: str, n: int) -> tuple[str, str, str]:
    """Where a made test set is kept: scoring/<dataset>/<seed>-<corruption>-<severity>-<n>.npy,
    the dataset named by a plain word (a path or a given dataset by its hash)."""
    import hashlib

    name = dataset if dataset.isidentifier() else "d" + hashlib.sha256(dataset.encode()).hexdigest()[:12]
    return SCORING_FOLDER, name, key.replace(":", "-").replace("/", "-") + f"-{n}.npy"


def _kept_images(store, dataset: str, key: str, n: int):
    if store is None:
        return None
    blob = store.read_bytes(*_kept_path(dataset, key, n))
    if blob is None:
        return None
    try:
        images = np.load(io.BytesIO(blob), allow_pickle=False)
    except ValueError:  # a damaged copy: made again
        return None
    return images if images.dtype == np.uint8 and len(images) == n else None


def refuse_models_that_cannot_train(trials: list[dict], datasets: dict, where: str, opts: Options) -> None:
    """A model of one's own that cannot train, found now (sweeps.model_check), not by the workers."""
    from sweeps import model_check

    found = model_check.problems(trials, datasets, gpu=opts.gpus_per_trial > 0)
    if found:
        raise UsageError(f"{where}: {found[0]}")


def local_gpus() -> int | None:
    """The GPUs a Ray started here would have (Ray's own detection: the devices present, within
    CUDA_VISIBLE_DEVICES); None when it cannot tell."""
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        count = manager.get_current_node_num_accelerators()
        visible = manager.get_current_process_visible_accelerator_ids()
        return count if visible is None else min(count, len(visible))
    except Exception:  # a Ray whose private layout moved: no refusal rather than a wrong one
        return None


def check_local_gpus(per_trial: float) -> None:
    """A local Ray is only this machine: trials asking for more GPUs than it has would wait
    for a node that can never join."""
    if not per_trial:
        return
    have = local_gpus()
    if have is not None and have < per_trial:
        raise UsageError(f"--gpus-per-trial {per_trial:g}: this machine has {have} GPU{'s' if have != 1 else ''} "
                         "that Ray can use; leave the flag out to train on CPUs, or join a cluster with GPUs "
                         "(--address)")


def check_storage_reaches_every_node(ray, exp: Storage, opts: Options) -> None:
    """Trials write their logs where they run: a local folder only works if every node is this machine."""
    if exp.reaches_other_hosts():
        return
    here = socket.gethostname()
    hosts = sorted({n["NodeManagerHostname"] for n in ray.nodes() if n["Alive"]} - {here})
    if hosts:
        raise UsageError(f"--storage-path {opts.storage_path}: a local folder of {here}, but this Ray cluster "
                         f"has nodes on {', '.join(hosts)}; give a path every node shares (s3://BUCKET/..., "
                         "gs://BUCKET/..., or an NFS mount)")
    if opts.address:
        print(f"note: --storage-path {opts.storage_path} is local to {here}; if nodes on other hosts join "
              "this cluster, use s3://, gs:// or an NFS mount")


def check_free_space(exp: Storage, shown: str) -> None:
    free = exp.free_bytes()
    if free is not None and free < MIN_FREE_BYTES:
        raise UsageError(f"--storage-path {shown}: only {free / 2**20:.1f} MiB free on its disk; a sweep needs "
                         f"at least {MIN_FREE_BYTES // 2**20} MiB for its logs and checkpoints")
