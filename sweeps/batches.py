"""A trial's batches, made inside its compiled step from indices into the uint8 dataset.

A member's inputs are never held as a float array: each split keeps the uint8 images once,
and each member adds only its noise draws (sweeps.noise: float16 or uint8 per pixel,
shared by members with the same seed). The step gathers a batch of indices per member,
turns the pixels to [0, 1] floats, standardises them (seed 000) and adds the member's
noise, with the same float32 arithmetic `sweeps.noise.noisy_split` does in numpy.

Each member's training order is its own: a permutation per epoch drawn from (seed, epoch)
alone, so a member shuffles the same way packed or alone, and a rerun the same again.
"""

from __future__ import annotations

import numpy as np

from sweeps import noise

_SHUFFLE = 2  # the SeedSequence tag of the training order (noise.SPLITS uses 0 and 1)


def order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order a trial with `seed` visits its `n` training images in epoch `epoch` (0-based)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SHUFFLE, int(epoch)])).permutation(n)


class SplitFeed:
    """One split (train or test) of one dataset, as K members see it: the uint8 images and
    labels once, each member's standardisation, noise type, scale and clip, and the
    distinct noise draws among them."""

    def __init__(self, members: list[dict], images: np.ndarray, labels: np.ndarray, split: str):
        import tensorflow as tf

        self.k = len(members)
        self.size = len(images)
        self.shape = (*images.shape[1:], 1)  # the models' input: H, W, 1 channel
        flat = np.ascontiguousarray(images.reshape(len(images), -1))
        self.images = tf.constant(flat)
        self.labels = tf.constant(labels.astype(np.int32))
        mean, std = np.zeros(self.k, np.float32), np.ones(self.k, np.float32)
        if any(m["standardize"] for m in members):
            unit = noise.to_unit_float(flat)
            moments = np.float32(unit.mean(dtype=np.float64)), np.float32(unit.std(dtype=np.float64))
            del unit
            for i, m in enumerate(members):
                if m["standardize"]:
                    mean[i], std[i] = moments
        self.mean, self.std = (tf.constant(v.reshape(-1, 1, 1)) for v in (mean, std))
        self.noises = []  # (add, each member's draws [N, P] or None, applies [K,1,1], scale [K,1,1], clip [K,1,1])
        for kind, (_, add) in noise.NOISES.items():
            keys: list = []
            slot = np.zeros(self.k, np.int32)
            applies = np.zeros(self.k, bool)
            for i, m in enumerate(members):
                if m["noise_type"] != kind or not noise.targets(kind, m["noise_target"], split):
                    continue
                # Gaussian draws do not depend on the scale (common random numbers).
                key = (m["seed"], m["noise_scale"] if kind != "gaussian" else None)
                if key not in keys:
                    keys.append(key)
                slot[i], applies[i] = keys.index(key), True
            if keys:
                scale = np.array([m["noise_scale"] for m in members], np.float32)
                clip = np.array([bool(m["noise_clip"]) for m in members])
                # One tensor per distinct draw, never stacked: stacking a pack's draws holds
                # them twice over.
                draws = [_tensor(noise.split_draws(self.size, flat.shape[1:], split, seed=seed,
                                                   noise_type=kind, noise_scale=scale))
                         for seed, scale in keys]
                member_draws = [draws[slot[i]] if applies[i] else None for i in range(self.k)]
                self.noises.append((add, member_draws, *(tf.constant(v.reshape(-1, 1, 1))
                                                         for v in (applies, scale, clip))))

    def inputs(self, idx):
        """idx `[K, B]` int32 (member k's rows) -> `[K, B, H, W, 1]` float32 inputs."""
        import tensorflow as tf
        import tensorflow.experimental.numpy as tnp

        x = tf.cast(tf.gather(self.images, idx), tf.float32) / 255.0
        x = (x - self.mean) / self.std
        for add, draws, applies, scale, clip in self.noises:
            like = next(d for d in draws if d is not None)
            drawn = tf.stack([tf.gather(d, idx[i]) if d is not None else
                              tf.zeros([tf.shape(idx)[1], like.shape[1]], like.dtype) for i, d in enumerate(draws)])
            x = tf.where(applies, add(x, scale, drawn, clip, tnp), x)
        return tf.reshape(x, tf.concat([tf.shape(idx), self.shape], axis=0))

    def targets(self, idx):
        """The labels of `idx`, `[K, B]` int32."""
        import tensorflow as tf

        return tf.gather(self.labels, idx)


def _tensor(array: np.ndarray):
    """A numpy array as a tensor without a second copy. TensorFlow copies a float16 array
    twice on the way in (8 x 94 MB of draws took 1.4 GB) but wraps a uint16 one (0.72 GB):
    float16 goes in as its bits."""
    import tensorflow as tf

    if array.dtype == np.float16:
        return tf.bitcast(tf.convert_to_tensor(array.view(np.uint16)), tf.float16)
    return tf.convert_to_tensor(array)
