"""A dataset of one's own (`dataset: path/to/data.npz`, or a folder of IDX files), grey or
colour: checked before Ray starts, one line for each thing a trial could not use; colour
images standardised per channel and noised in the engine exactly as numpy does it."""

import numpy as np
import pytest

from sweeps.data import DataError, load_dataset
from sweeps.data.sources import shape_of
from tests.sweeps_running import run, runner_cmd
from tests.synthetic import learnable_colour


def save(tmp_path, name, **changes):
    arrays = {**learnable_colour(40, 20), **changes}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / name
    np.savez(path, **arrays)
    return str(path)


def test_an_npz_of_colour_images_loads_as_it_is(tmp_path):
    path = save(tmp_path, "ok.npz")
    ds = load_dataset(path, log=lambda line: None)
    assert ds.x_train.shape == (40, 32, 32, 3) and ds.x_train.dtype == np.uint8
    assert shape_of(path) == ((32, 32, 3), 10)  # its header and labels, for --pack auto's timing


def test_a_folder_of_idx_files_loads(tmp_path):
    from tests.idx_files import write_dataset_folder

    arrays = write_dataset_folder(tmp_path / "idx", n_train=30, n_test=10)
    ds = load_dataset(str(tmp_path / "idx"), log=lambda line: None)
    np.testing.assert_array_equal(ds.x_test, arrays["t10k-images-idx3-ubyte"])
    assert ds.x_train.shape == (30, 28, 28)


@pytest.mark.parametrize("changes, line", [
    ({"y_train": np.zeros(39, np.uint8)}, "y_train has shape (39,): one label per image of x_train (40,) expected"),
    ({"x_test": np.zeros((20, 32, 32, 3), np.float32)}, "x_test is float32: images must be uint8 pixels (0-255)"),
    ({"y_test": np.full(20, -1)}, "y_test holds -1: labels must be integers from 0"),
    ({"y_test": np.full(20, 0.5)}, "y_test holds 0.5: labels must be integers from 0"),
    ({"x_test": np.zeros((20, 28, 28, 3), np.uint8)}, "x_train's images are (32, 32, 3), x_test's (28, 28, 3)"),
    ({"x_train": np.zeros((40, 1024), np.uint8)}, "x_train has shape (40, 1024): images are (N, H, W) grey or"),
    ({"y_test": None}, "no y_test (a dataset holds x_train, y_train, x_test and y_test)"),
])
def test_what_a_trial_could_not_use_is_one_line(tmp_path, changes, line):
    with pytest.raises(DataError) as e:
        load_dataset(save(tmp_path, "bad.npz", **changes), log=lambda line: None)
    assert line in str(e.value) and "\n" not in str(e.value)


def test_the_runner_refuses_it_before_ray_starts_and_writes_nothing(tmp_path):
    path = save(tmp_path, "short.npz", y_train=np.zeros(39, np.uint8))
    # --pack 1: `auto` would first time packs of the model (sweeps.pack_speed), which is not the point here
    cmd, env = runner_cmd(tmp_path, f"{{arch: tests.nets:wide_mlp, dataset: {path}, epochs: 1}}\n", "bad", "--pack", "1")
    done = run(cmd, env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: {tmp_path / 'bad.yaml'}: dataset = {path!r}: y_train has shape (39,): one label per "
                     "image of x_train (40,) expected"], done.stderr
    assert not (tmp_path / "runs" / "bad").exists()  # no experiment folder


def test_a_missing_file_is_refused_as_the_grid_is_read(tmp_path):
    from sweeps.grids import GridError, load_grid

    grid = tmp_path / "g.yaml"
    grid.write_text(f"{{arch: mlp64, dataset: {tmp_path / 'nowhere.npz'}}}\n")
    with pytest.raises(GridError, match=r"dataset = '.*nowhere.npz': no such file or folder"):
        load_grid(str(grid))


def test_colour_images_are_standardised_per_channel_and_noised_in_the_engine_as_numpy_does():
    """The engine's feed (sweeps.training.feeds) against the numpy path a notebook uses
    (sweeps.noise.noisy_split): per-channel moments, the member's own Gaussian draws."""
    from sweeps.grids import trial_config
    from sweeps.noise import noisy_split, with_channels
    from sweeps.training.feeds import SplitFeed, prepare

    arrays = learnable_colour(64, 16)
    arrays["x_train"][..., 2] //= 4  # channels apart in mean and spread
    members = [trial_config({"arch": "tests.nets:wide_mlp", "seed": s, "noise_type": "gaussian", "noise_scale": 0.2,
                             "standardize": True}, {}) for s in (3, 4)]
    feed = SplitFeed(prepare(members, arrays["x_train"], arrays["y_train"], "train", (32, 32, 3)))
    idx = np.stack([np.arange(0, 64, 2), np.arange(1, 64, 2)]).astype(np.int32)
    got = np.asarray(feed.inputs(idx))
    assert got.shape == (2, 32, 32, 32, 3)
    for k, m in enumerate(members):
        want = with_channels(noisy_split(arrays["x_train"], "train", seed=m["seed"], noise_type="gaussian",
                                         noise_scale=0.2, standardize_first=True))[idx[k]]
        np.testing.assert_allclose(got[k], want, rtol=1e-5, atol=1e-5)
    unit = arrays["x_train"] / np.float32(255)
    per_channel = [unit[..., c].mean() for c in range(3)]
    assert per_channel[2] < per_channel[0] / 2  # so one mean over all channels would be wrong
