import numpy as np
import pytest

from sweeps import noise


def gray(n=2000, value=128):
    return np.full((n, 28, 28), value, dtype=np.uint8)


def test_unit_float_matches_seed_preprocessing():
    x = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    np.testing.assert_array_equal(noise.to_unit_float(x), x.astype(np.float32) / 255)


def test_gaussian_has_requested_mean_and_std():
    x = noise.noisy_split(gray(), "train", seed=3, noise_type="gaussian", noise_scale=0.3)
    delta = x - 128 / 255
    assert abs(delta.mean()) < 0.002
    assert delta.std() == pytest.approx(0.3, rel=0.01)


def test_gaussian_clip_keeps_unit_range_and_unclipped_does_not():
    kw = dict(seed=1, noise_type="gaussian", noise_scale=0.9)
    clipped = noise.noisy_split(gray(200), "test", noise_clip=True, **kw)
    raw = noise.noisy_split(gray(200), "test", **kw)
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    assert raw.min() < 0.0 and raw.max() > 1.0


def test_standardize_first_gives_zero_mean_unit_std_before_noise():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (500, 28, 28), dtype=np.uint8)
    x = noise.noisy_split(images, "train", seed=0, standardize_first=True)
    assert abs(x.mean()) < 1e-4 and x.std() == pytest.approx(1.0, abs=1e-4)


def test_noise_depends_on_seed_and_split_only():
    kw = dict(noise_type="gaussian", noise_scale=0.5)
    a = noise.noisy_split(gray(50), "train", seed=7, **kw)
    b = noise.noisy_split(gray(50), "train", seed=7, **kw)
    other_seed = noise.noisy_split(gray(50), "train", seed=8, **kw)
    other_split = noise.noisy_split(gray(50), "test", seed=7, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, other_seed)
    assert not np.array_equal(a, other_split)


def test_scales_share_draws_so_noise_is_proportional_to_scale():
    kw = dict(seed=2, noise_type="gaussian")
    base = 128 / 255
    small = noise.noisy_split(gray(20), "train", noise_scale=0.1, **kw) - base
    large = noise.noisy_split(gray(20), "train", noise_scale=0.4, **kw) - base
    np.testing.assert_allclose(large, 4 * small, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("target,train_noisy,test_noisy", [
    ("train", True, False), ("test", False, True), ("both", True, True)])
def test_target_selects_the_split(target, train_noisy, test_noisy):
    kw = dict(seed=0, noise_type="gaussian", noise_scale=0.2, noise_target=target)
    clean = noise.to_unit_float(gray(10))
    for split, noisy in (("train", train_noisy), ("test", test_noisy)):
        x = noise.noisy_split(gray(10), split, **kw)
        assert (not np.array_equal(x, clean)) == noisy


def test_salt_and_pepper_is_seed_001_formula_on_a_fixed_seed():
    """Seed 001: a ~ B(1 - p), b ~ B(0.5), c = (a == 0) * b, out = x * a + c."""
    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    p = 0.4
    a, b = noise.salt_and_pepper_masks(images.shape, p, noise.split_rng(5, "train"))
    x = noise.to_unit_float(images)
    expected = x * a + (a == 0) * b
    got = noise.noisy_split(images, "train", seed=5, noise_type="salt_and_pepper", noise_scale=p)
    np.testing.assert_array_equal(got, expected.astype(np.float32))


@pytest.mark.parametrize("noise_type", ["gaussian", "salt_and_pepper"])
def test_an_images_noise_is_the_same_whatever_the_splits_size(noise_type):
    """A subset (tiny variant, train_subset) sees on its images the noise the full split has."""
    kw = dict(seed=4, noise_type=noise_type, noise_scale=0.3)
    few = noise.split_draws(10, (28, 28), "train", **kw)
    many = noise.split_draws(25, (28, 28), "train", **kw)
    np.testing.assert_array_equal(few, many[:10])


def test_salt_and_pepper_rates():
    p = 0.3
    x = noise.noisy_split(gray(), "train", seed=9, noise_type="salt_and_pepper", noise_scale=p)
    changed = x != np.float32(128 / 255)
    assert changed.mean() == pytest.approx(p, abs=0.005)
    assert (x[changed] == 1.0).mean() == pytest.approx(0.5, abs=0.01)
    assert set(np.unique(x[changed])) == {0.0, 1.0}


def test_salt_and_pepper_extremes():
    x0 = noise.noisy_split(gray(20), "test", seed=0, noise_type="salt_and_pepper", noise_scale=0.0)
    np.testing.assert_array_equal(x0, noise.to_unit_float(gray(20)))
    x1 = noise.noisy_split(gray(20), "test", seed=0, noise_type="salt_and_pepper", noise_scale=1.0)
    assert set(np.unique(x1)) == {0.0, 1.0}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="split"):
        noise.noisy_split(gray(2), "val", seed=0)
    with pytest.raises(ValueError, match="noise_type"):
        noise.noisy_split(gray(2), "train", seed=0, noise_type="poisson")
