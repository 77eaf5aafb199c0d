"""Packs trained in the tests (no Ray): a pack epoch by epoch with its members' weights, and
the seeds' way to compare with, a Keras model trained by its own `fit` on a member's batches
(sweeps.training.feeds.order) and noisy images."""

import numpy as np
import pytest

from sweeps.training import loop


def train(configs, arrays, epochs=None):
    """The pack after training, and its members' weights before it and after each epoch."""
    from sweeps.training.pack import Pack

    pack = Pack(configs, arrays)
    weights = [[pack.engine.member_weights(i) for i in range(pack.k)]]
    while not pack.done and (epochs is None or pack.ledger.epochs_done < epochs):
        loop.epoch(pack)
        weights.append([pack.engine.member_weights(i) for i in range(pack.k)])
    return pack, weights


def check_pack_of_one_against_fit(pack, model, config, arrays, epochs=3, batch_size=64):
    """Train `model` (compiled, built under the member's seed) with Keras's `fit` on the same
    batches as `pack`'s one member, and check each epoch's row against its history."""
    from sweeps.training.feeds import order
    from sweeps.noise import noisy_split

    kw = dict(seed=config["seed"], noise_type="gaussian", noise_scale=config["noise_scale"])
    x = noisy_split(arrays["x_train"], "train", **kw)[..., None]
    x_val = noisy_split(arrays["x_test"], "test", **kw)[..., None]
    for epoch in range(epochs):
        idx = order(config["seed"], epoch, len(x))
        h = model.fit(x[idx], arrays["y_train"][idx].astype(np.int32), batch_size=batch_size, shuffle=False,
                      verbose=0, validation_data=(x_val, arrays["y_test"].astype(np.int32)))
        row = pack.ledger.rows[0][epoch]
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert row[key] == pytest.approx(h.history[key][0], rel=1e-3, abs=1e-4), (epoch, key)
