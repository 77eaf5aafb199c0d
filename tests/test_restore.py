"""sweeps.restore against a real Tune experiment: a trial stopped after rows its last
checkpoint does not hold is restored with every epoch logged once."""

import json
import os
import tempfile

import pandas as pd
import pytest
import ray
from ray import tune

from sweeps import restore
from sweeps.storage import Storage

EPOCHS = 5


def stops_once_after_epoch_3(config):
    """Reports EPOCHS epochs, checkpointing even ones (or none, with config["checkpoints"]
    false); the first run fails after reporting epoch 3, whose row its last checkpoint
    (epoch 2, or none) does not hold."""
    start = 0
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d, open(os.path.join(d, "state.json")) as f:
            start = json.load(f)["epoch"]
    for epoch in range(start + 1, EPOCHS + 1):
        # With config["grow"], rows after the restart have one key more, as a newer version's may.
        grown = {"onednn": True} if config.get("grow") and os.path.exists(config["marker"]) else {}
        row = {"epoch": epoch, **grown, "loss": 1.0 / epoch}
        if epoch % 2 or not config["checkpoints"]:
            tune.report(row)
        else:
            with tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    json.dump({"epoch": epoch}, f)
                tune.report(row, checkpoint=tune.Checkpoint.from_directory(d))
        if epoch == 3 and not os.path.exists(config["marker"]):
            open(config["marker"], "w").close()
            raise RuntimeError("stopped after epoch 3")


def epochs(exp) -> list[int]:
    (trial,) = [d for d in os.listdir(exp) if os.path.isdir(os.path.join(exp, d))]
    with open(os.path.join(exp, trial, "result.json")) as f:
        logged = [json.loads(line)["epoch"] for line in f]
    progress = pd.read_csv(os.path.join(exp, trial, "progress.csv"))
    assert progress["epoch"].tolist() == logged  # the two logs agree
    return logged


def in_a_fresh_ray(run):
    """`run()` in its own Ray session, as each runner process has: a restored experiment
    starts from what is on storage, not from the driver's staging files of a session
    before."""
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        return run()
    finally:
        ray.shutdown()


@pytest.mark.parametrize("checkpoints,dropped,uncut", [
    (True, 1, [1, 2, 3, 3, 4, 5]),  # from its epoch-2 checkpoint, Tune logs epoch 3 again
    (False, 0, [1, 2, 3, 4, 5]),  # with none it starts afresh, and Tune writes its logs anew
])
def test_a_restored_trial_logs_each_epoch_once(tmp_path, checkpoints, dropped, uncut):
    """Two experiments stopped alike, one cut back before the restore and one not (the
    fault the cut exists for)."""
    exps = {"cut": tmp_path / "cut", "without": tmp_path / "without"}

    def fit_both():
        for name, exp in exps.items():
            tune.Tuner(stops_once_after_epoch_3, param_space={"marker": str(tmp_path / f"{name}-failed-once"),
                                                                 "checkpoints": checkpoints},
                       run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0)).fit()

    in_a_fresh_ray(fit_both)
    assert epochs(exps["cut"]) == epochs(exps["without"]) == [1, 2, 3]
    assert restore.cut_back(Storage(str(exps["cut"]))) == dropped  # the rows after the checkpoint
    assert epochs(exps["cut"]) == [1, 2, 3][:3 - dropped]
    in_a_fresh_ray(lambda: [tune.Tuner.restore(str(exp), stops_once_after_epoch_3, resume_errored=True).fit()
                            for exp in exps.values()])
    assert epochs(exps["cut"]) == [1, 2, 3, 4, 5]
    assert epochs(exps["without"]) == uncut


def test_rows_that_gain_a_key_after_a_restore_leave_a_readable_progress_csv(tmp_path):
    """Tune appends a continued trial's rows under the header its file has: one key more
    and every later value is a column off (pandas cannot read the file). realign writes it
    again from result.json, as the runner does after each step and cut_back before one."""
    exp = tmp_path / "grew"
    space = {"marker": str(tmp_path / "failed-once"), "checkpoints": True, "grow": True}
    in_a_fresh_ray(lambda: tune.Tuner(stops_once_after_epoch_3, param_space=space, run_config=tune.RunConfig(
        name="grew", storage_path=str(tmp_path), verbose=0)).fit())
    assert restore.cut_back(Storage(str(exp))) == 1
    in_a_fresh_ray(lambda: tune.Tuner.restore(str(exp), stops_once_after_epoch_3, resume_errored=True).fit())
    (trial,) = [d for d in os.listdir(exp) if os.path.isdir(exp / d)]
    with pytest.raises(pd.errors.ParserError):
        pd.read_csv(exp / trial / "progress.csv")  # as Tune left it
    assert restore.realign(Storage(str(exp))) == 1
    assert epochs(exp) == [1, 2, 3, 4, 5]  # progress.csv's epochs are result.json's
    progress = pd.read_csv(exp / trial / "progress.csv")
    assert progress["loss"].tolist() == [1.0 / e for e in range(1, 6)]
    assert progress["onednn"].isna().tolist() == [True, True, False, False, False]
    # Columns in the order of the last row, which rows Tune appends as the trial goes on share.
    assert list(progress.columns[:3]) == ["epoch", "onednn", "loss"]
    assert restore.realign(Storage(str(exp))) == 0  # an aligned file is left as it is


