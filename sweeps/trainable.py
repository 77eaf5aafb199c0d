"""The Ray Tune trainable: one trial trains one config, or one pack of configs.

A config whose task packs (sweeps.packing) trains through sweeps.pack_trainer, alone as
a pack of one or with the other members Tune gives it (`config["members"]`). Any other
picks its task (sweeps.tasks), which turns the config into data and a compiled model,
and runs the Keras fit loop with the reporting callback. It knows
nothing of grids or figures: data arrive through `tune.with_parameters` (read
zero-copy from the object store), and so do the reference classifiers and the
experiment's storage, where the trial's end-of-training files go.
"""

from __future__ import annotations

import os

from sweeps import tasks


def configure_tensorflow(seed: int):
    """TensorFlow, imported quietly (sweeps.quiet), with threads, GPU memory and seeds set
    before it runs its first op."""
    import ray

    from sweeps.quiet import import_tensorflow, quiet_ray_workers

    assigned = ray.get_runtime_context().get_assigned_resources()
    quiet_ray_workers()
    tf = import_tensorflow(gpu=bool(assigned.get("GPU")))
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
    return tf


def fit(model, parts, config: dict, callbacks, initial_epoch: int = 0, validate: bool = True,
        by_epoch: bool = False):
    """The one fit loop: trials, reference classifiers and the benchmark's plain loop.
    `validate=False` skips the per-epoch validation (a reference is judged once, at its end).

    `by_epoch=True` (trials, which restart from checkpoints) trains each epoch on the order
    sweeps.batches gives a pack's member, with the model's random generators set from
    (seed, epoch): epochs after a restart are those an uninterrupted trial trains (Keras's
    own generators, such as the VAE's sampling, start again from the seed on a restart)."""
    from sweeps.quiet import stderr_silenced

    def run(train, epochs, start, shuffle=True):
        return model.fit(*train, batch_size=config["batch_size"], epochs=epochs, initial_epoch=start,
                         shuffle=shuffle, validation_data=parts.val if validate else None,
                         callbacks=callbacks, verbose=0)

    # Keras feeds fit through tf.data, whose graphs log a "NodeDef mentions attribute" error
    # line to file descriptor 2 as they start: nothing a user acts on (shown with -v).
    with stderr_silenced():
        if not by_epoch:
            return run(parts.train, config["epochs"], initial_epoch)
        import numpy as np

        from sweeps.batches import order

        generators = [v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state")]
        bases = [np.random.SeedSequence([int(config["seed"]), i]).generate_state(1)[0] >> 1
                 for i in range(len(generators))]
        for epoch in range(initial_epoch, config["epochs"]):
            rows = order(config["seed"], epoch, len(parts.train[0]))
            for state, base in zip(generators, bases):
                # Each generator its own stream, counted from a point no earlier epoch reaches.
                state.assign(np.array([base, epoch << 20], dtype=state.dtype))
            run([a[rows] for a in parts.train], epoch + 1, epoch, shuffle=False)
            if model.stop_training:
                break


def train_trial(config: dict, datasets: dict, references: dict | None = None, storage=None) -> None:
    """Train the model `config` describes and report every epoch to Tune.

    `datasets` maps dataset name -> {x_train, y_train, x_test, y_test} uint8 arrays;
    `references` maps reference classifier key -> .keras bytes (sweeps.reference);
    `storage` is the experiment's folder (sweeps.storage.Storage).
    """
    from sweeps.packing import members_of, packs

    members = members_of(config) or [config]
    configure_tensorflow(members[0]["seed"])
    if packs(members[0]):
        return train_pack(members, datasets[members[0]["dataset"]], storage)
    from ray import tune

    from sweeps import pack_engine

    pack_engine.release()  # a kept pack's data would sit beside this trial's

    from sweeps.early_stopping import EarlyStop
    from sweeps.reporting import TuneReport, load_checkpoint

    parts = tasks.for_config(config).parts(config, datasets[config["dataset"]], references or {})
    checkpoint = tune.get_checkpoint()
    model, state = load_checkpoint(checkpoint) if checkpoint else (parts.build(), {"epochs_done": 0})
    stop = EarlyStop.of(config, state.get("early_stop"))
    if state["epochs_done"] >= config["epochs"] or (stop and stop.stopped):
        return
    report = TuneReport(config["epochs"], config["checkpoint_every"], finish=parts.finish,
                        folder=trial_folder(storage), stop=stop)
    fit(model, parts, config, [report], initial_epoch=state["epochs_done"], by_epoch=True)


def trial_folder(storage):
    """This trial's folder on the experiment's storage (where its files go beside Tune's)."""
    from ray import tune

    from sweeps.storage import Storage

    trial_dir = tune.get_context().get_trial_dir()
    return storage.child(os.path.basename(trial_dir)) if storage else Storage(trial_dir)


def train_pack(members: list[dict], arrays: dict, storage=None) -> None:
    """Train `members` (one config or a pack) as sweeps.pack_trainer.Pack, reporting every epoch."""
    import time

    from ray import tune

    from sweeps.pack_trainer import Pack
    from sweeps.reporting import PackReport, member_names, write_members

    folder = trial_folder(storage)
    names = member_names(folder, members)
    if len(members) > 1:
        write_members(folder, names, members)
    pack = Pack(members, arrays)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            pack.restore(d)
    report = PackReport(pack, folder, names)
    while not pack.done:
        t0 = time.perf_counter()
        metrics = pack.train_epoch()
        report.epoch(metrics, time.perf_counter() - t0)
