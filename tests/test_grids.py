import os
import re
import textwrap

import pytest

from sweeps import catalogue, grids
from sweeps.tasks import denoise as denoise_task
from sweeps.grids import GridError, load_grid


def write(tmp_path, text, name="g.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("name", grids.known_grids())
def test_shipped_grid_header_states_its_trial_counts(name):
    """Each file's header says what it reproduces, its trial counts and its time."""
    path = os.path.join(grids.GRID_DIR, f"{name}.yaml")
    header = open(path).read().split("\n\n")[0]
    assert header.startswith(f"# {name}:")
    assert "# Reproduces:" in header and "# Time:" in header
    grid, small = load_grid(name), load_grid(f"{name}:tiny")
    if grid.search:  # a search samples its configs: the header gives its budget
        sizes = re.search(r"# Configs: (\d+) configs x (\d+) replicates \(tiny: (\d+) x (\d+)\)", header).groups()
        assert list(map(int, sizes)) == [grid.search["configs"], grid.search["replicates"],
                                         small.search["configs"], small.search["replicates"]]
        return
    full, tiny = map(int, re.search(r"# Configs: (\d+) \(tiny: (\d+)\)", header).groups())
    assert len(grid.trials) == full
    assert len(small.trials) == tiny


@pytest.mark.parametrize("name", grids.known_grids())
def test_each_config_of_a_shipped_grid_has_its_own_folder_name(name):
    """Trial folders and the live view's cells are named by `packing.label`: configs that
    differ only in an axis the name leaves out (the vae's latent sizes did) read as one."""
    from sweeps.packing import label

    for spec in (name, f"{name}:tiny"):
        names = [label(t) for t in load_grid(spec).trials]
        assert len(set(names)) == len(names), (spec, sorted(n for n in names if names.count(n) > 1))


def test_a_folder_name_shows_a_learning_rate_batch_size_or_latent_size_not_the_architectures_own():
    from sweeps.packing import label

    own = grids.trial_config({"arch": "mlp64", "seed": 1}, {})
    assert label(own) == "mlp64_clean_l2-0_s1"
    assert label({**own, "lr": 0.01477, "batch_size": 64}) == "mlp64_clean_l2-0_lr0.0148_b64_s1"
    vae = grids.trial_config({"arch": "vae", "noise_type": "gaussian", "noise_scale": 0.5, "latent_dim": 8, "seed": 2}, {})
    assert label(vae) == "vae_gaussian0.5_l2-0_latent8_s2"


def test_readmes_grid_table_gives_each_headers_trials_and_time():
    """The table of shipped grids (README's once, docs/grids.md's now) drifted from the headers
    once (times measured later): every grid has a row, and its trials and time are the header's words."""
    readme = open(os.path.join(grids.GRID_DIR, "..", "..", "docs", "grids.md"), encoding="utf-8").read()
    table = readme.split("### Shipped grids", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].strip("`")] = (cells[2], cells[3])
    assert sorted(rows) == grids.known_grids()
    for name, (trials, time) in rows.items():
        info = catalogue.header(name)
        assert trials == info["Configs"].split(". ")[0], name
        assert time == info["Time"].split(" on 2 cores")[0], name
    assert {"smoke", "noise", "l2", "full"} <= set(grids.known_grids())
    noise = load_grid("noise").trials
    assert sorted({t["noise_scale"] for t in noise}) == [0, 0.1, 0.5, 1, 2, 4]
    assert {(t["arch"], t["epochs"], t["noise_target"], t["standardize"]) for t in noise} == {("cnn_keras", 12, "both", True)}
    l2 = load_grid("l2").trials
    assert sorted({t["l2"] for t in l2}) == pytest.approx([1e-6, 0.00025075, 0.0005005, 0.00075025, 1e-3])
    assert {(t["arch"], t["epochs"], t["optimizer"], t["lr"], t["batch_size"]) for t in l2} == {("mlp500_300", 40, "sgd", 0.1, 128)}
    full = load_grid("full").trials
    axes = [len({t[k] for t in full}) for k in ("noise_scale", "l2", "arch", "seed")]
    assert axes == [5, 5, 3, 3] and len(full) == 225
    smoke = load_grid("smoke").trials
    assert all(t["epochs"] == 1 and t["train_subset"] for t in smoke)


