"""The classification task's data preparation: subsets, hold-out and noise, without Ray."""

import numpy as np

from sweeps.grids import BASE_DEFAULTS
from sweeps.noise import noisy_split
from sweeps.plain_keras import classifier_data
from tests.synthetic import learnable_mnist


def config(**kw):
    return {**BASE_DEFAULTS, "arch": "mlp64", **kw}


def test_validation_on_test_set_with_subsets():
    arrays = learnable_mnist(100, 40)
    data = classifier_data(config(train_subset=60, test_subset=30), arrays)
    assert set(data) == {"train", "val"}
    assert data["train"][0].shape == (60, 28, 28, 1) and data["val"][0].shape == (30, 28, 28, 1)
    np.testing.assert_array_equal(data["val"][1], arrays["y_test"][:30])


def test_holdout_is_the_tail_of_the_noisy_training_set_and_test_is_kept():
    arrays = learnable_mnist(100, 40)
    cfg = config(validation="holdout", holdout_size=25, noise_type="gaussian", noise_scale=0.3, seed=4)
    data = classifier_data(cfg, arrays)
    assert [len(data[k][0]) for k in ("train", "val", "test")] == [75, 25, 40]
    noisy_train = noisy_split(arrays["x_train"], "train", seed=4, noise_type="gaussian", noise_scale=0.3)
    np.testing.assert_array_equal(data["val"][0][..., 0], noisy_train[-25:])
    np.testing.assert_array_equal(data["train"][1], arrays["y_train"][:75])


def test_noise_only_where_targeted():
    arrays = learnable_mnist(20, 10)
    data = classifier_data(config(noise_type="salt_and_pepper", noise_scale=0.5, noise_target="train"), arrays)
    clean_test = arrays["x_test"].astype(np.float32) / 255
    np.testing.assert_array_equal(data["val"][0][..., 0], clean_test)
    assert not np.array_equal(data["train"][0][..., 0], arrays["x_train"].astype(np.float32) / 255)
