"""Reference classifiers: trained once per (dataset, classifier, epochs, train subset, seed),
before the trials, and shared by every denoise trial that names them.

The driver trains the missing ones as Ray tasks (side by side, with the resources
of one trial each) and writes each as a `.keras` file with a `.json` note in the
experiment's `references/` folder, on the same storage as the trials (local, NFS,
s3:// or gs://), so a resumed or repeated run loads it instead of training again.
The trials receive the files' bytes through the Ray object store, which reaches
every node of a cluster; no trial trains or writes a reference.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time

from models import arch_defaults
from sweeps.grids import BASE_DEFAULTS

FOLDER = "references"


def reference_config(config: dict) -> dict | None:
    """The classification config of a denoise trial's reference classifier (None if it has none).

    The classifier trains on clean images with its seed's settings, on the trial's
    training subset and seed.
    """
    if config.get("kind") != "denoise" or not config.get("classifier"):
        return None
    arch = config["classifier"]
    cfg = {**BASE_DEFAULTS, **arch_defaults(arch), "arch": arch, "dataset": config["dataset"],
           "seed": config["seed"], "train_subset": config["train_subset"]}
    if config.get("classifier_epochs"):
        cfg["epochs"] = config["classifier_epochs"]
    return cfg


def reference_key(ref: dict) -> str:
    """The file name stem of a reference classifier: everything that changes its weights."""
    subset = ref["train_subset"] or "all"
    return f"{ref['dataset']}_{ref['arch']}_e{ref['epochs']}_n{subset}_s{ref['seed']}"


def trial_reference_key(config: dict) -> str | None:
    ref = reference_config(config)
    return reference_key(ref) if ref else None


def fingerprint(blob: bytes) -> str:
    return hashlib.sha256(blob).hexdigest()[:16]


def train_reference(ref: dict, arrays: dict) -> tuple[bytes, dict]:
    """Train one reference classifier on clean images -> (its .keras file bytes, a note
    with its clean test accuracy and training time). Runs in a Ray task."""
    import keras
    import tensorflow as tf

    from sweeps.trainable import compiled_model, configure_tensorflow, training_data

    configure_tensorflow(tf, ref["seed"])
    clock = time.perf_counter()
    data, num_classes = training_data(ref, arrays)
    model = compiled_model(ref, data["train"][0].shape[1:], num_classes)
    key = reference_key(ref)

    def progress(epoch, logs):
        # Printed in the Ray task: Ray shows it on the driver, so a long stage is seen to move.
        print(f"reference {key}: epoch {epoch + 1}/{ref['epochs']}, accuracy {logs.get('accuracy', 0):.4f}",
              flush=True)

    model.fit(*data["train"], batch_size=ref["batch_size"], epochs=ref["epochs"], verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=progress)])
    _, accuracy = model.evaluate(*data["val"], batch_size=1000, verbose=0)
    with tempfile.TemporaryDirectory(prefix="noisesweep-ref-") as d:
        path = os.path.join(d, "model.keras")
        model.save(path)
        with open(path, "rb") as f:
            blob = f.read()
    note = {"config": ref, "clean_test_accuracy": float(accuracy), "train_s": round(time.perf_counter() - clock, 1),
            "test_images": int(len(data["val"][1])), "sha256_16": fingerprint(blob)}
    return blob, note


def load_classifier(blob: bytes):
    """A reference classifier's bytes -> the Keras model."""
    import keras

    with tempfile.TemporaryDirectory(prefix="noisesweep-ref-") as d:
        path = os.path.join(d, "model.keras")
        with open(path, "wb") as f:
            f.write(blob)
        return keras.models.load_model(path)


def _read(fs, path: str) -> bytes | None:
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except (FileNotFoundError, OSError):
        return None


def _write(fs, path: str, blob: bytes) -> None:
    # Written under a temporary name first: a run killed mid-write leaves no half file
    # that a resume would load.
    with fs.open_output_stream(path + ".part") as f:
        f.write(blob)
    fs.move(path + ".part", path)


def ensure_references(trials: list[dict], datasets: dict, filesystem, exp_path: str,
                      resources: dict, log=None) -> dict:
    """Every reference classifier the trials need, as {key: .keras bytes}; trains (as Ray
    tasks) only those not already in `exp_path/references/`."""
    log = log or (lambda line: print(line, flush=True))
    needed = {}
    for t in trials:
        ref = reference_config(t)
        if ref:
            needed.setdefault(reference_key(ref), ref)
    if not needed:
        return {}
    folder = f"{exp_path}/{FOLDER}"
    filesystem.create_dir(folder, recursive=True)
    blobs = {key: _read(filesystem, f"{folder}/{key}.keras") for key in needed}
    have = {k: b for k, b in blobs.items() if b is not None}
    missing = [k for k in needed if k not in have]
    if have:
        log(f"reference classifiers: {len(have)} loaded from {folder}")
    if not missing:
        return have
    import ray

    log(f"reference classifiers: training {len(missing)} ({', '.join(missing)}), "
        "then the trials start")
    task = ray.remote(train_reference).options(num_cpus=resources.get("cpu", 1), num_gpus=resources.get("gpu", 0),
                                               max_retries=2)
    data_refs = {name: ray.put(arrays) for name, arrays in datasets.items()}
    pending = {task.remote(needed[k], data_refs[needed[k]["dataset"]]): k for k in missing}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        key = pending.pop(done[0])
        blob, note = ray.get(done[0])
        _write(filesystem, f"{folder}/{key}.keras", blob)
        _write(filesystem, f"{folder}/{key}.json", json.dumps(note, indent=1).encode())
        have[key] = blob
        log(f"reference {key}: clean test accuracy {note['clean_test_accuracy']:.4f} "
            f"on {note['test_images']:,} images, trained in {note['train_s']:.0f} s")
    return have
