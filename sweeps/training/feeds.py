"""The feeds of a pack: each split's uint8 images, labels, standardisation and noise draws, held
once, from which its batches are made inside the compiled step.

A member's inputs are never held as a float array: each split keeps the uint8 images once,
and each member adds only its noise draws (sweeps.noise: float16 or uint8 per pixel,
shared by members with the same seed). The step gathers a batch of indices per member,
turns the pixels to [0, 1] floats, standardises them (seed 000) and adds the member's
noise, with the same float32 arithmetic `sweeps.noise.noisy_split` does in numpy.

Each member's training order is its own: a permutation per epoch drawn from (seed, epoch)
alone, so a member shuffles the same way packed or alone, and a rerun the same again.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from sweeps import noise, quiet

_SHUFFLE = 2  # the SeedSequence tag of the training order (noise.SPLITS uses 0 and 1)


def order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order a trial with `seed` visits its `n` training images in epoch `epoch` (0-based)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), _SHUFFLE, int(epoch)])).permutation(n)


class FeedData(NamedTuple):
    """What a split's feed holds for some members, as arrays (made once, by `prepare`): the
    flat uint8 images, the labels, each member's standardisation (mean, std `[K,1,W]`) and,
    per noise kind, (add, slots, draws, (applies, scale, clip) `[K,1,1]`), the draws as
    functions that make them (a pack's largest arrays, made one at a time as they are held)."""

    split: str
    layout: tuple  # what a compiled step on it depends on: shapes, types, who reads which draw
    shape: tuple  # the models' input: H, W, channels
    images: np.ndarray
    labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    noises: list


class SplitFeed:
    """One split (train or test) of one dataset, as K members see it: the uint8 images and
    labels once, each member's standardisation, noise type, scale and clip, and the
    distinct noise draws among them.

    All of it is held in variables, so that a compiled step reading a feed serves any
    members of the same layout (FeedData.layout): `refill` puts another pack's data in place
    (sweeps.training.engine keeps a worker's compiled step from pack to pack)."""

    def __init__(self, data: FeedData):
        from models.backends import variable

        self.k, self.size = len(data.mean), len(data.images)
        self.split, self.layout, self.shape = data.split, data.layout, data.shape
        self.images, self.labels, self.mean, self.std = (variable(v) for v in (data.images, data.labels, data.mean, data.std))
        self.noises = []  # (add, each member's draws [N, P] or None, applies [K,1,1], scale [K,1,1], clip [K,1,1])
        self._draws = []  # per noise kind, its distinct draws (each one variable, never stacked:
        # stacking a pack's draws holds them twice over)
        for add, slots, draws, settings in data.noises:
            held = [variable(_tensor(draw())) for draw in draws]
            self._draws.append(held)
            self.noises.append((add, [held[s] if s >= 0 else None for s in slots],
                                *(variable(v) for v in settings)))

    def refill(self, data: FeedData) -> bool:
        """Hold this data instead, if it has this feed's layout (other seeds, scales and
        images); False, holding nothing new, if not."""
        if data.layout != self.layout:
            return False
        for name in ("images", "labels", "mean", "std"):
            getattr(self, name).assign(getattr(data, name))
        for (_, _, draws, settings), held, noise_vars in zip(data.noises, self._draws, self.noises):
            for variable, draw in zip(held, draws):
                variable.assign(_tensor(draw()))
            for variable, value in zip(noise_vars[2:], settings):
                variable.assign(value)
        return True

    def variables(self) -> list:
        """Every variable a step reads from this feed (a JAX step takes them in as values)."""
        return [self.images, self.labels, self.mean, self.std, *(v for held in self._draws for v in held),
                *(v for n in self.noises for v in n[2:])]

    def inputs(self, idx):
        """idx `[K, B]` int32 (member k's rows) -> `[K, B, H, W, 1]` float32 inputs."""
        from keras import ops

        from models.backends import take

        read = ops.convert_to_tensor
        x = ops.cast(take(self.images, idx), "float32") / 255.0
        x = (x - read(self.mean)) / read(self.std)
        for add, draws, applies, scale, clip in self.noises:
            like = next(d for d in draws if d is not None)
            drawn = ops.stack([take(d, idx[i]) if d is not None else
                               ops.zeros([ops.shape(idx)[1], like.shape[1]], like.dtype) for i, d in enumerate(draws)])
            x = ops.where(read(applies), add(x, read(scale), drawn, read(clip), _XP), x)
        return ops.reshape(x, (*ops.shape(idx), *self.shape))

    def clean(self, idx):
        """The clean images of `idx` (a denoiser's targets), flattened to `[K * B, H, W, 1]`
        float32 in [0, 1]: what sweeps.noise.to_unit_float makes of them."""
        from keras import ops

        from models.backends import take

        return ops.reshape(ops.cast(take(self.images, idx), "float32") / 255.0, (-1, *self.shape))

    def targets(self, idx):
        """The labels of `idx`, `[K, B]` int32."""
        from keras import ops

        from models.backends import take

        return ops.cast(take(self.labels, idx), "int32")


class _KerasXP:
    """The few numpy functions sweeps.noise's `add` uses, as keras.ops: the same arithmetic
    in a compiled step on any backend."""

    float32 = "float32"

    @staticmethod
    def asarray(x, dtype):
        from keras import ops

        return ops.cast(x, dtype)

    def __getattr__(self, name):
        from keras import ops

        return getattr(ops, name)


_XP = _KerasXP()


def _noise_slots(members: list[dict], split: str):
    """Per noise kind the members use in this split: (kind, each member's draw slot or -1,
    the distinct (seed, scale) draws). Gaussian draws do not depend on the scale (common
    random numbers), so members of one seed share them."""
    out = []
    for kind in noise.NOISES:
        keys: list = []
        slots = []
        for m in members:
            if m["noise_type"] != kind or not noise.targets(kind, m["noise_target"], split):
                slots.append(-1)
                continue
            key = (m["seed"], m["noise_scale"] if kind != "gaussian" else None)
            if key not in keys:
                keys.append(key)
            slots.append(keys.index(key))
        if keys:
            out.append((kind, slots, keys))
    return out


def prepare(members: list[dict], images: np.ndarray, labels: np.ndarray, split: str, shape: tuple) -> FeedData:
    """The feed of `split` (its uint8 `images` and `labels`) as `members` see it; `shape`: the
    models' input shape (sweeps.data.arrays.input_shape_of)."""
    from models.backends import index_dtype

    slots = _noise_slots(members, split)
    layout = (split, images.shape, str(images.dtype), len(members),
              tuple((kind, tuple(s), len(keys)) for kind, s, keys in slots))
    k = len(members)
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    # One mean and std a member for grey images; for colour, its channels' tiled over the
    # flattened pixels (channels last, innermost).
    channels = images.shape[3] if images.ndim == 4 else 1
    width = 1 if channels == 1 else flat.shape[1]
    mean, std = np.zeros((k, width), np.float32), np.ones((k, width), np.float32)
    if any(m["standardize"] for m in members):
        unit = noise.to_unit_float(images)
        moments = [np.tile(np.atleast_1d(v), width // channels) for v in noise.moments(unit)]
        del unit
        for i, m in enumerate(members):
            if m["standardize"]:
                mean[i], std[i] = moments
    noises = []
    for kind, kind_slots, keys in slots:
        applies = np.array([s >= 0 for s in kind_slots])
        scale = np.array([m["noise_scale"] for m in members], np.float32)
        clip = np.array([bool(m["noise_clip"]) for m in members])
        # Made one at a time as they are stored: a pack's draws are its largest arrays.
        draws = [functools.partial(noise.split_draws, len(flat), flat.shape[1:], split, seed=seed,
                                   noise_type=kind, noise_scale=s) for seed, s in keys]
        settings = tuple(v.reshape(-1, 1, 1) for v in (applies, scale, clip))
        noises.append((noise.NOISES[kind][1], kind_slots, draws, settings))
    return FeedData(split, layout, tuple(shape), flat, labels.astype(index_dtype()), mean.reshape(k, 1, width),
                    std.reshape(k, 1, width), noises)


def _tensor(array: np.ndarray):
    """A numpy array as a tensor without a second copy. TensorFlow copies a float16 array
    twice on the way in (8 x 94 MB of draws took 1.4 GB) but wraps a uint16 one (0.72 GB):
    float16 goes in as its bits."""
    from models.backends import is_tensorflow

    if not is_tensorflow():
        return array
    import tensorflow as tf

    if array.dtype == np.float16:
        # A process's first float16 op: on a CPU without AVX-512, oneDNN (on by default,
        # sweeps/__init__.py) logs an error line once, that it falls back to TensorFlow's
        # own kernels for float16, as TensorFlow does without oneDNN.
        with quiet.stderr_silenced():
            return tf.bitcast(tf.convert_to_tensor(array.view(np.uint16)), tf.float16)
    return tf.convert_to_tensor(array)
