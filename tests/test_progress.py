"""The progress arithmetic (sweeps.progress): counts, ETA and best means, checked by hand."""

import statistics

import pytest

from sweeps.grids import trial_config
from sweeps.progress import PENDING, RUNNING, Sweep, duration


def configs(**axes):
    out = [{}]
    for key, values in axes.items():
        out = [{**c, key: v} for c in out for v in values]
    return [trial_config({"arch": "mlp64", "epochs": 10, **c}, {}) for c in out]


def test_eta_uses_each_trials_median_epoch_and_its_kind_for_unmeasured_ones():
    grid = configs(seed=[0, 1, 2])
    sweep = Sweep(grid, [[0], [1], [2]], slots=2, started=0.0)
    assert sweep.eta() is None and "ETA estimating" in sweep.line(now=5.0)
    sweep.set_unit(0, RUNNING)
    for epoch, seconds in enumerate([9.0, 2.0, 2.0], start=1):  # the first epoch compiles
        sweep.epoch_done(0, seconds)
        sweep.row(0, {"epoch": epoch, "val_accuracy": 0.5})
    # unit 0: 7 epochs left x median 2 s = 14; units 1 and 2 (unmeasured, same kind):
    # 10 x 2 s each. 54 s of work on 2 slots = 27 s, above the longest (20 s).
    assert sweep.eta() == pytest.approx((14 + 20 + 20) / 2)
    assert sweep.counts()[RUNNING] == 1 and sweep.counts()[PENDING] == 2
    line = sweep.line(now=65.0)
    assert line.startswith("[0/3 configs done, 1 running, 2 pending] elapsed 1m05s, ETA 27s")


def test_eta_is_never_below_the_longest_remaining_trial():
    grid = configs(seed=[0, 1])
    sweep = Sweep(grid, [[0], [1]], slots=4, started=0.0)
    sweep.epoch_done(0, 3.0)
    sweep.row(0, {"epoch": 1})
    sweep.set_unit(1, "finished")
    # one trial left: 9 epochs x 3 s on 4 slots would say 6.75 s; it takes 27 s.
    assert sweep.eta() == pytest.approx(27.0)


def test_eta_counts_what_a_trial_spends_beyond_its_epochs_for_each_one_not_started(monkeypatch):
    import sweeps.progress

    clock = iter([100.0, 101.5, 102.0, 105.0])  # started, ended; started, ended
    monkeypatch.setattr(sweeps.progress.time, "time", lambda: next(clock))
    grid = [{**c, "epochs": 1} for c in configs(seed=[0, 1, 2, 3, 4])]
    sweep = Sweep(grid, [[0], [1], [2], [3], [4]], slots=2, started=0.0)
    for unit, seconds in ((0, 0.5), (1, 1.0)):
        sweep.set_unit(unit, RUNNING)
        sweep.epoch_done(unit, seconds)
        sweep.row(unit, {"epoch": 1, "val_accuracy": 0.5})
        sweep.set_unit(unit, "finished")
    # Beyond their one epoch trial 0 took 1.5 - 0.5 = 1.0 s, trial 1 3.0 - 1.0 = 2.0 s:
    # median 1.5 s. Three trials to start, each 1 epoch x mean(0.5, 1.0) + 1.5 = 2.25 s,
    # on 2 slots.
    assert sweep.overheads == [1.0, 2.0]
    assert sweep.eta() == pytest.approx(3 * 2.25 / 2)
    # Once trials beyond each slot's first (which started its worker) have ended, only theirs count.
    sweep.overheads += [0.2]
    assert sweep.eta() == pytest.approx(3 * (0.75 + 0.2) / 2)