def test_realigning_never_drops_rows_result_json_lacks(tmp_path):
    """A retried trial's result.json can hold fewer rows than its progress.csv (its driver put
    back an older copy); an empty one none. A misaligned progress.csv is then kept as it is,
    not written again from result.json with rows lost (or as a bare line)."""
    folder = tmp_path / "trial"
    folder.mkdir()
    progress = "epoch,training_iteration,loss\n1,1,0.5\n2,2,0.4\n3,3,0.3,0.9\n"  # its last row one key longer
    (folder / "progress.csv").write_text(progress)
    for result in ("", json.dumps({"epoch": 3, "training_iteration": 3, "loss": 0.3, "test_loss": 0.9}) + "\n"):
        (folder / "result.json").write_text(result)
        assert restore._realign(Storage(str(folder))) is False
        assert (folder / "progress.csv").read_text() == progress
    # With every row in result.json, the file is written again from it: nothing lost.
    rows = [{"epoch": e, "training_iteration": e, "loss": 0.6 - 0.1 * e} for e in (1, 2)]
    rows.append({"epoch": 3, "training_iteration": 3, "loss": 0.3, "test_loss": 0.9})
    (folder / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert restore._realign(Storage(str(folder))) is True
    assert pd.read_csv(folder / "progress.csv")["epoch"].tolist() == [1, 2, 3]


def test_a_restarted_pack_keeps_the_member_folders_it_started_with(tmp_path):
    """Folder names grew (a VAE's latent size, a learning rate): a pack started under the
    old names and restarted under the new must write where it began, or a member that had
    ended before the restart is listed in a folder it never wrote."""
    from sweeps.grids import trial_config
    from sweeps.packing import member_dirnames
    from sweeps.training.reporting import member_folders

    members = [trial_config({"arch": "mlp64", "seed": s, "lr": 0.05, "epochs": 3}, {}) for s in (0, 1)]
    folder = Storage(str(tmp_path / "pack"))
    new = member_dirnames(members)
    assert new == ["mlp64_clean_l2-0_lr0.05_s0_m00", "mlp64_clean_l2-0_lr0.05_s1_m01"]
    old = ["mlp64_clean_l2-0_s0_m00", "mlp64_clean_l2-0_s1_m01"]
    assert member_folders(folder, members, old) == old  # the pack's start, under the old names
    assert member_folders(folder, members, new) == old  # its restart under the new ones
    assert json.loads((tmp_path / "pack" / "members.json").read_text()) == old
    assert json.loads((tmp_path / "pack" / old[1] / "params.json").read_text())["seed"] == 1

    # The runner reads the pack's report by member place, so it finds rows under the old names.
    from types import SimpleNamespace

    from sweeps import packing, summary

    reported = {old[0]: {"epoch": 3, "val_accuracy": 0.9}, old[1]: {"epoch": 2, "diverged": True}}
    result = SimpleNamespace(config=packing.tune_config(members, [0, 1]), path=str(tmp_path / "pack_7"),
                             metrics={"epoch": 3, "members": reported}, error=None)
    states = summary.member_states(result)
    assert [(shown, m, state) for shown, _, m, state in states] == [
        (f"pack_7/{old[0]}", reported[old[0]], "finished"), (f"pack_7/{old[1]}", reported[old[1]], "diverged")]

    # So does the live view, when the pack ends: each member's line names the folder it wrote.
    import io

    from sweeps.console import LiveView
    from sweeps.progress import Sweep

    out = io.StringIO()
    view = LiveView(Sweep(members, [[0, 1]], slots=1), out=out)
    trial = SimpleNamespace(config=result.config, path=result.path, last_result=result.metrics,
                            run_metadata=SimpleNamespace(num_failures=0), max_failures=0)
    view.on_trial_result(0, [trial], trial, result.metrics)
    view.on_trial_complete(0, [trial], trial)
    lines = [line.strip() for line in out.getvalue().splitlines() if line.startswith("  pack_7/")]
    assert lines[0] == f"pack_7/{old[1]}: diverged, epochs 2/3"
    assert lines[-1] == f"pack_7/{old[0]}: finished, epochs 3/3, val_accuracy 0.9000"
