"""Whether a grid's models of one's own can train, found on the driver before Ray starts.

A model registered from outside the project (models.register, from a module named in
$NOISESWEEP_TASKS) is built here as two members, under seeds 0 and 1, at the smallest
and the largest L2 factor the grid gives it, on the input its dataset has, and packed as
the trials would pack them on their device (sweeps.training.engine.pack_net), with one
training forward pass. What fails comes back as one
line naming the architecture and the reason: the builder raised, returned no Keras model,
a classifier's output does not fit the dataset's classes, a layer cannot be packed, or
the task's loss cannot be computed on its outputs (a denoiser's that are not images).
The built-in models are tested in the suite and not built here: that would import
TensorFlow on the driver of every run.
"""

from __future__ import annotations

from models import resolve
from sweeps.quiet import quiet_keras_backend

BUILT_IN = "models."


def of_ones_own(arch: str) -> bool:
    """Whether `arch`'s builder lives outside the project's models package."""
    return not resolve(arch).module.startswith(BUILT_IN)


def problems(trials: list[dict], datasets: dict, gpu: bool = False) -> list[str]:
    """One line per architecture of one's own (and dataset) that cannot train; [] if all can.
    `gpu`: whether the trials run on GPUs (where a conv net's call is vectorised)."""
    cells: dict = {}
    for t in trials:
        if of_ones_own(t["arch"]):
            cells.setdefault((t["arch"], t["dataset"], t["task"]), []).append(t)
    out = []
    for (arch, dataset, _), configs in sorted(cells.items()):
        why = _why_not(configs, datasets[dataset], gpu)
        if why:
            # A registered name says where its builder is; an import path says it itself.
            where = "" if ":" in arch else f", {resolve(arch).module}.{resolve(arch).function}"
            out.append(f"arch = {arch!r} (a model of your own{where}) cannot train on {dataset}: {why}")
    return out


def _why_not(configs: list[dict], arrays: dict, gpu: bool) -> str | None:
    from models.backends import index_dtype, scalar

    quiet_keras_backend()
    import keras
    import numpy as np
    from keras import ops

    from models.packed import PackError
    from sweeps import tasks
    from sweeps.noise import with_channels
    from sweeps.data.arrays import input_shape_of, num_classes_of, subset
    from sweeps.tasks.base import unjudged
    from sweeps.training.engine import flattened, has_convolutions, pack_net
    from sweeps.training.spec import build_member

    first = configs[0]
    images, labels = subset(first, arrays, "train")
    input_shape = input_shape_of(arrays)
    classes = num_classes_of(arrays)
    l2s = sorted({float(c["l2"]) for c in configs})
    members = [unjudged({**first, "seed": seed, "l2": l2}) for seed, l2 in enumerate((l2s[0], l2s[-1]))]
    training = tasks.get(first["task"]).training(members, arrays, {})
    models = []
    for i in range(len(members)):
        try:
            model = build_member(training, members, i)
        except Exception as e:  # the builder is the user's code: any failure is theirs to read
            return f"its builder raised {type(e).__name__}: {_first_line(e)}"
        if not isinstance(model, keras.Model):
            return f"its builder returned a {type(model).__name__}, not a Keras model"
        models.append(model)
    model = models[0]
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        return f"it takes {len(model.inputs)} inputs and gives {len(model.outputs)} outputs; one of each trains"
    if tuple(model.inputs[0].shape[1:]) != tuple(input_shape):
        return f"its input is {tuple(model.inputs[0].shape[1:])}, the images are {tuple(input_shape)}"
    if first["task"] == "classify" and tuple(model.outputs[0].shape[1:]) != (classes,):
        return f"its output is {tuple(model.outputs[0].shape[1:])}, the dataset has {classes} classes"
    k = len(models)
    try:
        net = pack_net(models, jit=not has_convolutions(model), gpu=gpu)
        x = ops.convert_to_tensor(np.broadcast_to(with_channels(images[:2]) / np.float32(255), (k, 2, *input_shape)))
        outputs, added, _ = net.forward(x, True, np.zeros(k, index_dtype()), scalar(0))
    except PackError as e:
        return str(e)
    except Exception as e:  # a call that fails under vectorisation: its own words
        return f"its packed call failed: {type(e).__name__}: {_first_line(e)}"
    clean = ops.reshape(x, (-1, *input_shape))
    try:  # what the trials compute on its outputs: the task's targets and loss
        training.loss(training.targets(lambda: clean, ops.convert_to_tensor(np.tile(labels[:2].astype(np.int32), k))),
                      flattened(outputs))
    except Exception as e:
        return (f"its output {tuple(model.outputs[0].shape[1:])} does not fit the {first['task']} task's loss: "
                f"{type(e).__name__}: {_first_line(e)}")
    if l2s[-1] > 0 and float(np.asarray(net.penalty())[-1]) == 0 and float(np.asarray(added)[-1]) == 0:
        # Built with the grid's largest L2 factor it has no penalty: every factor would train
        # the same model, and the study would read "L2 has no effect".
        return (f"built with l2 = {l2s[-1]:g} it adds no penalty, so every l2 of the grid trains the same model; "
                "give its weighted layers kernel_regularizer=keras.regularizers.l2(l2) (or leave l2 out of the grid)")
    return None


def parameter_counts(trials: list[dict]) -> list[str]:
    """One line per distinct model the trials train (architecture, builder options,
    dataset shape): its parameter count, built here once (--dry-run)."""
    quiet_keras_backend()  # before Keras, which would print its start-up lines
    import keras
    import numpy as np

    from models import chosen_options
    from sweeps import tasks
    from sweeps.data.sources import shape_of
    from sweeps.tasks.base import unjudged

    seen, out = set(), []
    for t in trials:
        options = chosen_options(t)
        shape, classes = shape_of(t["dataset"])
        key = (t["arch"], repr(sorted(options.items())), tuple(shape), classes, t.get("latent_dim"))
        if key in seen:
            continue
        seen.add(key)
        arrays = {"x_train": np.zeros((2, *shape), np.uint8), "y_train": np.array([0, classes - 1]),
                  "x_test": np.zeros((1, *shape), np.uint8), "y_test": np.array([0])}
        keras.utils.set_random_seed(0)
        model = tasks.get(t["task"]).training([unjudged(t)], arrays, {}).build(0)
        given = "".join(f", {k} {v}" for k, v in options.items())
        out.append(f"  {t['arch']}{given} on {t['dataset']}: {model.count_params():,} parameters")
    return out


def _first_line(e: Exception) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else repr(e)