def test_blocks_are_joined_and_each_expands_as_a_cross_product(tmp_path):
    path = write(tmp_path, """
        defaults: {arch: mlp64, seed: [0, 1, 2]}
        blocks:
          - noise_type: none
          - noise_type: gaussian
            noise_scale: [0.1, 0.5, 1, 2, 4]
            l2: [0, 1e-4]
    """)
    trials = load_grid(path).trials
    assert len(trials) == 3 + 5 * 2 * 3
    assert sum(t["noise_type"] == "none" for t in trials) == 3
    assert {t["l2"] for t in trials} == {0, 1e-4}  # 1e-4 read as a number, not a string


def test_precedence_base_arch_file_block_tiny_cli(tmp_path):
    path = write(tmp_path, """
        defaults: {arch: [mlp64, cnn_keras], batch_size: 64}
        blocks:
          - {seed: 0, epochs: 3}
        tiny: {epochs: 1}
    """)
    by_arch = {t["arch"]: t for t in load_grid(path).trials}
    assert by_arch["cnn_keras"]["optimizer"] == "adadelta" and by_arch["cnn_keras"]["lr"] == 0.001  # arch default
    assert by_arch["mlp64"]["optimizer"] == "sgd" and by_arch["mlp64"]["noise_type"] == "none"  # base
    assert {t["batch_size"] for t in by_arch.values()} == {64}  # file defaults beat arch defaults
    assert {t["epochs"] for t in by_arch.values()} == {3}  # block
    assert {t["epochs"] for t in load_grid(path + ":tiny").trials} == {1}  # tiny
    assert {t["epochs"] for t in load_grid(path + ":tiny", {"epochs": 7}).trials} == {7}  # command line


def test_duplicates_are_dropped_and_counted(tmp_path):
    path = write(tmp_path, """
        blocks:
          - {arch: mlp64, seed: [0, 1]}
          - {arch: mlp64, seed: [1, 2]}
    """)
    grid = load_grid(path)
    assert [t["seed"] for t in grid.trials] == [0, 1, 2] and grid.duplicates_dropped == 1


@pytest.mark.parametrize("text,key,value", [
    ("arch: mlp64\nepoch: 3\n", "epoch", None),
    ("arch: resnet50\n", "arch", "'resnet50'"),
    ("arch: mlp64\ndataset: cifar100\n", "dataset", "'cifar100'"),
    ("arch: mlp64\nnoise_type: gaussian\nnoise_scale: [0.1, -0.5]\n", "noise_scale", "-0.5"),
    ("arch: mlp64\nnoise_type: salt_and_pepper\nnoise_scale: [0.5, 1.5]\n", "noise_scale", "1.5"),
    ("arch: mlp64\nseed: []\n", "seed", "[]"),
    ("arch: mlp64\nl2: abc\n", "l2", "'abc'"),
    ("arch: mlp64\nlr: true\n", "lr", "True"),
    ("arch: mlp64\nl2: .nan\n", "l2", "nan"),
    ("arch: mlp64\nepochs: 2.5\n", "epochs", "2.5"),
    ("arch: mlp64\nepochs: 1000000000000000000000\n", "epochs", "1000000000000000000000"),  # a typo, not a plan
    ("arch: mlp64\nnoise_scale: 0.3\n", "noise_scale", "0.3"),  # scale with noise_type none
    ("arch: mlp64\nnoise_target: val\n", "noise_target", "'val'"),
    ("blocks:\n  - {arch: mlp64}\n  - {arch: mlp64, optimizer: lbfgs}\n", "blocks[1].optimizer", "'lbfgs'"),
    ("defaults: {batch_size: 0}\narch: mlp64\n", "defaults.batch_size", "0"),
    ("blocks: []\n", "blocks", "[]"),
    ("noise_type: none\n", "arch", None),
    ("arch: mlp64\nvalidation: holdout\nholdout_size: 500\ntrain_subset: 400\n", "holdout_size", "500"),
    ("arch: mlp64\nactivation: softmax\n", "activation", "'softmax'"),  # its builder takes none
    ("arch: dae_conv\nnoise_type: gaussian\nactivation: [relu, sofmax]\n", "activation", "'sofmax'"),
    ("arch: mlp64\noptimizer: adam\nmomentum: 0.9\n", "momentum", "0.9"),  # Adam takes none
    ("arch: mlp64\nmomentum: 1.0\n", "momentum", "1.0"),
    ("arch: mlp64\noptimizer: adam\nnesterov: true\n", "nesterov", "True"),  # SGD's only
    ("arch: mlp64\nlr_schedule: linear\n", "lr_schedule", "'linear'"),
    ("arch: mlp64\nlr_schedule: cosine\nlr_decay_epochs: 5\n", "lr_decay_epochs", "5"),  # step's
    ("arch: mlp64\npatience: -1\n", "patience", "-1"),
    ("arch: mlp64\nmin_delta: 0.01\n", "min_delta", "0.01"),  # without a patience
    ("arch: vae\nnoise_type: gaussian\npatience: 3\nmonitor: val_accuracy\n", "monitor", "'val_accuracy'"),
])
def test_invalid_grid_gives_one_line_naming_file_key_value(tmp_path, text, key, value):
    path = write(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path)
    message = str(err.value)
    assert message.startswith(path + ":") and "\n" not in message
    if key:
        assert key in message
    if value:
        assert f"= {value}" in message


