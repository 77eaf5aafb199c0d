"""Nothing lost or misplaced on the experiment's storage (sweeps.storage): a file that is
there but cannot be read is never taken for a missing one, writes follow no planted link
and leave no temporary file, an experiment on a URI is not run into twice, and a stored
reference classifier is the one its note names. Real files and folders, no mocks."""

import json
import os

import pytest

from sweeps import run
from sweeps.grids import trial_config
from sweeps.modelfile import fingerprint
from sweeps.reference import FOLDER, ensure_references, needed
from sweeps.storage import Storage, StorageError


def test_a_missing_file_is_none_and_one_that_cannot_be_read_is_an_error(tmp_path):
    store = Storage(str(tmp_path))
    assert store.read_bytes("nothing") is None and store.read_json("nothing.json") is None
    (tmp_path / "a_folder.json").mkdir()  # there, but no file to read
    with pytest.raises(StorageError, match=r"a_folder.json: could not be read"):
        store.read_json("a_folder.json")
    (tmp_path / "torn.json").write_text('{"steps": [')
    with pytest.raises(StorageError, match=r"torn.json: not the JSON it was written as"):
        store.read_json("torn.json")


def test_a_write_follows_no_planted_link_and_leaves_no_temporary_file(tmp_path):
    store = Storage(str(tmp_path / "exp"))
    outside = tmp_path / "outside.txt"
    outside.write_text("theirs")
    (tmp_path / "exp").mkdir()
    for name in ("spec.json.part", ".spec.json.part"):  # the fixed temporary names of before
        os.symlink(outside, tmp_path / "exp" / name)
    store.write_json({"a": 1}, "spec.json")
    assert json.loads((tmp_path / "exp" / "spec.json").read_text()) == {"a": 1}
    assert outside.read_text() == "theirs"
    (tmp_path / "exp" / "file").write_text("")
    with pytest.raises(OSError):
        store.write_bytes(b"x", "file", "inside")  # its folder is a file: the write fails
    assert sorted(os.listdir(tmp_path / "exp")) == [".spec.json.part", "file", "spec.json", "spec.json.part"]


