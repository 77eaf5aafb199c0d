"""The runner's command line: everything refused before Ray starts, exit status 2."""

import json
import os
import subprocess
import sys

import pytest

from sweeps import options, preflight, run, schema
from sweeps.grids import load_grid
from sweeps.storage import Storage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def call(capsys, *argv):
    code = run.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_script_dry_run_of_full_grid_ends_with_its_trial_count(tmp_path):
    proc = subprocess.run([sys.executable, "sweeps/run.py", "--grid", "full", "--dry-run",
                           "--storage-path", str(tmp_path / "runs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    # After the table, each model's parameter count (built once each), then the count.
    models = [f"  {arch} on mnist: {n:,} parameters" for arch, n in
              (("mlp64", 55_050), ("mlp500_300", 545_810), ("cnn", 93_322))]
    assert lines[-5:-1] == ["models:", *models], lines[-6:]
    lines = [*lines[:-5], lines[-1]]
    assert lines[-1] == "225 configs" and len(lines) == 1 + 225 + 1 + 1
    assert lines[0].split()[:4] == ["#", "dataset", "arch", "noise_type"] and lines[0].split()[-2:] == ["pack", "start"]
    # Configs that differ only in seed, L2 and noise share a pack; cnn configs train alone on CPU.
    pack = {int(r.split()[0]): r.split()[-2] for r in lines[1:226]}
    start = {int(r.split()[0]): int(r.split()[-1]) for r in lines[1:226]}
    seed = {int(r.split()[0]): int(r.split()[lines[0].split().index("seed")]) for r in lines[1:226]}
    # Interleaved: Tune trials start in order of their first member's seed (a pack may
    # also hold later seeds of its cells); configs alone: every seed 0 before any seed 1.
    first_seed = [min(seed[i] for i in seed if start[i] == n) for n in sorted(set(start.values()))]
    assert first_seed == sorted(first_seed) and set(first_seed) == {0, 1, 2}
    alone = [i for i in pack if pack[i] == "-"]
    assert max(start[i] for i in alone if seed[i] == 0) < min(start[i] for i in alone if seed[i] == 1)
    assert sorted(set(start.values())) == list(range(1, len(set(start.values())) + 1))
    assert all(start[i] == start[j] for i in pack for j in pack if pack[i] == pack[j] != "-")
    arch = {int(r.split()[0]): r.split()[2] for r in lines[1:226]}
    packed = [i for i in pack if arch[i] != "cnn"]
    assert packed and all(pack[i].isdigit() for i in packed)
    assert all(not pack[i].isdigit() for i in pack if arch[i] == "cnn")
    sizes = {}
    for i in packed:
        sizes[pack[i]] = sizes.get(pack[i], 0) + 1
    assert lines[-2].startswith(f"{len(sizes) + 225 - len(packed)} Tune trials: {len(sizes)} packs")
    assert not (tmp_path / "runs").exists()


def test_dry_run_of_denoise_grid_names_its_reference_classifiers(capsys, tmp_path):
    code, out, _ = call(capsys, "--grid", "denoise", "--dry-run", "--storage-path", str(tmp_path / "runs"))
    lines = out.strip().splitlines()
    assert code == 0 and lines[-2] == "3 configs"
    assert lines[-1] == ("3 reference classifiers, trained once each before the configs: "
                         "mnist_cnn_e10_nall_s0, mnist_cnn_e10_nall_s1, mnist_cnn_e10_nall_s2")
    assert "classifier" in lines[0].split() and "latent_dim" not in lines[0].split()
    assert not (tmp_path / "runs").exists()


def test_dry_run_shows_every_key_that_changes_a_run(capsys, tmp_path):
    """A key a config sets apart from its architecture's default is a column, before seed;
    one left at its default is not."""
    code, out, _ = call(capsys, "--grid", "noise:tiny", "--dry-run", "--storage-path", str(tmp_path / "runs"))
    header = out.splitlines()[0].split()
    assert code == 0
    assert header.index("standardize") < header.index("seed")  # study 000 standardises
    assert "train_subset" in header and "test_subset" in header  # the tiny variant's subsets
    assert "noise_clip" not in header and "validation" not in header
    grid = tmp_path / "clip.yaml"
    grid.write_text("arch: mlp64\nnoise_type: gaussian\nnoise_scale: 0.5\nnoise_clip: [false, true]\n")
    code, out, _ = call(capsys, "--grid", str(grid), "--dry-run", "--pack", "1")
    rows = [line.split() for line in out.splitlines()[:3]]
    at = rows[0].index("noise_clip")
    assert [rows[1][at], rows[2][at]] == ["False", "True"] and "train_subset" not in rows[0]


def test_help_says_defaults_and_that_resume_grows(capsys):
    from sweeps import cli

    with pytest.raises(SystemExit) as e:
        options.parse(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert e.value.code == 0
    assert "auto (default: the pack size measured fastest" in text and "(default 0: CPU only)" in text
    assert "grows the experiment, training only the new ones" in text
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    text = capsys.readouterr().out
    assert e.value.code == 0 and text.startswith("usage: noisesweep {run,report,grids,status,slurm,evaluate} [flags]")
    assert "positional" in text and " args " not in text  # the commands, not a catch-all


def test_module_entry_point_works_too(capsys):
    proc = subprocess.run([sys.executable, "-m", "sweeps.run", "--grid", "smoke:tiny", "--dry-run"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("2 configs")


@pytest.mark.parametrize("argv,needle", [
    (["--epochs", "0"], "--epochs = 0"),
    (["--cpus-per-trial", "0"], "--cpus-per-trial 0"),
    (["--gpus-per-trial", "1.5"], "--gpus-per-trial 1.5"),
    (["--max-concurrent", "0"], "--max-concurrent 0"),
    (["--resume"], "--resume needs --name"),
    (["--data-dir", "/no/such/dir"], "--data-dir /no/such/dir"),
    (["--grid", "nosuch"], "--grid 'nosuch'"),
    (["--name", "a/b"], "--name 'a/b'"),
])
def test_bad_flags_exit_2_with_one_line(capsys, tmp_path, argv, needle):
    code, out, err = call(capsys, *argv, "--storage-path", str(tmp_path / "runs"))
    assert code == 2
    assert err.startswith("error: ") and needle in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("visible", ["", "0"], ids=["none-visible", "one-visible"])
def test_a_local_run_asking_for_more_gpus_than_the_machine_has_is_refused_before_ray_starts(
        capsys, tmp_path, monkeypatch, visible):
    """A local Ray is this machine alone: no node with a GPU can join it. Ray's own count,
    within CUDA_VISIBLE_DEVICES ("": none; "0": at most one, so 2 per trial is too many)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    asked = "2" if visible else "0.5"
    code, out, err = call(capsys, "--grid", "smoke:tiny", "--gpus-per-trial", asked,
                          "--storage-path", str(tmp_path / "runs"))
    have = preflight.local_gpus()
    assert have is not None and have <= len(visible.split(",")) - (visible == "")
    assert code == 2 and err == (f"error: --gpus-per-trial {asked}: this machine has {have} GPU{'s' if have != 1 else ''} "
                                 "that Ray can use; leave the flag out to train on CPUs, or join a cluster with "
                                 "GPUs (--address)\n")
    assert not (tmp_path / "runs").exists()
    assert run.main(["--grid", "smoke:tiny", "--gpus-per-trial", asked, "--dry-run"]) == 0  # planning is fine


def test_storage_path_that_is_a_file_is_refused(capsys, tmp_path):
    (tmp_path / "f").write_text("")
    code, _, err = call(capsys, "--storage-path", str(tmp_path / "f" / "runs"))
    assert code == 2 and "is a file, not a folder" in err


def test_invalid_grid_starts_nothing(capsys, tmp_path):
    grid = tmp_path / "bad.yaml"
    grid.write_text("arch: mlp64\nnoise_type: gaussian\nnoise_scale: -1\n")
    code, out, err = call(capsys, "--grid", str(grid), "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and err == f"error: {grid}: noise_scale = -1: must be a number >= 0\n"
    assert out == "" and not (tmp_path / "runs").exists()


def test_unknown_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        run.main(["--bogus"])
    assert e.value.code == 2


def test_existing_experiment_is_never_overwritten(capsys, tmp_path):
    exp = tmp_path / "runs" / "mine"
    exp.mkdir(parents=True)
    (exp / "result.json").write_text("precious\n")
    code, _, err = call(capsys, "--name", "mine", "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and "already exists; pass --resume" in err
    assert (exp / "result.json").read_text() == "precious\n"


def test_resume_refuses_a_missing_or_unreadable_experiment_and_dry_runs_a_changed_grid(capsys, tmp_path):
    code, _, err = call(capsys, "--name", "gone", "--resume", "--storage-path", str(tmp_path))
    assert code == 2 and "holds no noisesweep experiment" in err
    exp = tmp_path / "old"
    exp.mkdir()
    (exp / schema.SPEC_FILE).write_text(json.dumps({"grid": "smoke"}))
    code, _, err = call(capsys, "--name", "old", "--resume", "--storage-path", str(tmp_path))
    assert code == 2 and err.strip() == f"error: --resume: {exp}/{schema.SPEC_FILE}: not a record the runner wrote " \
                                        "(KeyError('trials') missing or malformed)"
    # A record from before growth (one grid, no packs) whose trial 2 had another noise scale;
    # no trial has logs: the other three are continued, trial 2 is new, its old self kept.
    trials = load_grid("smoke").trials
    old = {**trials[2], "noise_scale": 0.25}
    record = {"grid": "smoke", "grid_path": "smoke.yaml", "trials": [*trials[:2], old, trials[3]]}
    (exp / schema.SPEC_FILE).write_text(json.dumps(record))
    code, out, _ = call(capsys, "--grid", "smoke", "--name", "old", "--resume", "--dry-run",
                        "--storage-path", str(tmp_path))
    lines = out.splitlines()
    assert code == 0 and lines[0] == "old: 0 configs finished (skipped), 3 not finished (continued), 1 new (to run)"
    assert "  new: mlp64_gaussian0.5_l2-0_s0" in lines and "  not in this grid (kept): mlp64_gaussian0.25_l2-0_s0 " \
                                                          "(first step)" in lines
    assert lines[-1] == "1 new configs" and json.loads((exp / schema.SPEC_FILE).read_text()) == record  # nothing written
    # A growth grid with an error in it: one line naming file, key and value; nothing written.
    bad = tmp_path / "bad.yaml"
    bad.write_text("{arch: mlp64, seed: [0, 1], noise_scale: -1}\n")
    code, _, err = call(capsys, "--grid", str(bad), "--name", "old", "--resume", "--storage-path", str(tmp_path))
    assert code == 2 and err.startswith(f"error: {bad}") and "noise_scale" in err and len(err.splitlines()) == 1
    assert json.loads((exp / schema.SPEC_FILE).read_text()) == record and sorted(os.listdir(exp)) == [schema.SPEC_FILE]


def test_experiment_spec_round_trips_locally_and_through_a_uri(tmp_path):
    spec = {"grid": "smoke", "grid_path": "x.yaml", "trials": [{"arch": "mlp64", "seed": 0}]}
    Storage(str(tmp_path / "local")).write_json(spec, schema.SPEC_FILE)
    assert Storage(str(tmp_path / "local")).read_json(schema.SPEC_FILE) == spec
    uri = f"file://{tmp_path}/remote/exp"  # the path cloud storage takes (pyarrow's filesystems)
    Storage(uri).write_json(spec, schema.SPEC_FILE)
    assert Storage(uri).read_json(schema.SPEC_FILE) == spec and (tmp_path / "remote" / "exp" / schema.SPEC_FILE).exists()
    assert Storage(str(tmp_path / "nothing")).read_json(schema.SPEC_FILE) is None


def test_a_hold_out_as_large_as_the_data_is_refused_before_ray_and_leaves_nothing(capsys, tmp_path):
    from tests.synthetic import write_mnist_cache

    write_mnist_cache(tmp_path / "cache", n_train=1000, n_test=100)
    grid = tmp_path / "g.yaml"
    grid.write_text("{arch: mlp64, validation: holdout, holdout_size: 1000}\n")
    code, _, err = call(capsys, "--grid", str(grid), "--cache-dir", str(tmp_path / "cache"),
                        "--storage-path", str(tmp_path / "runs"))
    assert code == 2 and err.splitlines() == [
        f"error: {grid}: holdout_size = 1000: must be smaller than the 1,000 training images of mnist"]
    assert os.listdir(tmp_path / "runs") == []


def test_resume_refuses_new_epochs_without_its_grid_and_growth_step_names(capsys, tmp_path):
    exp = tmp_path / "old"
    exp.mkdir()
    record = {"grid": "smoke", "grid_path": "smoke.yaml", "trials": load_grid("smoke").trials}
    (exp / schema.SPEC_FILE).write_text(json.dumps(record))
    code, _, err = call(capsys, "--name", "old", "--resume", "--epochs", "5", "--dry-run",
                        "--storage-path", str(tmp_path))
    assert code == 2 and err.splitlines() == [
        "error: --epochs 5: --resume continues old as it was run; to add configs with other epochs, give the "
        "grid too: --grid smoke --epochs 5"]
    code, _, err = call(capsys, "--name", "grow-2", "--storage-path", str(tmp_path))
    assert code == 2 and "names like grow-2 are an experiment's growth steps" in err
    assert sorted(os.listdir(tmp_path)) == ["old"]
    (exp / schema.SPEC_FILE).write_text(json.dumps({"steps": []}))  # damaged by hand: no step
    code, _, err = call(capsys, "--name", "old", "--resume", "--storage-path", str(tmp_path))
    assert code == 2 and "not a record the runner wrote (KeyError('steps') missing or malformed)" in err
