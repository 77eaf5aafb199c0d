"""The Ray Tune trainable: one trial trains one config, or one pack of configs.

Every config trains through sweeps.training.pack, whatever its task (classifier, denoiser,
VAE, one's own: sweeps.tasks says what it learns), alone as a pack of one or with the
other members Tune gives it (`config["members"]`). It knows nothing of grids or figures:
data arrive through `tune.with_parameters` (read zero-copy from the object store), and so
do the reference classifiers and the experiment's storage, where the trial's
end-of-training files go.
"""

from __future__ import annotations

import os


def configure_tensorflow(seed: int):
    """TensorFlow, imported quietly (sweeps.quiet), with threads, GPU memory and seeds set
    before it runs its first op."""
    import ray

    from sweeps.quiet import import_tensorflow, quiet_ray_workers

    from models.backends import is_tensorflow

    assigned = ray.get_runtime_context().get_assigned_resources()
    quiet_ray_workers()
    if not is_tensorflow():  # JAX (KERAS_BACKEND=jax): its compiled steps are deterministic
        import keras

        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)
        return None
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


def train_trial(config: dict, datasets: dict, references: dict | None = None, storage=None,
                builders: dict | None = None, scoring: dict | None = None) -> None:
    """Train the config (or the pack of configs, `config["members"]`) and report every epoch
    to Tune.

    `datasets` maps dataset name -> {x_train, y_train, x_test, y_test} uint8 arrays;
    `references` maps reference classifier key -> .keras bytes (sweeps.reference);
    `storage` is the experiment's folder (sweeps.storage.Storage); `builders` maps the
    architectures given as Python objects to their builders; `scoring` maps dataset name ->
    the test-time conditions' images made for the experiment (sweeps.preflight.scoring_images).
    """
    from models.registry import use_builder
    from sweeps import tasks
    from sweeps.packing import unpack

    for name, builder in (builders or {}).items():
        use_builder(name, builder)
    tasks.all_tasks()  # imports $NOISESWEEP_TASKS first: their models register, named in folders
    members, names = unpack(config)
    configure_tensorflow(members[0]["seed"])
    dataset = members[0]["dataset"]
    train_pack(members, names, datasets[dataset], references, storage, (scoring or {}).get(dataset))


def trial_folder(storage):
    """This trial's folder on the experiment's storage (where its files go beside Tune's)."""
    from ray import tune

    from sweeps.storage import Storage

    trial_dir = tune.get_context().get_trial_dir()
    return storage.child(os.path.basename(trial_dir)) if storage else Storage(trial_dir)


def train_pack(members: list[dict], names: list[str], arrays: dict, references: dict | None = None,
               storage=None, scoring: dict | None = None) -> None:
    """Train `members` (one config or a pack; `names`: their folders in a pack's) as
    sweeps.training.pack.Pack through the epoch loop, reporting every epoch: the members'
    files, then Tune's row and checkpoint."""
    from ray import tune

    from sweeps.training import loop
    from sweeps.training.pack import Pack
    from sweeps.training.reporting import MemberFiles, TuneRow, context, member_folders

    folder = trial_folder(storage)
    names = member_folders(folder, members, names)
    pack = Pack(members, arrays, references, scoring=scoring)
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            pack.restore(d)
    where = context()
    # Tune adds the worker's pid to a trial's own rows; a larger pack's members' rows carry it themselves.
    rows = {**where, "pid": os.getpid()} if len(members) > 1 else where
    loop.train(pack, rows, members[0]["checkpoint_every"], [MemberFiles(folder, names), TuneRow(names, where)])