def test_defaults_mixed_with_top_level_axes_is_an_error(tmp_path):
    # `defaults` alone (without blocks) with top-level axes is fine...
    path = write(tmp_path, "defaults: {batch_size: 32}\narch: mlp64\n")
    assert load_grid(path).trials[0]["batch_size"] == 32
    # ...but axes beside `blocks` are ambiguous.
    path = write(tmp_path, "arch: mlp64\nblocks:\n  - {seed: 0}\n", "b.yaml")
    with pytest.raises(GridError, match="b.yaml: arch: axes go inside"):
        load_grid(path)


def test_unreadable_yaml_and_unknown_names(tmp_path):
    path = write(tmp_path, "arch: [mlp64\n")
    with pytest.raises(GridError, match=r"g.yaml: line \d+: not valid YAML"):
        load_grid(path)
    # YAML keeps the last of a key given twice; a grid refuses it (which did the user mean?)...
    path = write(tmp_path, "arch: mlp64\nl2: 0.1\nseed: 0\nl2: 0.2\n", "twice.yaml")
    with pytest.raises(GridError, match=r"^.*twice.yaml: line 4: not valid YAML: key 'l2' given twice in one mapping$"):
        load_grid(path)
    # ...but a merged mapping's keys may be overridden.
    path = write(tmp_path, "defaults: &b {arch: mlp64, l2: 0.1}\nblocks:\n  - {<<: *b, l2: 0.2}\n", "merge.yaml")
    assert [t["l2"] for t in load_grid(path).trials] == [0.2]
    with pytest.raises(GridError, match="no such grid file or named grid; named grids: .*smoke"):
        load_grid("nosuchgrid")
    with pytest.raises(GridError, match="declares no tiny variant"):
        load_grid(write(tmp_path, "arch: mlp64\n", "t.yaml") + ":tiny")
    with pytest.raises(GridError, match="--epochs = 0"):
        load_grid("smoke", {"epochs": 0})


def test_denoise_grids_reproduce_their_seeds():
    denoise = load_grid("denoise").trials
    assert len(denoise) == 3 and {t["seed"] for t in denoise} == {0, 1, 2}
    t = denoise[0]
    assert (t["task"], t["arch"], t["classifier"], t["noise_type"], t["noise_scale"]) == \
        ("denoise", "dae_dense", "cnn", "salt_and_pepper", 0.4)
    assert (t["optimizer"], t["batch_size"], t["epochs"], t["loss_fn"]) == ("adam", 64, 32, "binary_crossentropy")
    assert denoise_task.eval_levels(t) == pytest.approx([i / 10 for i in range(11)])
    gaussian = load_grid("denoise_gaussian").trials[0]
    assert (gaussian["arch"], gaussian["classifier"], gaussian["noise_scale"], gaussian["noise_clip"]) == \
        ("dae_small", "mlp256", 0.9, True)
    # Seed 003's fit: up to 100 epochs, EarlyStopping(monitor='val_loss', patience=5), validation_split=0.2.
    assert (gaussian["epochs"], gaussian["patience"], gaussian["validation"], gaussian["holdout_size"]) == \
        (100, 5, "holdout", 12000)
    vae = load_grid("vae").trials
    assert sorted({t["latent_dim"] for t in vae}) == [2, 8, 16] and len(vae) == 9
    assert {t["classifier"] for t in vae} == {None}


