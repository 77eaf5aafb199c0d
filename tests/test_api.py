"""The Python API (noisesweep.run / noisesweep.load / Experiment): a study of a model
defined in the calling code on arrays given as Python objects, through real Ray workers;
its summary checked against the trials by hand, its figure a matplotlib Figure. Bad input
raises ValueError with the command line's words, before Ray starts."""

import numpy as np
import pytest

import noisesweep
from models import registry
from sweeps.data import sources
from tests.synthetic import learnable_colour, learnable_mnist


@pytest.fixture(autouse=True)
def _forget_what_a_study_registered():
    """run() keeps a notebook's builders and arrays for the process (a cell run again finds
    them); the tests after these must not."""
    archs, given = dict(registry.ARCHITECTURES), dict(sources._given)
    yield
    registry.ARCHITECTURES.clear(), registry.ARCHITECTURES.update(archs)
    sources._given.clear(), sources._given.update(given)


def test_a_study_of_a_local_function_on_given_arrays_runs_and_reads_back(tmp_path):
    import matplotlib.figure

    def build(l2=0.0, input_shape=(28, 28, 1), num_classes=10, width=16):
        """Flatten-Dense(width)-Dense: defined here, so Ray sends it to the workers by value."""
        import keras

        reg = keras.regularizers.l2(l2) if l2 else None
        return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                 keras.layers.Dense(width, activation="relu", kernel_regularizer=reg),
                                 keras.layers.Dense(num_classes, activation="softmax")])

    grid = {"arch": "mine", "dataset": "digits", "width": 8, "noise_type": "gaussian", "noise_scale": [0.1, 0.5],
            "seed": [0, 1], "epochs": 2}
    exp = noisesweep.run(grid, models={"mine": build}, datasets={"digits": learnable_mnist(800, 200)}, pack=2,
                         storage_path=str(tmp_path / "runs"), name="study", num_cpus=2)
    assert exp.path == str(tmp_path / "runs" / "study")
    assert exp.status().splitlines()[0] == "study: finished"

    trials = exp.trials
    assert set(trials["arch"]) == {"mine"} and set(trials["width"]) == {8}
    final = trials[trials["epoch"] == 2]
    summary = exp.summary()
    assert len(summary) == 2
    for _, row in summary.iterrows():
        values = final[final["noise_scale"] == row["noise_scale"]]["val_accuracy"].to_numpy()
        assert len(values) == 2
        assert row["val_accuracy_mean"] == pytest.approx(values.mean())
        assert row["val_accuracy_std"] == pytest.approx(values.std(ddof=1))  # over replicate seeds

    fig = exp.figure("accuracy_vs_noise")
    assert isinstance(fig, matplotlib.figure.Figure)
    lines = fig.axes[0].get_lines()
    assert any(sorted(line.get_xdata()) == [0.1, 0.5] for line in lines)
    with pytest.raises(ValueError, match="accuracy vs L2: the data has one l2 value"):
        exp.figure("accuracy_vs_l2")

    files = exp.report(str(tmp_path / "out"))
    assert str(tmp_path / "out" / "figures" / "accuracy_vs_noise.png") in files
    again = noisesweep.load(exp.path)
    assert again.summary()["val_accuracy_mean"].tolist() == summary["val_accuracy_mean"].tolist()


def test_a_name_that_is_no_folder_name_writes_nothing_and_the_grid_file_goes(tmp_path, monkeypatch):
    """name='../../x' is refused before the grid's file is named after it (it would have been
    written two folders above the temporary one); a run's temporary grid file goes after it."""
    import tempfile

    temp = tmp_path / "a" / "b"
    temp.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    with pytest.raises(ValueError, match=r"^--name '../../x': must be a plain folder name$"):
        noisesweep.run({"arch": "mlp64", "epochs": 1}, name="../../x", storage_path=str(tmp_path / "runs"))
    assert not (tmp_path / "a" / "x.yaml").exists() and list(temp.iterdir()) == []
    assert noisesweep.run({"arch": "mlp64", "epochs": 1}, name="ok", dry_run=True,
                          storage_path=str(tmp_path / "runs")) is None  # a dry run makes no experiment
    assert list(temp.iterdir()) == []


def test_bad_input_raises_one_line_before_ray_starts(tmp_path):
    def no_classes(l2=0.0, input_shape=(28, 28, 1)):
        return None

    where = {"storage_path": str(tmp_path / "runs")}
    short = {**learnable_mnist(20, 10), "y_train": np.zeros(19, np.uint8)}
    cases = [
        (dict(models={"x": no_classes}), "models['x']: its builder takes no num_classes"),
        (dict(models={"mlp64": no_classes}), "models['mlp64']: 'mlp64' is an architecture already"),
        (dict(datasets={"d": short}), "datasets['d']: y_train has shape (19,): one label per image"),
        (dict(datasets={"d": {**learnable_colour(20, 10), "x_test": np.zeros((10, 32, 32, 3), np.float64)}}),
         "datasets['d']: x_test is float64: images must be uint8 pixels"),
        (dict(packing=2), "run(): unknown option 'packing'"),
    ]
    for kwargs, line in cases:
        with pytest.raises(ValueError) as e:
            noisesweep.run({"arch": "mlp64", "epochs": 1}, **kwargs, **where)
        assert str(e.value).startswith(line) and "\n" not in str(e.value), str(e.value)
    with pytest.raises(ValueError, match=r"noise_scale = -1: must be a number >= 0"):
        noisesweep.run({"arch": "mlp64", "noise_scale": -1}, **where)
    with pytest.raises(ValueError, match="no such folder"):
        noisesweep.load(str(tmp_path / "nowhere"))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
