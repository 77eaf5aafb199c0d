"""Corruption benchmarks read as distributed (sweeps.benchmarks): both layouts written here
with small arrays, read back byte for byte, and every bad folder refused in one line that
names where, the folder, the file and the value."""

import os
import shutil

import numpy as np
import pytest

from sweeps import benchmarks
from sweeps.benchmarks import BenchmarkError, check, conditions, layout_of, read

N = 20  # images per condition (the published sets have 10,000; nothing may assume it)
WHERE = "grids/x.yaml: evaluate.folders[0]"


def write_mnist_c(root, names=("fog", "shot_noise", "zigzag", "my_blur", "identity"), n=N, seed=0,
                  train=("shot_noise",)):
    """An MNIST-C folder: <name>/test_images.npy (n, 28, 28, 1) uint8 and test_labels.npy,
    train files in some subfolders only, as a partial copy may have."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name in names:
        sub = os.path.join(root, name)
        os.makedirs(sub)
        x = rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
        y = rng.integers(0, 10, n).astype(np.uint8 if name != "fog" else np.int64)
        np.save(os.path.join(sub, "test_images.npy"), x)
        np.save(os.path.join(sub, "test_labels.npy"), y)
        if name in train:
            np.save(os.path.join(sub, "train_images.npy"), x[:5])
            np.save(os.path.join(sub, "train_labels.npy"), y[:5])
        arrays[name] = (x, y)
    return arrays


def write_cifar10_c(root, names=("saturate", "my_rain", "contrast", "gaussian_noise"), n=N, seed=0):
    """A CIFAR-10-C folder: <name>.npy (5n, 32, 32, 3) uint8, severities 1..5 in order, and
    labels.npy (5n,): n labels repeated five times."""
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    labels = np.tile(rng.integers(0, 10, n), 5).astype(np.uint8)
    np.save(os.path.join(root, "labels.npy"), labels)
    arrays = {}
    for name in names:
        x = rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8)
        np.save(os.path.join(root, name + ".npy"), x)
        arrays[name] = x
    return arrays, labels


def test_mnist_c_read_back_as_distributed(tmp_path):
    root = str(tmp_path / "mnist_c")
    arrays = write_mnist_c(root)
    assert layout_of(root) == "mnist_c"
    # The published order first (shot_noise before fog before zigzag), then others by name;
    # identity, the clean test set, is not a condition.
    assert conditions(root) == [("shot_noise", 0), ("fog", 0), ("zigzag", 0), ("my_blur", 0)]
    for name, severity in conditions(root):
        x, y = read(root, name, severity)
        assert x.shape == (N, 28, 28) and x.dtype == np.uint8  # the channel axis of 1 dropped
        assert x.tobytes() == arrays[name][0].tobytes()
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, arrays[name][1])
    for shape in [(28, 28), (28, 28, 1)]:
        assert check(root, image_shape=shape, num_classes=10, where=WHERE) == conditions(root)


def test_cifar10_c_read_back_one_severity_at_a_time(tmp_path):
    root = str(tmp_path / "CIFAR-10-C")
    arrays, labels = write_cifar10_c(root)
    assert layout_of(root) == "cifar10_c"
    order = ["gaussian_noise", "contrast", "saturate", "my_rain"]  # published, extra, one's own
    assert conditions(root) == [(name, s) for name in order for s in (1, 2, 3, 4, 5)]
    for name, s in conditions(root):
        x, y = read(root, name, s)
        assert x.shape == (N, 32, 32, 3) and x.dtype == np.uint8
        assert x.tobytes() == arrays[name][(s - 1) * N:s * N].tobytes()
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, labels[(s - 1) * N:s * N])
    assert check(root, image_shape=(32, 32, 3), num_classes=10) == conditions(root)


def test_read_maps_the_file_and_returns_its_own_copy(tmp_path, monkeypatch):
    root = str(tmp_path / "c")
    arrays, _ = write_cifar10_c(root, names=("fog",))
    modes = []
    real_load = np.load

    def spy(path, *args, **kwargs):
        modes.append(kwargs.get("mmap_mode"))
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(benchmarks.np, "load", spy)
    x, y = read(root, "fog", 3)
    assert modes and set(modes) == {"r"}
    assert type(x) is np.ndarray and type(y) is np.ndarray and x.flags.owndata and x.flags.writeable
    x[:] = 0  # a copy: the file is untouched
    assert real_load(os.path.join(root, "fog.npy"))[2 * N:3 * N].tobytes() == arrays["fog"][2 * N:3 * N].tobytes()


def test_hidden_files_and_unrelated_entries_are_not_read(tmp_path):
    root = str(tmp_path / "c")
    write_cifar10_c(root, names=("fog",))
    (tmp_path / "c" / "._fog.npy").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    (tmp_path / "c" / "README.txt").write_text("CIFAR-10-C")
    assert conditions(root) == [("fog", s) for s in (1, 2, 3, 4, 5)]
    check(root, image_shape=(32, 32, 3), num_classes=10)
    mroot = str(tmp_path / "m")
    write_mnist_c(mroot, names=("fog",))
    os.makedirs(os.path.join(mroot, "notes"))
    (tmp_path / "m" / "notes" / "a.txt").write_text("x")
    assert conditions(mroot) == [("fog", 0)]


def test_read_refuses_identity_unknown_names_and_severities(tmp_path):
    m, c = str(tmp_path / "m"), str(tmp_path / "c")
    write_mnist_c(m)
    write_cifar10_c(c)
    with pytest.raises(BenchmarkError, match="identity is the clean test set"):
        read(m, "identity", 0)
    with pytest.raises(BenchmarkError, match=r"no corruption 'snow' \(it holds shot_noise, fog"):
        read(m, "snow", 0)
    with pytest.raises(BenchmarkError, match="severity 1 of fog: MNIST-C has one level, severity 0"):
        read(m, "fog", 1)
    for s in (0, 6):
        with pytest.raises(BenchmarkError, match=rf"severity {s} of contrast: CIFAR-10-C's are 1..5"):
            read(c, "contrast", s)


def test_layout_message_names_the_folder_and_both_layouts(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchmarkError) as e:
        layout_of(str(tmp_path))
    assert str(e.value) == (
        f"{tmp_path}: not a benchmark folder in a known layout: expected <corruption>/test_images.npy "
        "and test_labels.npy (MNIST-C) or <corruption>.npy and labels.npy (CIFAR-10-C)")
    # The archive's own folder one level down is named.
    write_mnist_c(str(tmp_path / "mnist_c"), names=("fog",))
    with pytest.raises(BenchmarkError, match=r"known layout: .* \(its subfolder mnist_c/ is one\)$"):
        layout_of(str(tmp_path))


def save(path, array):
    np.save(path, array)


def _mnist(root):
    write_mnist_c(root, names=("fog", "shear"))
    return os.path.join(root, "fog")


def _cifar(root):
    write_cifar10_c(root, names=("fog", "snow"))
    return root


def _truncate(path):
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:-100])


def _npz(path):
    with open(path, "wb") as f:
        np.savez(f, x=np.zeros((N, 28, 28, 1), np.uint8))


# (name, layout, how to break a good folder (given its root), the substrings the message
# must hold, with {root} for the folder); the test adds `where` and checks for one line.
BAD = [
    ("missing folder", "mnist_c", lambda r: shutil.rmtree(r), ["{root}: no such folder"]),
    ("a file, not a folder", "mnist_c", lambda r: (shutil.rmtree(r), open(r, "w").close()),
     ["{root}: not a folder"]),
    ("empty folder", "mnist_c", lambda r: [shutil.rmtree(os.path.join(r, n)) for n in os.listdir(r)],
     ["{root}: empty folder: expected <corruption>/test_images.npy"]),
    ("no known layout", "mnist_c",
     lambda r: [shutil.rmtree(os.path.join(r, n)) for n in os.listdir(r)] + [open(os.path.join(r, "a.png"), "w").close()],
     ["{root}: not a benchmark folder in a known layout: expected"]),
    ("only identity", "mnist_c", lambda r: [os.rename(os.path.join(r, "fog"), os.path.join(r, "identity")),
                                            shutil.rmtree(os.path.join(r, "shear"))],
     ["{root}: no corruptions: only identity/"]),
    ("only labels.npy", "cifar10_c", lambda r: [os.remove(os.path.join(r, n)) for n in ("fog.npy", "snow.npy")],
     ["{root}: no corruptions: labels.npy but no <corruption>.npy"]),
    ("both layouts", "cifar10_c", lambda r: write_mnist_c(os.path.join(r, "sub"), names=("x",)) and
     os.rename(os.path.join(r, "sub", "x"), os.path.join(r, "shear")),
     ["{root}: holds both layouts, fog.npy (CIFAR-10-C) and shear/ (MNIST-C)"]),
    ("garbage .npy", "mnist_c", lambda r: open(os.path.join(r, "fog", "test_images.npy"), "wb").write(b"junk" * 40),
     ["{root}/fog/test_images.npy: not an .npy file (starts 6a756e6b6a75"]),
    ("empty .npy", "cifar10_c", lambda r: open(os.path.join(r, "snow.npy"), "wb").close(),
     ["{root}/snow.npy: not an .npy file (empty)"]),
    (".npz under an .npy name", "mnist_c", lambda r: _npz(os.path.join(r, "fog", "test_images.npy")),
     ["{root}/fog/test_images.npy: not an .npy file (starts 504b0304"]),
    ("truncated .npy", "cifar10_c", lambda r: _truncate(os.path.join(r, "snow.npy")),
     ["{root}/snow.npy: does not load as an .npy array (", "truncated or corrupt?"]),
    ("float images", "mnist_c", lambda r: save(os.path.join(r, "fog", "test_images.npy"), np.zeros((N, 28, 28, 1), np.float32)),
     ["{root}/fog/test_images.npy: images are float32, not uint8"]),
    ("images of one dimension too few", "mnist_c",
     lambda r: save(os.path.join(r, "fog", "test_images.npy"), np.zeros((N, 784), np.uint8)),
     ["{root}/fog/test_images.npy: images of shape (20, 784): (N, H, W) or (N, H, W, C) expected"]),
    ("no images", "mnist_c", lambda r: save(os.path.join(r, "fog", "test_images.npy"), np.zeros((0, 28, 28, 1), np.uint8)),
     ["{root}/fog/test_images.npy: no images (shape (0, 28, 28, 1))"]),
    ("wrong image shape", "mnist_c", lambda r: save(os.path.join(r, "shear", "test_images.npy"), np.zeros((N, 32, 32, 1), np.uint8)),
     ["{root}/shear/test_images.npy: images of shape (32, 32, 1), but the dataset's test images are (28, 28)"]),
    ("colour against grey", "mnist_c", lambda r: (shutil.rmtree(r), _cifar(r)),
     ["{root}/snow.npy: images of shape (32, 32, 3), but the dataset's test images are (28, 28)"]),
    ("float labels", "cifar10_c", lambda r: save(os.path.join(r, "labels.npy"), np.zeros(5 * N)),
     ["{root}/labels.npy: labels are float64, not integers"]),
    ("labels of two axes", "mnist_c", lambda r: save(os.path.join(r, "fog", "test_labels.npy"), np.zeros((N, 1), np.uint8)),
     ["{root}/fog/test_labels.npy: labels of shape (20, 1): one label per image"]),
    ("labels out of range", "mnist_c",
     lambda r: save(os.path.join(r, "shear", "test_labels.npy"), np.arange(N) % 12),
     ["{root}/shear/test_labels.npy: labels 0..11 do not fit a dataset of 10 classes"]),
    ("negative labels", "cifar10_c", lambda r: save(os.path.join(r, "labels.npy"), np.arange(5 * N) % 10 - 1),
     ["{root}/labels.npy: labels -1..8 do not fit a dataset of 10 classes"]),
    ("fewer labels than images", "mnist_c", lambda r: save(os.path.join(r, "fog", "test_labels.npy"), np.zeros(N - 1, np.uint8)),
     ["{root}/fog/test_labels.npy: 19 labels for the 20 images of test_images.npy"]),
    ("images but no labels", "mnist_c", lambda r: os.remove(os.path.join(r, "shear", "test_labels.npy")),
     ["{root}/shear: no test_labels.npy beside test_images.npy"]),
    ("labels but no images", "mnist_c", lambda r: os.remove(os.path.join(r, "shear", "test_images.npy")),
     ["{root}/shear: no test_images.npy beside test_labels.npy"]),
    ("train files only", "mnist_c", lambda r: [os.remove(os.path.join(r, "shear", f)) for f in ("test_images.npy", "test_labels.npy")]
     + [save(os.path.join(r, "shear", "train_images.npy"), np.zeros((3, 28, 28, 1), np.uint8))],
     ["{root}/shear: no test_labels.npy or test_images.npy (only the test split is scored)"]),
    ("no labels.npy", "cifar10_c", lambda r: os.remove(os.path.join(r, "labels.npy")),
     ["{root}: no labels.npy beside snow.npy"]),
    ("not a multiple of 5", "cifar10_c", lambda r: save(os.path.join(r, "snow.npy"), np.zeros((5 * N - 1, 32, 32, 3), np.uint8)),
     ["{root}/snow.npy: 99 images, not a multiple of 5 (severities 1..5"]),
    ("not the labels' length", "cifar10_c", lambda r: save(os.path.join(r, "snow.npy"), np.zeros((5 * N - 5, 32, 32, 3), np.uint8)),
     ["{root}/snow.npy: 95 images, but labels.npy holds 100 labels"]),
]


@pytest.mark.parametrize("name, layout, breaking, wanted", BAD, ids=[b[0] for b in BAD])
def test_check_refuses_in_one_line_naming_where_folder_file_and_value(tmp_path, name, layout, breaking, wanted):
    root = str(tmp_path / layout)
    (_mnist if layout == "mnist_c" else _cifar)(root)
    breaking(root)
    shape = (28, 28) if layout == "mnist_c" else (32, 32, 3)
    with pytest.raises(BenchmarkError) as e:
        check(root, image_shape=shape, num_classes=10, where=WHERE)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{WHERE}: ")
    for w in wanted:
        assert w.format(root=root) in message, message
    # Without `where`, the same message from the folder on.
    with pytest.raises(BenchmarkError) as bare:
        check(root, image_shape=shape, num_classes=10)
    assert str(bare.value) == message.removeprefix(f"{WHERE}: ")


def test_benchmark_error_is_a_value_error():
    assert issubclass(BenchmarkError, ValueError)
    assert benchmarks.LAYOUTS == ("mnist_c", "cifar10_c")