def test_eval_levels_is_one_list_not_an_axis_and_defaults_to_tenths(tmp_path):
    path = write(tmp_path, """
        arch: dae_small
        noise_type: gaussian
        noise_scale: [0.5, 0.9]
        eval_levels: [0, 0.5, 2]
    """)
    trials = load_grid(path).trials
    assert len(trials) == 2  # two training levels, not 2 x 3
    assert [denoise_task.eval_levels(t) for t in trials] == [[0, 0.5, 2], [0, 0.5, 2]]
    default = load_grid(write(tmp_path, "{arch: dae_dense, noise_type: salt_and_pepper}", "d.yaml")).trials[0]
    assert default["eval_levels"] == "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1"
    assert default["classifier"] == "cnn" and default["task"] == "denoise"
    classify = load_grid(write(tmp_path, "{arch: mlp64}", "c.yaml")).trials[0]
    assert classify["task"] == "classify" and "eval_levels" not in classify  # no denoise keys on a classifier


def test_a_grid_nested_too_deep_for_the_parser_is_one_line(tmp_path):
    path = write(tmp_path, "arch: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(err.value) == f"{path}: not a grid: nested too deep to read"


@pytest.mark.parametrize("text, message", [
    ("{arch: mlp64, classifier: cnn}", "classifier = 'cnn': only denoise trials take it"),
    ("{arch: mlp64, eval_levels: [0, 1]}", "eval_levels = [0, 1]: only denoise trials take it"),
    ("{arch: dae_dense, noise_type: none}", "noise_type = 'none': dae_dense is a denoiser"),
    ("{arch: dae_dense, noise_type: salt_and_pepper, eval_levels: [0, 1.5]}",
     "salt_and_pepper levels must be in [0, 1]"),
    ("{arch: dae_dense, noise_type: gaussian, eval_levels: []}", "eval_levels = []: must be a list of 1 to 1000 numbers"),
    ("{arch: dae_dense, noise_type: gaussian, eval_levels: [%s]}" % ", ".join(["0.5"] * 1001),
     "must be a list of 1 to 1000 numbers >= 0"),
    ("{arch: dae_dense, noise_type: gaussian, latent_dim: 4}", "only the vae has a latent_dim, not dae_dense"),
    ("{arch: dae_dense, noise_type: gaussian, loss_fn: sparse_categorical_crossentropy}",
     "dae_dense is a denoiser; its loss must be one of binary_crossentropy, mse"),
    ("{arch: mlp64, loss_fn: mse}", "mlp64 is a classifier; its loss must be one of"),
    ("{arch: dae_dense, noise_type: gaussian, classifier: dae_small}", "classifier = 'dae_small': must be null or one of"),
    ("{arch: dae_dense, noise_type: gaussian, standardize: true}", "standardize = True: not for denoiser"),
    ("{arch: vae, noise_type: gaussian, latent_dim: 0}", "latent_dim = 0: must be an integer in [1, 1024]"),
])
def test_denoise_keys_are_checked(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert message in str(err.value) and str(err.value).startswith(path)


def test_seed_002s_grid_pairs_each_optimizer_with_its_rate():
    trials = load_grid("conv_denoiser").trials
    assert len(trials) == 20
    cells = {(t["optimizer"], t["lr"], t["activation"]) for t in trials}
    assert cells == {("sgd", 0.01, "relu"), ("sgd", 0.01, "softmax"), ("adadelta", 1.0, "relu"),
                     ("adadelta", 1.0, "softmax")}
    assert {t["seed"] for t in trials} == set(range(5))
    assert all(t["arch"] == "dae_conv" and t["validation"] == "holdout" and t["holdout_size"] == 5000
               and t["batch_size"] == 32 and t["epochs"] == 10 and t["classifier"] is None for t in trials)
    # Every other grid's trials keep the architecture's own activation.
    assert all(t["activation"] is None for t in load_grid("denoise").trials)
