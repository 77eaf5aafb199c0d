"""The denoise trial's parts: noisy -> clean training pairs, and the evaluation over noise levels.

An autoencoder trains on (noisy, clean) training images at the grid's level.
After its last epoch it is evaluated on the test set seasoned at each of
`eval_levels`: the reconstruction error of its output, and, with a reference
classifier, that classifier's accuracy on the seasoned images and, through the
composite model noisy -> autoencoder -> classifier (seed 003), on the denoised
ones. A few fixed test images are kept at every level for the figures.
"""

from __future__ import annotations

import os

import numpy as np

from sweeps.grids import eval_levels
from sweeps.noise import noisy_split, to_unit_float
from sweeps.trainable import subset

# Seed 001 4b shows 3-4 test digits; the first four of MNIST's test set are 7, 2, 1, 0.
SAMPLE_INDICES = (0, 1, 2, 3)
SAMPLES_FILE = "samples.npz"
LATENT_GRID_FILE = "latent_grid.npz"
LATENT_GRID_SIZE = 15
LATENT_GRID_RANGE = 2.0  # z in [-2, 2]^2: where a unit Gaussian prior puts most images
PREDICT_BATCH = 1000


def seasoned(images: np.ndarray, config: dict, split: str, level: float) -> np.ndarray:
    """uint8 images -> float (N, 28, 28, 1) with the trial's noise at `level` (clean at 0)."""
    x = noisy_split(images, split, seed=config["seed"], noise_type=config["noise_type"], noise_scale=level,
                    noise_target=split, noise_clip=config["noise_clip"])
    return x[..., np.newaxis]


def denoise_data(config: dict, arrays: dict) -> dict:
    """(noisy, clean) pairs for training, and for validation the test set at the training level."""
    out = {}
    for split, name in (("train", "train"), ("test", "val")):
        images, _ = subset(config, arrays, split)
        clean = to_unit_float(images)[..., np.newaxis]
        out[name] = (seasoned(images, config, split, config["noise_scale"]), clean)
    return out


def compiled_denoiser(config: dict, optimizer):
    """The registry's denoiser for `config`, compiled; the VAE trains on its evidence lower bound."""
    from models import build_denoiser
    from models.autoencoders import reconstruction_loss

    options = {"latent_dim": config["latent_dim"]} if config.get("latent_dim") else {}
    model = build_denoiser(config["arch"], config["l2"], **options)
    # The VAE's KL term is added by its sampling layer; the loss given here is the
    # reconstruction term, summed over pixels so the two are on one scale.
    loss = reconstruction_loss if config["arch"] == "vae" else config["loss_fn"]
    model.compile(optimizer=optimizer, loss=loss)
    return model


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x[..., 0] * 255), 0, 255).astype(np.uint8)


def _accuracy(model, x, labels) -> float:
    predicted = np.argmax(model.predict(x, batch_size=PREDICT_BATCH, verbose=0), axis=-1)
    return float(np.mean(predicted == labels))


def evaluate_levels(config: dict, denoiser, arrays: dict, classifier=None) -> tuple[list[dict], dict]:
    """Evaluate a trained denoiser at every level of config["eval_levels"] on the test set.

    Returns (one dict per level: level, noisy_mse, denoised_mse and, with a classifier,
    seasoned_accuracy and denoised_accuracy; the sample images as uint8 arrays).
    """
    import keras

    images, labels = subset(config, arrays, "test")
    labels = labels.astype(np.int64)
    clean = to_unit_float(images)[..., np.newaxis]
    composite = None
    if classifier is not None:
        inputs = keras.Input(shape=clean.shape[1:])
        composite = keras.Model(inputs, classifier(denoiser(inputs)), name="noisy_to_denoiser_to_classifier")
    picked = [i for i in SAMPLE_INDICES if i < len(images)]
    rows, noisy_samples, denoised_samples = [], [], []
    levels = eval_levels(config)
    for level in levels:
        noisy = seasoned(images, config, "test", level)
        denoised = denoiser.predict(noisy, batch_size=PREDICT_BATCH, verbose=0)
        row = {
            "level": float(level),
            "noisy_mse": float(np.mean((noisy - clean) ** 2)),
            "denoised_mse": float(np.mean((denoised - clean) ** 2)),
        }
        if composite is not None:
            row["seasoned_accuracy"] = _accuracy(classifier, noisy, labels)
            row["denoised_accuracy"] = _accuracy(composite, noisy, labels)
        rows.append(row)
        noisy_samples.append(_to_uint8(noisy[picked]))
        denoised_samples.append(_to_uint8(denoised[picked]))
    samples = {
        "levels": np.asarray(levels, np.float32),
        "indices": np.asarray(picked, np.int64),
        "labels": labels[picked],
        "original": images[picked],
        "noisy": np.stack(noisy_samples),
        "denoised": np.stack(denoised_samples),
    }
    return rows, samples


def latent_grid(vae, size: int = LATENT_GRID_SIZE, extent: float = LATENT_GRID_RANGE) -> dict:
    """Decoded images over a size x size grid of the 2-d latent space (seed 004's plot 3)."""
    decoder = vae.get_layer("decoder")
    axis = np.linspace(-extent, extent, size, dtype=np.float32)
    # Row 0 at the top is the largest z2, as a plot with z2 upwards reads.
    z = np.array([[x, y] for y in axis[::-1] for x in axis], np.float32)
    images = decoder.predict(z, batch_size=PREDICT_BATCH, verbose=0)
    return {"z1": axis, "z2": axis[::-1].copy(), "images": _to_uint8(images).reshape(size, size, *images.shape[1:3])}


def finish_trial(config: dict, arrays: dict, classifier=None, reference: dict | None = None):
    """The final-epoch hook for TuneReport: evaluate, save the samples in the last
    checkpoint's folder, return the metrics to report."""

    def finish(model, directory: str) -> dict:
        rows, samples = evaluate_levels(config, model, arrays, classifier)
        np.savez_compressed(os.path.join(directory, SAMPLES_FILE), **samples)
        if config["arch"] == "vae" and config.get("latent_dim") == 2:
            np.savez_compressed(os.path.join(directory, LATENT_GRID_FILE), **latent_grid(model))
        return {"eval": rows, **(reference or {})}

    return finish