def test_a_pack_counts_its_epochs_once_and_its_members_by_state():
    grid = configs(seed=[0, 1, 2, 3])
    sweep = Sweep(grid, [[0, 1, 2], [3]], slots=1, started=0.0)
    sweep.set_unit(0, RUNNING)
    sweep.epoch_done(0, 4.0)
    for i in (0, 1, 2):
        sweep.row(i, {"epoch": 1})
    assert sweep.row(1, {"epoch": 2, "diverged": True}) == "diverged"
    assert sweep.row(1, {"epoch": 2, "diverged": True}) is None  # said once
    # the pack: 9 epochs x 4 s; the lone config (unmeasured, another pack size, same arch): 10 x 4 s
    assert sweep.eta() == pytest.approx(36 + 40)
    assert sweep.set_unit(0, "errored") == [0, 2]  # the diverged member keeps its result
    assert sweep.counts() == {"finished": 0, "running": 0, "pending": 1, "diverged": 1, "errored": 2,
                              "unfinished": 0}


def test_best_mean_is_over_replicates_of_one_config_group():
    grid = configs(l2=[0.0, 1e-4], seed=[0, 1, 2])
    sweep = Sweep(grid, [[i] for i in range(len(grid))], slots=2)
    accuracy = {(0.0, 0): 0.90, (0.0, 1): 0.92, (0.0, 2): 0.94, (1e-4, 0): 0.95, (1e-4, 1): 0.91}
    for i, c in enumerate(grid):
        if (c["l2"], c["seed"]) in accuracy:
            sweep.row(i, {"epoch": 10, "val_accuracy": accuracy[(c["l2"], c["seed"])]})
            sweep.set_unit(i, "finished")
    metric, mean, n, group = sweep.best()["mlp64"]
    # l2 0: (0.90 + 0.92 + 0.94) / 3 = 0.92; l2 1e-4: (0.95 + 0.91) / 2 = 0.93 (seed 2 not done)
    assert (metric, n, group) == ("val_accuracy", 2, "clean_l2-0.0001")
    assert mean == pytest.approx(statistics.fmean([0.95, 0.91]))
    assert "best so far: mlp64 clean_l2-0.0001, val_accuracy 0.9300 (mean of 2 seeds)" in sweep.line()
    # A third cell with one lucky seed is not the best while cells of two or more exist.
    lucky = configs(l2=[1e-3], seed=[0])
    sweep = Sweep(grid + lucky, [[i] for i in range(len(grid) + 1)], slots=2)
    for i, c in enumerate(grid + lucky):
        if (c["l2"], c["seed"]) in {**accuracy, (1e-3, 0): 0.99}:
            sweep.row(i, {"epoch": 10, "val_accuracy": {**accuracy, (1e-3, 0): 0.99}[(c["l2"], c["seed"])]})
            sweep.set_unit(i, "finished")
    assert sweep.best()["mlp64"][2:] == (2, "clean_l2-0.0001")


def test_the_best_of_a_builder_named_by_import_path_shows_its_whole_config_name():
    """The builder's module is left out of the label (its folder's name): the group's name
    is what follows the function's name, not cut mid-word by the module's length."""
    grid = [trial_config({"arch": "tests.nets:wide_mlp", "epochs": 10, "noise_type": "gaussian", "noise_scale": 0.3,
                          "l2": 1e-4, "seed": s}, {}) for s in (0, 1)]
    sweep = Sweep(grid, [[0], [1]], slots=2)
    for i in range(2):
        sweep.row(i, {"epoch": 10, "val_accuracy": 0.5 + 0.25 * i})
        sweep.set_unit(i, "finished")
    assert sweep.best()["tests.nets:wide_mlp"][3] == "gaussian0.3_l2-0.0001"
    assert "best so far: tests.nets:wide_mlp gaussian0.3_l2-0.0001, val_accuracy 0.6250 (mean of 2 seeds)" in sweep.line()


def test_a_denoisers_best_is_its_lowest_loss_and_lines_name_state_epochs_metric():
    grid = [trial_config({"arch": "dae_small", "seed": s, "epochs": 2}, {}) for s in (0, 1)]
    grid += [trial_config({"arch": "dae_small", "seed": s, "epochs": 2, "l2": 1e-3}, {}) for s in (0, 1)]
    sweep = Sweep(grid, [[i] for i in range(4)], slots=1)
    for i, loss in enumerate([0.10, 0.12, 0.30, 0.20]):
        sweep.row(i, {"epoch": 2, "val_loss": loss})
        sweep.set_unit(i, "finished")
    assert sweep.best()["dae_small"][:3] == ("val_loss", pytest.approx(0.11), 2)
    assert sweep.config_line(3, "x/y") == "  x/y: finished, epochs 2/2, val_loss 0.2000"


