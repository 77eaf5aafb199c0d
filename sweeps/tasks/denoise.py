"""The denoise task: an autoencoder learns noisy -> clean images, then is evaluated over
noise levels (seeds 001 part 4, 002, 003).

It trains on (noisy, clean) training images at the grid's level. After its last
epoch it is evaluated on the test set seasoned at each of `eval_levels`: the
reconstruction error of its output, and, with a reference classifier, that
classifier's accuracy on the seasoned images and, through the composite model
noisy -> autoencoder -> classifier (seed 003), on the denoised ones. A few fixed
test images are kept at every level for the figures. The evaluation and the
images go to the trial's folder as sweeps.schema's EVALUATION_FILE and SAMPLES_FILE.
"""

from __future__ import annotations

import numpy as np

from models import arch_defaults, archs_of, options_of
from sweeps.noise import noisy_split, to_unit_float, with_channels
from sweeps.schema import EVALUATION_FILE, SAMPLES_FILE
from sweeps.data.arrays import input_shape_of, subset
from sweeps.modelfile import fingerprint, model_from_bytes
from sweeps.tasks.base import ConfigError, Outcome, Training, is_int, is_number

NAME = "denoise"
MODEL = "denoiser"
FAMILY = "denoise"
# Seed 001 4b/4c: test levels 0, 0.1, ..., 1.
DEFAULT_EVAL_LEVELS = [round(0.1 * i, 1) for i in range(11)]
# Each level scores the whole test split once: more than this is a typo, not a curve.
MAX_EVAL_LEVELS = 1000
DEFAULTS = {
    "classifier": None,  # reference classifier arch; null: reconstruction error only
    "classifier_epochs": None,  # null: the classifier's own seed default
    "eval_levels": None,  # null: DEFAULT_EVAL_LEVELS
}
KEYS = tuple(DEFAULTS)
# key -> (check, what a valid value is), applied by the grid to every value given
CHECKS = {
    "classifier": (lambda v: v is None or v in archs_of("classify"), f"null or one of {', '.join(archs_of('classify'))}"),
    "classifier_epochs": (lambda v: v is None or (is_int(v) and 1 <= v <= 100_000),
                          "an integer in [1, 100,000], or null for its default"),
    "eval_levels": (lambda v: v is None or (isinstance(v, list) and 0 < len(v) <= MAX_EVAL_LEVELS
                                            and all(is_number(x) and x >= 0 for x in v)),
                    f"a list of 1 to {MAX_EVAL_LEVELS} numbers >= 0, or null for 0, 0.1, ..., 1"),
}
LIST_VALUED = ("eval_levels",)  # one list per trial, not an axis
TABLE = ("classifier",)  # its keys in the dry-run table
LOSSES = ("binary_crossentropy", "mse")
METRIC = "binary_accuracy"  # per pixel (pixel_accuracy)
# Seed 001 4b shows 3-4 test digits; the first four of MNIST's test set are 7, 2, 1, 0.
SAMPLE_INDICES = (0, 1, 2, 3)
PREDICT_BATCH = 1000


def finalize(config: dict) -> dict:
    # Held as one string: Ray Tune takes a list in a config for a set of separate
    # values, and a string keeps the analysis's group keys hashable.
    levels = config["eval_levels"]
    if not isinstance(levels, str):
        config["eval_levels"] = " ".join(f"{float(x):g}" for x in levels or DEFAULT_EVAL_LEVELS)
    return config


def eval_levels(config: dict) -> list[float]:
    """A denoise trial's evaluation levels, as numbers."""
    return [float(x) for x in config["eval_levels"].split()]


def check(config: dict) -> None:
    """Rules across axes for a denoiser's trial; raises ConfigError."""
    arch = config["arch"]
    if config["noise_type"] == "none":
        raise ConfigError("noise_type", f"{arch} is a denoiser; it needs gaussian or salt_and_pepper noise "
                                        "(noise_scale is its training level, 0 allowed)")
    if config["standardize"]:
        raise ConfigError("standardize", f"not for denoiser {arch}: its sigmoid output is in [0, 1]")
    if config["noise_type"] == "salt_and_pepper" and any(x > 1 for x in eval_levels(config)):
        raise ConfigError("eval_levels", "salt_and_pepper levels must be in [0, 1]")


def reference_key(ref: dict) -> str:
    """The file name stem of a reference classifier: everything that changes its weights."""
    subset_ = ref["train_subset"] or "all"
    return f"{ref['dataset']}_{ref['arch']}_e{ref['epochs']}_n{subset_}_s{ref['seed']}"


def references(config: dict) -> dict:
    """{key: the classification config of the reference classifier} (empty without one).

    It trains on clean images with its seed's settings, on the trial's training subset
    and seed; sweeps.reference fills in the rest of the config.
    """
    arch = config.get("classifier")
    if not arch:
        return {}
    ref = {"arch": arch, "dataset": config["dataset"], "seed": config["seed"],
           "train_subset": config["train_subset"],
           "epochs": config.get("classifier_epochs") or arch_defaults(arch)["epochs"]}
    return {reference_key(ref): ref}


def seasoned(images: np.ndarray, config: dict, split: str, level: float) -> np.ndarray:
    """uint8 images -> float (N, H, W, C) with the trial's noise at `level` (clean at 0)."""
    x = noisy_split(images, split, seed=config["seed"], noise_type=config["noise_type"], noise_scale=level,
                    noise_target=split, noise_clip=config["noise_clip"])
    return with_channels(x)


