"""Reference classifiers: trained once per (dataset, classifier, epochs, train subset, seed),
before the trials, and shared by every trial whose task names them (a denoiser's judge).

A reference is a classification trial's config, completed by the grid's defaults,
and trains through the classification task and the trials' engine (a pack of one). The
driver trains the missing ones as Ray tasks (side by side, with the resources of
one trial each) and writes each as a `.keras` file with a `.json` note in the
experiment's `references/` folder (sweeps.storage: local, NFS, s3:// or gs://),
so a resumed or repeated run loads it instead of training again. The trials
receive the files' bytes through the Ray object store, which reaches every node
of a cluster; no trial trains or writes a reference.
"""

from __future__ import annotations

import time

from sweeps import tasks
from sweeps.grids import trial_config
from sweeps.storage import Storage, StorageError
from sweeps.modelfile import fingerprint, model_to_bytes

FOLDER = "references"


def needed(trials: list[dict]) -> dict:
    """{key: full classification config} of every reference the trials' tasks name."""
    out = {}
    for t in trials:
        for key, partial in tasks.for_config(t).references(t).items():
            out.setdefault(key, trial_config(partial, {}))
    return out


def train_reference(key: str, ref: dict, arrays: dict) -> tuple[bytes, dict]:
    """Train one reference classifier on clean images -> (its .keras file bytes, a note
    with its clean test accuracy and training time). Runs in a Ray task."""
    from sweeps.optimizers import make_optimizer
    from sweeps.training import loop
    from sweeps.training.pack import Pack
    from sweeps.training.trainable import configure_tensorflow
    from sweeps.training.worker import release

    configure_tensorflow(ref["seed"])
    clock = time.perf_counter()

    def progress(epoch):
        # Printed in the Ray task: Ray shows it on the driver, so a long stage is seen to move.
        print(f"reference {key}: epoch {epoch.ledger.epochs_done}/{ref['epochs']}, "
              f"accuracy {epoch.ledger.rows[0][-1]['accuracy']:.4f}", flush=True)

    # The trials' engine, as a pack of one; judged once, at its end.
    pack = Pack([ref], arrays, validate=False)
    loop.train(pack, observers=[progress])
    _, accuracy = pack.validation_scores()
    model = pack.member_model(0)
    # Compiled as a trial's model was, so its file loads as references always have.
    model.compile(optimizer=make_optimizer(ref, pack.spec.steps), loss=ref["loss_fn"],
                  metrics=["accuracy"])
    blob = model_to_bytes(model)
    release()  # the worker that trained it may run other tasks: its pack's data goes
    _, start, stop = pack.spec.validation()
    note = {"config": ref, "clean_test_accuracy": float(accuracy[0]), "train_s": round(time.perf_counter() - clock, 1),
            "test_images": int(stop - start), "sha256_16": fingerprint(blob)}
    return blob, note


def stored(folder: Storage, key: str) -> bytes | None:
    """The reference `key` as the experiment stored it, checked against the hash its note
    recorded; None when it was never stored. StorageError when it is there but cannot be
    read, or is not the model the note names."""
    blob = folder.read_bytes(f"{key}.keras")
    if blob is None:
        return None
    note = folder.read_json(f"{key}.json")
    recorded = note.get("sha256_16") if isinstance(note, dict) else None
    if recorded and fingerprint(blob) != recorded:
        raise StorageError(f"{folder.join(key + '.keras')}: its sha256 begins {fingerprint(blob)}, not {recorded} "
                           f"as {key}.json recorded: not the reference the experiment's configs were judged by; "
                           "put it back, or run the configs as a new experiment")
    return blob


def ensure_references(trials: list[dict], datasets: dict, storage: Storage, resources: dict, log=None) -> dict:
    """Every reference classifier the trials need, as {key: .keras bytes}; trains (as Ray
    tasks) only those not already in the experiment's `references/` folder."""
    log = log or (lambda line: print(line, flush=True))
    wanted = needed(trials)
    if not wanted:
        return {}
    folder = storage.child(FOLDER)
    folder.makedirs()
    # A file that is there but cannot be read stops the run (StorageError): retrained, it
    # would replace the model earlier configs were judged by.
    blobs = {key: stored(folder, key) for key in wanted}
    have = {k: b for k, b in blobs.items() if b is not None}
    missing = [k for k in wanted if k not in have]
    if have:
        log(f"reference classifiers: {len(have)} loaded from {folder.path}")
    if not missing:
        return have
    import ray

    log(f"reference classifiers: training {len(missing)} ({', '.join(missing)}), "
        "then the trials start")
    task = ray.remote(train_reference).options(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                                               max_retries=2)
    data_refs = {name: ray.put(arrays) for name, arrays in datasets.items()}
    pending = {task.remote(k, wanted[k], data_refs[wanted[k]["dataset"]]): k for k in missing}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(done[0])
        blob, note = ray.get(done[0])
        # The note (with the model's hash) first: a model is never on disk without it.
        folder.write_json(note, f"{key}.json")
        folder.write_bytes(blob, f"{key}.keras")
        have[key] = blob
        log(f"reference {key}: clean test accuracy {note['clean_test_accuracy']:.4f} "
            f"on {note['test_images']:,} images, trained in {note['train_s']:.0f} s")
    return have