def test_durations_read_as_a_person_says_them():
    assert [duration(s) for s in (4.6, 65, 3600 + 120 + 5)] == ["5s", "1m05s", "1h02m"]


def test_a_member_stopped_early_is_finished_while_its_pack_runs_and_counts_the_epochs_it_ran():
    grid = configs(seed=[0, 1])
    sweep = Sweep(grid, [[0, 1]], slots=1, started=0.0)
    sweep.set_unit(0, RUNNING)
    for epoch in (1, 2, 3):
        sweep.epoch_done(0, 5.0)
        sweep.row(1, {"epoch": epoch})
    assert sweep.row(0, {"epoch": 3, "stopped": True, "val_accuracy": 0.9}) == "finished"
    assert sweep.row(0, {"epoch": 3, "stopped": True}) is None  # said once
    assert sweep.counts()["finished"] == 1 and sweep.counts()[RUNNING] == 1
    assert "epochs 3/10 (stopped early), val_accuracy 0.9000" in sweep.config_line(0, "m0")
    assert [sweep.planned(i) for i in (0, 1)] == [3, 10]  # what `noisesweep status` counts
    assert sweep.eta() == pytest.approx(7 * 5.0)  # the member still training: 7 epochs of 5 s
    assert sweep.set_unit(0, "finished") == [1]


def test_a_sweep_saved_by_an_older_version_resumes_with_the_fields_it_lacks():
    import pickle

    grid = configs(seed=[0, 1])
    sweep = Sweep(grid, [[0], [1]], slots=2, started=0.0)
    sweep.row(0, {"epoch": 3, "val_accuracy": 0.5})
    del sweep.began, sweep.overheads  # fields a version before the per-trial ETA did not have
    restored = pickle.loads(pickle.dumps(sweep))
    restored.set_unit(1, RUNNING)
    restored.set_unit(1, "finished")
    assert restored.epochs == [3, 0] and restored.state[0] == RUNNING
    assert len(restored.overheads) == 1 and restored.eta() is None



def test_a_failure_is_said_in_a_few_words_from_the_error_file_tune_appends_it_to(tmp_path):
    from sweeps.progress import failure

    path = tmp_path / "error.txt"
    died = ("The actor died unexpectedly before finishing this task.\n\tclass_name: ImplicitFunc\n"
            "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR ...\n")
    node = "The actor died because its node has died. Node Id: 4a26...\n\tthe actor's node was terminated\n"
    task = ("ray::ImplicitFunc.train() (pid=7616, ip=192.0.2.2)\n  File \"train.py\", line 3, in step\n"
            "ValueError: l2 must be finite\n")
    path.write_text(f"Failure # 1 (occurred at 2026-12-06_01-56-01)\n{task}")
    assert failure(str(path)) == "ValueError: l2 must be finite"
    with open(path, "a") as f:  # the latest failure is the one said
        f.write(f"Failure # 2 (occurred at 2026-12-06_01-57-00)\n{died}")
    assert failure(str(path)) == "worker lost"
    path.write_text(f"Failure # 1 (occurred at 2026-12-06_01-56-01)\n{node}")
    assert failure(str(path)) == "node lost"
    path.write_text("Failure # 1 (occurred at 2026-12-06_01-56-01)\n" + "x" * 300 + "\n")
    assert failure(str(path)) == "x" * 117 + "..."
    path.write_text("Failure # 1 (occurred at 2026-12-06_01-56-01)\n")
    assert failure(str(path)) == "empty error file"
    assert failure(str(tmp_path / "none.txt")) == failure(None) == "no error file"
