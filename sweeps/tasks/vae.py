"""The VAE task (seed 004): a variational autoencoder trained and evaluated as a denoiser,
on its evidence lower bound, with a decoded grid of its latent space when it has two
latent dimensions."""

from __future__ import annotations

import numpy as np

from sweeps.schema import LATENT_GRID_FILE
from sweeps.tasks import denoise
from sweeps.tasks.base import Training, is_int

NAME = "vae"
MODEL = "denoiser"
FAMILY = "denoise"
DEFAULTS = dict(denoise.DEFAULTS)  # latent_dim's default is seed 004's, in the registry
KEYS = (*denoise.KEYS, "latent_dim")
CHECKS = {**denoise.CHECKS, "latent_dim": (lambda v: is_int(v) and 1 <= v <= 1024, "an integer in [1, 1024]")}
LIST_VALUED = denoise.LIST_VALUED
TABLE = (*denoise.TABLE, "latent_dim")
LOSSES = denoise.LOSSES
METRIC = denoise.METRIC
LATENT_GRID_SIZE = 15
LATENT_GRID_RANGE = 2.0  # z in [-2, 2]^2: where a unit Gaussian prior puts most images

finalize = denoise.finalize
check = denoise.check
references = denoise.references


def latent_grid(vae, size: int = LATENT_GRID_SIZE, extent: float = LATENT_GRID_RANGE) -> dict:
    """Decoded images over a size x size grid of the 2-d latent space (seed 004's plot 3)."""
    decoder = vae.get_layer("decoder")
    axis = np.linspace(-extent, extent, size, dtype=np.float32)
    # Row 0 at the top is the largest z2, as a plot with z2 upwards reads.
    z = np.array([[x, y] for y in axis[::-1] for x in axis], np.float32)
    images = decoder.predict(z, batch_size=denoise.PREDICT_BATCH, verbose=0)
    return {"z1": axis, "z2": axis[::-1].copy(),
            "images": denoise.to_uint8(images).reshape(size, size, *images.shape[1:3])}


def training(members: list[dict], arrays: dict, references: dict | None = None) -> Training:
    """The VAE as the engine trains it: a denoiser whose loss is the reconstruction term,
    summed over pixels so that it and the KL term its sampling layer adds are on one scale;
    at latent size 2, its decoded latent grid at the end too."""
    from models.autoencoders import reconstruction_loss

    def grid(member, model, outcome):
        if member["latent_dim"] == 2:
            outcome.artifacts[LATENT_GRID_FILE] = latent_grid(model)

    return denoise.training(members, arrays, references, loss=reconstruction_loss,
                            options={"latent_dim": members[0]["latent_dim"]}, finish=grid)
