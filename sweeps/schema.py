"""What a trial writes and how it is read back: the one vocabulary the runner, the
reporting callback and the analysis share.

Metric names and labels, trial statuses and the one rule that decides a trial's
status, the names of the files a trial leaves beside its logs, and the columns of
a denoiser's evaluation. Standard library only: the analysis imports this module
and nothing else from `sweeps/`, so it never loads Ray, TensorFlow or YAML.
"""

from __future__ import annotations

# What a trial reports each epoch (or with its last one), name -> axis label.
METRICS = {
    "loss": "training loss",
    "accuracy": "training accuracy",
    "val_loss": "validation loss",
    "val_accuracy": "validation accuracy",
    # A denoiser's, per pixel (seed 002's metric).
    "binary_accuracy": "training binary accuracy (per pixel)",
    "val_binary_accuracy": "validation binary accuracy (per pixel)",
    # Reported once, after the last epoch, by a trial that validated on a hold-out.
    "test_loss": "test loss",
    "test_accuracy": "test accuracy",
    "epoch_time_s": "epoch time (s)",
}
# Where and how a row was made; reported beside the metrics and the `epoch` every epoch.
# With early stopping (sweeps.training.early_stopping) a row also says whether the trial stopped
# there and its best epoch so far.
# `onednn`: whether TensorFlow's oneDNN CPU kernels were on (numbers differ by float rounding).
CONTEXT = ("node_id", "hostname", "gpus", "onednn", "pid", "timestamp", "diverged", "stopped", "best_epoch")
# What each task's loss is, for labels; a task not listed here is labelled plain "loss".
LOSS_KINDS = {
    "classify": "cross-entropy",
    "denoise": "reconstruction",
    "vae": "reconstruction + KL",
}

# A trial's status, in the runner's summary and in the analysis alike.
FINISHED, DIVERGED, ERRORED, UNFINISHED = "finished", "diverged", "errored", "unfinished"
STATUSES = (FINISHED, DIVERGED, ERRORED, UNFINISHED)
COMPLETE = (FINISHED, DIVERGED)  # a result to aggregate: nothing more will come

# Files a trial writes into its own folder after its last epoch (not into a checkpoint:
# checkpoints hold only what a restart needs, and Tune deletes old ones).
EVALUATION_FILE = "evaluation.json"
SAMPLES_FILE = "samples.npz"
LATENT_GRID_FILE = "latent_grid.npz"
ERROR_FILE = "error.txt"  # Tune's, in a failed trial's folder: each failure appended (sweeps.progress.failure)
SPEC_FILE = "noisesweep.json"  # every grid the runner ran in an experiment: configs, packs (for --resume)
GROWTH_PREFIX = "grow-"  # an experiment's k-th step (k >= 2) is a Tune experiment in grow-k/ (sweeps.growth)


def is_plain_name(name) -> bool:
    """Whether `name` (read from a flag or from a file of a folder) is one folder's name: no
    path separator, not . or .., nothing unprintable. Names read from an experiment's files
    are checked so before they become paths."""
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and not any(ord(c) < 32 or c == "\x7f" for c in name))


def is_growth_folder(name: str) -> bool:
    """Whether a folder name is a growth step's (grow-2, grow-3, ...)."""
    return name.startswith(GROWTH_PREFIX) and name[len(GROWTH_PREFIX):].isdigit()
