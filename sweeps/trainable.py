"""The Ray Tune trainable: one trial trains one model on one noisy dataset.

It composes the pieces and knows nothing of grids or figures: data arrive
through `tune.with_parameters` (read zero-copy from the object store), noise
comes from sweeps.noise, the model from the models registry, and each epoch
goes to Tune through sweeps.reporting.TuneReport. A classification trial
learns labels; a denoise trial (config kind `denoise`) learns noisy -> clean
images and ends with sweeps.denoise's evaluation.
"""

from __future__ import annotations

import numpy as np

from sweeps.noise import noisy_split


def configure_tensorflow(tf, seed: int) -> None:
    """Threads, GPU memory and seeds, before TensorFlow runs its first op."""
    import ray

    assigned = ray.get_runtime_context().get_assigned_resources()
    cpus = assigned.get("CPU", 1.0)
    threads = max(1, int(round(cpus)))
    try:
        # One pool sized to the trial's CPUs: more threads than CPUs only makes
        # trials running side by side fight over the cores.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # the runtime already started in this worker (a reused actor): keep its pools
    # Probing CUDA on a CPU-only trial costs time and prints errors: only look
    # for GPUs the trial was given.
    for gpu in tf.config.list_physical_devices("GPU") if assigned.get("GPU") else []:
        # Trials sharing a GPU (fractional --gpus-per-trial) must not each grab it all.
        tf.config.experimental.set_memory_growth(gpu, True)
    import keras

    # A reused worker still holds the previous trial's graph and layer names.
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def compiled_model(config: dict, input_shape, num_classes: int):
    """The registry's model for `config`, compiled with its optimizer, learning rate and loss."""
    from models import build_model

    model = build_model(config["arch"], config["l2"], input_shape, num_classes)
    model.compile(optimizer=make_optimizer(config), loss=config["loss_fn"], metrics=["accuracy"])
    return model


def make_optimizer(config: dict):
    import keras

    # The grid's optimizer names (sweeps.grids.OPTIMIZERS) are Keras's own identifiers.
    return keras.optimizers.get({"class_name": config["optimizer"], "config": {"learning_rate": config["lr"]}})


def subset(config: dict, arrays: dict, split: str):
    """(images, labels) of a split, cut to the config's `train_subset` / `test_subset`."""
    n = config[f"{split}_subset"]
    return arrays[f"x_{split}"][:n], arrays[f"y_{split}"][:n]


def prepare_data(config: dict, arrays: dict) -> dict:
    """uint8 dataset arrays -> float inputs and labels for fit/evaluate, noise applied.

    Returns x/y for train and val, and for test too when validating on a
    hold-out (the last `holdout_size` training images, as seed 002 does).
    """
    noise = {k: config[k] for k in ("noise_type", "noise_scale", "noise_target", "noise_clip")}
    out = {}
    for split in ("train", "test"):
        images, labels = subset(config, arrays, split)
        x = noisy_split(images, split, seed=config["seed"], standardize_first=config["standardize"], **noise)
        out[split] = (x[..., np.newaxis], labels.astype(np.int32))
    if config["validation"] == "holdout":
        x, y = out["train"]
        k = config["holdout_size"]
        if k >= len(x):
            raise ValueError(f"holdout_size {k} leaves no training images out of {len(x)}")
        out["train"], out["val"] = (x[:-k], y[:-k]), (x[-k:], y[-k:])
    else:
        out["val"] = out.pop("test")
    return out


def training_data(config: dict, arrays: dict):
    """(prepare_data's splits with labels in the form the loss wants, number of classes)."""
    num_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max())) + 1
    data = prepare_data(config, arrays)
    if config["loss_fn"] == "categorical_crossentropy":
        import keras

        data = {k: (x, keras.utils.to_categorical(y, num_classes)) for k, (x, y) in data.items()}
    return data, num_classes


def classification_parts(config: dict, arrays: dict):
    """(build the compiled model, training pair, validation pair, final-epoch hook)."""
    data, num_classes = training_data(config, arrays)

    def finish(model, directory):
        # Validating on a hold-out leaves the test set for the end.
        loss, acc = model.evaluate(*data["test"], batch_size=config["batch_size"], verbose=0)
        return {"test_loss": float(loss), "test_accuracy": float(acc)}

    build = lambda: compiled_model(config, data["train"][0].shape[1:], num_classes)  # noqa: E731
    return build, data["train"], data["val"], finish if "test" in data else None


def denoise_parts(config: dict, arrays: dict, references: dict):
    """(build the compiled denoiser, noisy -> clean training pair, validation pair, evaluation hook)."""
    from sweeps import denoise, reference

    data = denoise.denoise_data(config, arrays)
    key = reference.trial_reference_key(config)
    classifier, note = None, None
    if key:
        classifier = reference.load_classifier(references[key])
        # Which weights judged this trial, so trials sharing a classifier can be told apart.
        note = {"reference": key, "reference_sha256_16": reference.fingerprint(references[key])}
    build = lambda: denoise.compiled_denoiser(config, make_optimizer(config))  # noqa: E731
    return build, data["train"], data["val"], denoise.finish_trial(config, arrays, classifier, note)


def train_trial(config: dict, datasets: dict, references: dict | None = None) -> None:
    """Train the model `config` describes and report every epoch to Tune.

    `datasets` maps dataset name -> {x_train, y_train, x_test, y_test} uint8 arrays;
    `references` maps reference classifier key -> .keras bytes (sweeps.reference).
    """
    import tensorflow as tf

    configure_tensorflow(tf, config["seed"])
    from ray import tune

    from sweeps.reporting import TuneReport, load_checkpoint

    arrays = datasets[config["dataset"]]
    if config.get("kind") == "denoise":
        build, train, val, finish = denoise_parts(config, arrays, references or {})
    else:
        build, train, val, finish = classification_parts(config, arrays)

    checkpoint = tune.get_checkpoint()
    model, epochs_done = load_checkpoint(checkpoint) if checkpoint else (build(), 0)
    if epochs_done >= config["epochs"]:
        return
    report = TuneReport(config["epochs"], config["checkpoint_every"], finish=finish)
    model.fit(
        *train,
        batch_size=config["batch_size"],
        epochs=config["epochs"],
        initial_epoch=epochs_done,
        validation_data=val,
        callbacks=[report],
        verbose=0,
    )
