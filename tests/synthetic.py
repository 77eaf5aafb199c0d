"""MNIST-shaped data a small model can learn: each class lights its own 6x6 patch."""

import os

import numpy as np


def learnable_mnist(n_train, n_test, seed=0):
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for k in range(10):
            r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
            x[y == k, r:r + 6, c:c + 6] = 230
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def write_mnist_cache(cache_dir, n_train=2000, n_test=500, seed=0):
    """Put the data where the runner's cache source looks for MNIST."""
    os.makedirs(cache_dir, exist_ok=True)
    arrays = learnable_mnist(n_train, n_test, seed)
    np.savez(os.path.join(cache_dir, "mnist.npz"), **arrays)
    return arrays


def learnable_colour(n_train, n_test, size=32, seed=0):
    """CIFAR-shaped (N, size, size, 3) uint8 images of 10 classes: class k lights a patch of
    its own in the channel k % 3, so that a model must see colour and place."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
        for k in range(10):
            r, c = 2 + 8 * (k // 4), 2 + 8 * (k % 4)
            x[y == k, r:r + 6, c:c + 6, k % 3] = 230
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
