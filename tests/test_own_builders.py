"""A classifier of one's own named by import path in a grid (`arch: tests.nets:bn_cnn`),
registered nowhere: its builder's keyword options are grid axes, checked like the others;
it trains alone and packed, through real Ray Tune workers that import it themselves, and
grows with --resume. A path or builder that cannot serve is refused in one line."""

import json
import os
import textwrap

import pytest

from sweeps.grids import GridError, load_grid
from sweeps.packing import label
from tests.sweeps_running import run, run_to_end, runner_cmd
from tests.synthetic import learnable_mnist


def grid_file(tmp_path, text, name="own.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_builders_options_are_axes_with_its_defaults_and_training_defaults(tmp_path):
    grid = load_grid(grid_file(tmp_path, """
        arch: tests.nets:wide_mlp
        width: [16, 24]
        seed: [0, 1]
    """))
    assert len(grid.trials) == 4
    for t in grid.trials:
        assert t["task"] == "classify"
        assert t["batch_norm"] is False  # the builder's default, written into the config
        assert (t["optimizer"], t["lr"], t["batch_size"], t["epochs"]) == ("adam", 0.001, 128, 10)
    assert sorted({t["width"] for t in grid.trials}) == [16, 24]
    # Folder names say the function and the option that differs from its default.
    assert label(grid.trials[0]) == "wide_mlp_clean_l2-0_width16_s0"


def runner_beside(folder, grid: str):
    """The runner started from `folder` (where a student keeps a module of their own) on a
    grid there, as `python sweeps/run.py --dry-run` from a checkout elsewhere; a module
    `mynets` there imports Keras at the top, as such modules do."""
    import subprocess
    import sys

    from tests.sweeps_running import ROOT

    (folder / "mynets.py").write_text(textwrap.dedent("""
        import keras

        def small(l2=0.0, input_shape=(28, 28, 1), num_classes=10, width=8):
            reg = keras.regularizers.l2(l2) if l2 else None
            return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(),
                                     keras.layers.Dense(width, kernel_regularizer=reg), keras.layers.Dense(num_classes)])
    """))
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as on a fresh shell
    return subprocess.run([sys.executable, os.path.join(ROOT, "sweeps", "run.py"), "--grid", grid_file(folder, grid),
                           "--dry-run", "--pack", "1", "--storage-path", str(folder / "runs")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def test_a_module_beside_the_runner_imports_and_shadows_nothing_installed(tmp_path):
    """Started from a folder holding a builder module and a script named tensorflow.py (as
    students name them), the runner imports the builder and TensorFlow itself."""
    marker = tmp_path / "imported"
    (tmp_path / "tensorflow.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise ImportError('the wrong one')\n")
    done = runner_beside(tmp_path, "{arch: mynets:small, l2: [0, 0.0001], epochs: 1}\n")
    assert done.returncode == 0 and done.stdout.rstrip().endswith("2 configs"), done.stdout[-2000:] + done.stderr[-2000:]
    assert not marker.exists()


def test_a_misspelt_key_beside_a_model_of_ones_own_is_one_line_and_names_the_key_meant(tmp_path):
    """The builder's module imports Keras (and so TensorFlow) as the grid is checked: none of
    TensorFlow's start-up lines (oneDNN, CUDA, absl) show; the refusal is the one line."""
    done = runner_beside(tmp_path, "{arch: mynets:small, widht: 8}\n")
    assert done.returncode == 2 and done.stdout == "", done.stdout
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: "), done.stderr
    assert "widht: unknown key (did you mean width?); known: " in done.stderr
    assert "the grid's builders' options: width" in done.stderr


@pytest.mark.parametrize("text, line", [
    ("arch: nope.mod:f", "arch = 'nope.mod:f': cannot import nope.mod (ModuleNotFoundError: No module named 'nope')"),
    ("arch: tests.nets:nothing", "arch = 'tests.nets:nothing': tests.nets has no function nothing"),
    ("arch: tests.nets:NOT_A_FUNCTION", "arch = 'tests.nets:NOT_A_FUNCTION': tests.nets has no function NOT_A_FUNCTION"),
    ("arch: tests.nets:no_classes",
     "arch = 'tests.nets:no_classes': its builder takes no num_classes (a builder is called with l2, input_shape, "
     "num_classes)"),
    ("arch: tests.nets:needs_depth", "arch = 'tests.nets:needs_depth': its builder's depth has no default"),
    ("{arch: tests.nets:wide_mlp, width: wide}",
     "width = 'wide': must be an integer or null (tests.nets:wide_mlp's builder has width=32)"),
    ("{arch: tests.nets:wide_mlp, batch_norm: 1}", "batch_norm = 1: must be true or false or null"),
    ("{arch: tests.nets:wide_mlp, depth: 3}", "depth: unknown key;"),
    ("blocks: [{arch: mlp64, width: 8}, {arch: tests.nets:wide_mlp}]",
     "blocks[0].width = 8: only tests.nets:wide_mlp take it (an option of their builders), not mlp64"),
])
def test_a_path_or_builder_that_cannot_serve_is_refused_in_one_line(tmp_path, text, line):
    path = grid_file(tmp_path, text + "\n")
    with pytest.raises(GridError) as e:
        load_grid(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and line in message and "\n" not in message


def test_the_runner_refuses_it_before_ray_starts(tmp_path):
    cmd, env = runner_cmd(tmp_path, "{arch: tests.nets:wide_mlp, width: wide}\n", "bad")
    done = run(cmd, env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "width = 'wide': must be an integer" in lines[0], done.stderr
    assert not (tmp_path / "runs" / "bad").exists()  # no experiment folder


def test_its_options_reach_the_builder_in_the_pack(tmp_path):
    from sweeps.grids import trial_config
    from tests.packs import train

    arrays = learnable_mnist(300, 100)
    configs = [trial_config({"arch": "tests.nets:wide_mlp", "width": 12, "batch_norm": True, "seed": s,
                             "epochs": 1, "train_subset": 300, "test_subset": 100}, {}) for s in (0, 1)]
    pack, weights = train(configs, arrays)
    kernel = weights[0][0][0]
    assert kernel.shape == (784, 12)  # width 12, not the builder's 32
    assert any(v.path.endswith("moving_mean") for v in pack.engine.net.state)  # batch_norm: true
    assert not (weights[0][0][0] == weights[0][1][0]).all()  # each member its own seed's weights


GRID = """
    arch: tests.nets:bn_cnn
    dataset: {data}
    width: 4
    dropout: 0.1
    noise_type: gaussian
    noise_scale: [0.1, 0.3]
    standardize: true
    epochs: 2
    seed: [0, 1]
"""


def test_it_trains_packed_on_colour_images_of_ones_own_through_ray_workers_reports_and_grows(tmp_path):
    """The model by import path, the data an .npz of 32 x 32 x 3 images: packed through the
    command line, Ray's workers importing the builder themselves; the report draws its
    figures; --resume with another seed trains that one alone."""
    import numpy as np

    from analysis.load import load_experiment
    from tests.synthetic import learnable_colour

    data = tmp_path / "colour.npz"
    np.savez(data, **learnable_colour(600, 200))
    cmd, env = runner_cmd(tmp_path, GRID.format(data=data), "own", "--pack", "2")
    env = {k: v for k, v in env.items() if k != "NOISESWEEP_TASKS"}  # registered nowhere: the path is all
    run_to_end([*cmd, "--report"], env, "4/4")
    exp = tmp_path / "runs" / "own"
    packs = [d for d in os.listdir(exp) if d.startswith("pack_bn_cnn_2m_")]
    assert len(packs) == 2  # one per noise scale, its two seeds together
    before = {}
    for pack in packs:
        members = json.loads((exp / pack / "members.json").read_text())
        assert len(members) == 2 and all("width4_dropout0.1" in m for m in members)
        for m in members:
            params = json.loads((exp / pack / m / "params.json").read_text())
            assert (params["arch"], params["width"], params["dataset"]) == ("tests.nets:bn_cnn", 4, str(data))
            rows = [json.loads(line) for line in (exp / pack / m / "result.json").read_text().splitlines()]
            assert [r["epoch"] for r in rows] == [1, 2]
            before[(pack, m)] = (exp / pack / m / "result.json").read_bytes()
    figures = os.listdir(exp / "report" / "figures")
    assert {"accuracy_vs_noise.png", "learning_curves.png", "loss_and_accuracy_vs_noise.png"} <= set(figures)

    (tmp_path / "own.yaml").write_text(textwrap.dedent(GRID.format(data=data)).replace("[0, 1]", "[0, 1, 2]"))
    done = run_to_end([*cmd, "--resume"], env)
    assert "4 configs finished (skipped), 0 not finished (continued), 2 new (to run)" in done.stdout, done.stdout
    for (pack, m), content in before.items():
        assert (exp / pack / m / "result.json").read_bytes() == content  # not trained again
    df = load_experiment(str(exp))
    assert sorted(df["seed"].unique()) == [0, 1, 2] and set(df["width"]) == {4}
    assert len(df[df["epoch"] == 2]) == 6


def test_a_module_named_by_models_registers_its_models_for_the_run_its_workers_and_resume(tmp_path):
    """`--models tests.user_models` (no $NOISESWEEP_TASKS): the driver, the workers and a
    later --resume, given only the experiment's name, import it."""
    from tests.synthetic import write_mnist_cache

    write_mnist_cache(tmp_path / "cache", n_train=300, n_test=100)
    grid = "{arch: bn_plain, epochs: 1, seed: [0]}\n"
    cmd, env = runner_cmd(tmp_path, grid, "mods", "--pack", "1")
    env = {k: v for k, v in env.items() if k != "NOISESWEEP_TASKS"}
    refused = run(cmd, env)
    assert refused.returncode == 2 and "arch = 'bn_plain': must be one of" in refused.stderr
    bad = run([*cmd, "--models", "tests.nowhere"], env)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --models tests.nowhere: cannot import it (ModuleNotFoundError: "
                                  "No module named 'tests.nowhere')")
    run_to_end([*cmd, "--models", "tests.user_models"], env, "1/1")
    exp = tmp_path / "runs" / "mods"
    assert json.loads((exp / "noisesweep.json").read_text())["steps"][0]["models"] == ["tests.user_models"]
    (tmp_path / "mods.yaml").write_text(grid.replace("[0]", "[0, 1]"))
    # Growing it, planned (the grid's check needs bn_plain: the recorded module, imported).
    done = run_to_end([*cmd, "--resume", "--dry-run"], env)
    assert "1 configs finished (skipped), 0 not finished (continued), 1 new (to run)" in done.stdout
    assert done.stdout.strip().endswith("1 new configs")