# A pack's folder lists its members' folders (inside it) in this file.
MEMBERS_FILE = "members.json"
# What a Tune trial's config holds when it is a pack: its members as one JSON string, or a
# search's sample with its number of replicate seeds (sweeps.packing, sweeps.search).
MEMBERS_KEY, REPLICATES_KEY = "members", "replicates"
# A denoiser's evaluation, one row per test noise level.
EVAL_METRICS = ("noisy_mse", "denoised_mse", "seasoned_accuracy", "denoised_accuracy")
# Which reference classifier judged it (sweeps.reference), the same for every level.
EVAL_REFERENCE = ("reference", "reference_sha256_16")
EVAL_COLUMNS = ("level", *EVAL_METRICS, *EVAL_REFERENCE)
# A config's scores under the test-time conditions of a grid's `evaluate:` section
# (sweeps.conditions): one CSV per scoring, in the config's folder under ROBUSTNESS_FOLDER,
# written whole and renamed into place (training's as `train.csv`, each later
# `noisesweep evaluate` as `evaluate-<n>.csv`), so a later scoring never rewrites an earlier one.
# A row is one (epoch, suite, condition, severity): `suite` is the named suite the condition
# came from (mnist_c, cifar10_c, cifar10_c_extra), "folder:<name>" for a benchmark folder, or
# "" for a condition listed by itself; `condition` is a noise type, a corruption or "clean";
# `severity` is a corruption's 1-5, a noise type's scale, or 0 (clean, and a benchmark's one
# level, as MNIST-C's). Metrics a task does not have are left empty: a classifier writes
# accuracy and loss, a denoiser loss and EVAL_METRICS, the VAE loss.
ROBUSTNESS_FOLDER = "robustness"
ROBUSTNESS_KEYS = ("epoch", "suite", "condition", "severity")
ROBUSTNESS_METRICS = ("accuracy", "loss", *EVAL_METRICS)
ROBUSTNESS_COLUMNS = (*ROBUSTNESS_KEYS, *ROBUSTNESS_METRICS)
CLEAN = "clean"


class SchemaError(ValueError):
    """A metric, status or task name this schema does not know."""


def label(metric: str, task: str | None = None) -> str:
    """The axis label of `metric`; losses name what they measure when the task is known."""
    if metric not in METRICS:
        return metric
    text = METRICS[metric]
    if metric.endswith("loss") and task in LOSS_KINDS:
        text += f" ({LOSS_KINDS[task]})"
    return text


def maximized(metric: str) -> bool:
    """Whether a larger value of `metric` is better (Keras's "auto" mode: a loss goes down,
    an accuracy up)."""
    return not metric.endswith("loss")


def check_metrics(metrics: dict) -> None:
    """Refuse a reported key that is neither a metric nor context: the analysis would not know it."""
    unknown = sorted(set(metrics) - set(METRICS) - set(CONTEXT) - {"epoch"})
    if unknown:
        raise SchemaError(f"unknown metric(s) {', '.join(unknown)}; known: {', '.join(METRICS)} "
                          "(declare a new one in sweeps/schema.py)")


def headline_metric(available) -> str:
    """The metric to show for a trial or to rank by: accuracy when reported, else the loss
    (denoisers report no accuracy)."""
    return "val_accuracy" if "val_accuracy" in available else "val_loss"


def trial_status(last_epoch: int | None, wanted_epochs: int | None, diverged: bool, errored: bool,
                 clean: bool = True, stopped: bool = False) -> str:
    """The one rule for a trial's status.

    diverged: a NaN loss ended it (a result, not a failure); finished: it reported all its
    epochs, or early stopping ended it (`stopped`) (`clean`: its log read without damage);
    errored: it failed and was not retried to the end; unfinished: still running, or
    stopped (Ctrl-C) before its end.
    """
    if diverged:
        return DIVERGED
    if clean and last_epoch is not None and (stopped or wanted_epochs is None or last_epoch >= wanted_epochs):
        return FINISHED
    return ERRORED if errored else UNFINISHED


def task_of(config: dict) -> str:
    """The task a trial config names; configs written before tasks were named say
    `kind: denoise` (the VAE among them) or nothing (a classifier)."""
    if config.get("task"):
        return config["task"]
    if config.get("kind") == "denoise":
        return "vae" if config.get("arch") == "vae" else "denoise"
    return "classify"


def upgrade_config(config: dict) -> dict:
    """An older experiment's trial config in today's form: `task` named, `kind` gone.
    A config without `arch` is not a noisesweep trial's (a foreign Tune run): left as it is."""
    if "task" in config or "arch" not in config:
        return config
    rest = {k: v for k, v in config.items() if k not in ("arch", "kind")}
    return {"arch": config["arch"], "task": task_of(config), **rest}