def denoiser(config: dict, input_shape=(28, 28, 1), **options):
    """The registry's denoiser for `config` on images of `input_shape`, uncompiled, with the
    options its architecture takes (a hidden activation; `options`: the VAE's latent size)."""
    from models import build_model, chosen_options  # imports Keras: not at module level

    return build_model(config["arch"], config["l2"], input_shape, **chosen_options(config), **options)


def pixel_accuracy(y, outputs):
    """Per pixel, as seed 002 scored its denoisers: where the output, thresholded at 0.5,
    equals the clean image (only pure black or white pixels can)."""
    import keras

    return keras.metrics.binary_accuracy(y, outputs)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (N, H, W, C) -> uint8 pixels as the dataset held them: (N, H, W) for
    grey images, (N, H, W, 3) for colour."""
    x = x[..., 0] if x.shape[-1] == 1 else x
    return np.clip(np.rint(x * 255), 0, 255).astype(np.uint8)


def _accuracy(model, x, labels) -> float:
    predicted = np.argmax(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), axis=-1)
    return float(np.mean(predicted == labels))


def judged(denoiser, noisy: np.ndarray, clean: np.ndarray, labels: np.ndarray, classifier=None,
           composite=None) -> tuple[dict, np.ndarray]:
    """A denoiser's scores on `noisy` inputs of `clean` images (floats (N, H, W, C) in the
    model's form): noisy_mse, denoised_mse and, with a classifier, seasoned_accuracy (it on
    the noisy images) and denoised_accuracy (it on the denoiser's output); and the output."""
    denoised = denoiser.predict(noisy, batch_size=PREDICT_BATCH, verbose=0)
    row = {"noisy_mse": float(np.mean((noisy - clean) ** 2)), "denoised_mse": float(np.mean((denoised - clean) ** 2))}
    if classifier is not None:
        row["seasoned_accuracy"] = _accuracy(classifier, noisy, labels)
        row["denoised_accuracy"] = _accuracy(composite or _composite(denoiser, classifier, clean.shape[1:]), noisy,
                                             labels)
    return row, denoised


def _composite(denoiser, classifier, shape):
    import keras

    inputs = keras.Input(shape=shape)
    return keras.Model(inputs, classifier(denoiser(inputs)), name="noisy_to_denoiser_to_classifier")


def evaluate_levels(config: dict, denoiser, arrays: dict, classifier=None) -> tuple[list[dict], dict]:
    """Evaluate a trained denoiser at every level of config["eval_levels"] on the test set.

    Returns (one dict per level: level, noisy_mse, denoised_mse and, with a classifier,
    seasoned_accuracy and denoised_accuracy; the sample images as uint8 arrays).
    """
    images, labels = subset(config, arrays, "test")
    labels = labels.astype(np.int64)
    clean = with_channels(to_unit_float(images))
    composite = _composite(denoiser, classifier, clean.shape[1:]) if classifier is not None else None
    picked = [i for i in SAMPLE_INDICES if i < len(images)]
    rows, noisy_samples, denoised_samples = [], [], []
    levels = eval_levels(config)
    for level in levels:
        noisy = seasoned(images, config, "test", level)
        row, denoised = judged(denoiser, noisy, clean, labels, classifier, composite)
        rows.append({"level": float(level), **row})
        noisy_samples.append(to_uint8(noisy[picked]))
        denoised_samples.append(to_uint8(denoised[picked]))
    samples = {
        "levels": np.asarray(levels, np.float32),
        "indices": np.asarray(picked, np.int64),
        "labels": labels[picked],
        "original": images[picked],
        "noisy": np.stack(noisy_samples),
        "denoised": np.stack(denoised_samples),
    }
    return rows, samples


def judge(config: dict, available: dict) -> tuple[object, dict]:
    """(the reference classifier this trial names, loaded, or None; a note saying which)."""
    for key in references(config):
        blob = available[key]
        # Which weights judged this trial, so trials sharing a classifier can be told apart.
        return model_from_bytes(blob), {"reference": key, "reference_sha256_16": fingerprint(blob)}
    return None, {}


def training(members: list[dict], arrays: dict, references: dict | None = None, loss=None,
             options: dict | None = None, finish=None) -> Training:
    """Denoisers as the engine trains them: noisy -> clean on both splits, the config's loss
    (or `loss`), scored per pixel; at a member's end, its evaluation over the levels.
    `options` go to the builder; `finish(member, model, outcome)` adds to the outcome."""
    import keras

    classifiers, notes = {}, {}

    def build(i):
        if i not in classifiers:
            # Loaded before the denoiser is built, as it always was: loading draws from
            # Keras's seeded generators, and the denoiser's initial weights must not change.
            classifiers[i], notes[i] = judge(members[i], references or {})
        return denoiser(members[i], input_shape_of(arrays), **(options or {}))

    def end(i, model) -> Outcome:
        rows, samples = evaluate_levels(members[i], model, arrays, classifiers[i])
        outcome = Outcome(artifacts={EVALUATION_FILE: {**notes[i], "levels": rows}, SAMPLES_FILE: samples})
        if finish is not None:
            finish(members[i], model, outcome)
        return outcome

    loss = loss or keras.losses.get(members[0]["loss_fn"])

    def scored(i, model, inputs, clean, labels) -> dict:
        row, denoised = judged(model, inputs, clean, labels, classifiers[i])
        # The reconstruction loss alone: a VAE's added KL term is its last batch's, and a
        # penalty is no error of the reconstruction.
        return {**row, "loss": float(np.mean(keras.ops.convert_to_numpy(loss(clean, denoised))))}

    return Training(build=build, targets=lambda clean, labels: clean(), loss=loss, metric=METRIC,
                    score=pixel_accuracy, noise_everywhere=True, finish=end, judge=scored)