def test_a_resume_whose_record_cannot_be_read_is_refused_and_the_record_kept(tmp_path, capsys):
    exp = tmp_path / "runs" / "x"
    exp.mkdir(parents=True)
    (exp / "noisesweep.json").write_text('{"steps": [{"grid": "smoke"')  # torn by hand, or a failing disk
    before = (exp / "noisesweep.json").read_bytes()
    code = run.main(["--name", "x", "--resume", "--storage-path", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --resume: {exp}/noisesweep.json: not the JSON") and err.count("\n") == 1
    assert (exp / "noisesweep.json").read_bytes() == before and sorted(os.listdir(exp)) == ["noisesweep.json"]


def test_an_experiment_on_a_uri_is_not_run_into_a_second_time(tmp_path, capsys):
    uri = f"file://{tmp_path}/u"
    Storage(uri).child("x").write_json({"steps": []}, "noisesweep.json")  # a first run's record
    code = run.main(["--grid", "smoke:tiny", "--name", "x", "--storage-path", uri, "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and f"--name x: {uri}/x already exists; pass --resume" in err and err.count("\n") == 1
    assert os.listdir(tmp_path / "u" / "x") == ["noisesweep.json"]


def test_a_stored_reference_is_the_one_its_note_names_or_the_run_stops(tmp_path):
    trials = [trial_config({"arch": "dae_dense", "noise_type": "gaussian", "noise_scale": 0.5, "classifier": "mlp256"},
                           {})]
    (key,) = needed(trials)
    folder = tmp_path / FOLDER
    folder.mkdir()
    (folder / f"{key}.keras").write_bytes(b"the model the configs were judged by")
    (folder / f"{key}.json").write_text(json.dumps({"sha256_16": fingerprint(b"the model the configs were judged by")}))
    assert ensure_references(trials, {}, Storage(str(tmp_path)), {}, log=lambda line: None) == {
        key: b"the model the configs were judged by"}
    (folder / f"{key}.keras").write_bytes(b"another model")  # replaced behind the experiment's back
    with pytest.raises(StorageError, match=rf"{key}.keras: its sha256 begins {fingerprint(b'another model')}, not "):
        ensure_references(trials, {}, Storage(str(tmp_path)), {}, log=lambda line: None)
    assert (folder / f"{key}.keras").read_bytes() == b"another model"  # nothing retrained over it
    (folder / f"{key}.keras").unlink()
    (folder / f"{key}.keras").mkdir()  # there, unreadable: not taken for missing (which would retrain)
    with pytest.raises(StorageError, match="could not be read"):
        ensure_references(trials, {}, Storage(str(tmp_path)), {}, log=lambda line: None)


def test_names_read_from_an_experiments_files_are_checked_before_they_become_paths(tmp_path, capsys):
    """A record naming a step folder outside the experiment, and a pack's member list naming
    folders elsewhere, are refused (the runner) or passed over (the analysis), never followed."""
    from analysis.load import LogWarning, pack_members
    from sweeps.grids import load_grid
    from sweeps.training.reporting import member_folders

    exp = tmp_path / "runs" / "x"
    exp.mkdir(parents=True)
    trials = load_grid("smoke:tiny").trials
    record = {"steps": [{"folder": "", "grid": "smoke", "grid_path": "smoke.yaml", "trials": trials, "packs": [[0]]},
                        {"folder": "../../elsewhere", "grid": "smoke", "grid_path": "smoke.yaml", "trials": trials,
                         "packs": [[0]]}]}
    (exp / "noisesweep.json").write_text(json.dumps(record))
    code = run.main(["--name", "x", "--resume", "--storage-path", str(tmp_path / "runs"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: --resume: {exp}/noisesweep.json: steps[1].folder = '../../elsewhere': "
                                 "not a step's folder (grow-2, grow-3, ...)\n")
    assert sorted(os.listdir(tmp_path)) == ["runs"] and os.listdir(exp) == ["noisesweep.json"]

    pack = tmp_path / "pack"
    (pack / "m0").mkdir(parents=True)
    (pack / "m0" / "params.json").write_text("{}")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "params.json").write_text("{}")
    (pack / "members.json").write_text(json.dumps(["../outside"]))
    with pytest.warns(LogWarning, match="not a list of folder names"):
        assert pack_members(str(pack)) == [str(pack / "m0")]
    with pytest.raises(ValueError, match=r"members.json: \['../outside'\] are not folder names"):
        member_folders(Storage(str(pack)), [{"seed": 0}], ["m0"])


@pytest.mark.parametrize("content", ['{"pid": "abc", "host": "HOST"}', "[1]", '{"pid": true, "host": "HOST"}'])
def test_a_lock_holding_no_runners_record_is_one_line_or_taken_over_not_a_crash(tmp_path, capsys, content):
    """A lock file edited by hand or written by something else (a pid that is no number, no
    mapping at all) names no live runner: a new run says the folder exists, --resume's lock
    takes it over."""
    import socket

    from sweeps.lock import LOCK_FILE, experiment_lock

    exp = tmp_path / "runs" / "x"
    exp.mkdir(parents=True)
    (exp / LOCK_FILE).write_text(content.replace("HOST", socket.gethostname()))
    code = run.main(["--grid", "smoke:tiny", "--name", "x", "--storage-path", str(tmp_path / "runs"), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: --name x: {exp} already exists") and err.count("\n") == 1, err
    with experiment_lock(str(exp), take_stale=True):
        assert json.loads((exp / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (exp / LOCK_FILE).exists()


def test_a_searchs_saved_state_that_cannot_be_read_is_not_taken_for_none(tmp_path):
    """A grown search counts the configs its earlier steps tried from Tune's saved state:
    unreadable, it is an error, not "none tried" (which would sample the whole budget again
    and end with the wrong exit status); a step stopped before Tune saved any has none."""
    from sweeps import search

    assert search.saved_trials(str(tmp_path / "never-saved")) == []
    (tmp_path / "step").mkdir()
    assert search.in_flight(str(tmp_path / "step")) == set()
    (tmp_path / "step" / "experiment_state-2026-12-06_07-00-00.json").write_text('{"trial_data": [')
    with pytest.raises(StorageError, match=r"step: Tune's saved state of the search could not be read"):
        search.in_flight(str(tmp_path / "step"))
