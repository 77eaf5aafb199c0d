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
