"""A grid's `search` section: checked like any grid, run through the runner and real Ray
Tune (Optuna's TPE, ASHA), each sampled config as a pack of its replicates, read back by
the report and the status command."""

import json
import os
import signal
import textwrap

import numpy as np
import pandas as pd
import pytest

from analysis.load import read_json_lines
from sweeps.grids import GridError, load_grid
from tests.sweeps_running import Runner, hold_trial_workers, release, rows_by_trial, run, runner_cmd, wait_until
from tests.synthetic import write_mnist_cache

BASE = """
    arch: mlp64
    dataset: mnist
    epochs: 3
    train_subset: 1500
    test_subset: 300
    validation: holdout
    holdout_size: 300
"""
SEARCH = """
    search:
      metric: val_accuracy
      replicates: 2
      configs: 3
      grace_epochs: 1
      space:
        l2: [loguniform, 1.0e-6, 1.0e-3]
        lr: [loguniform, 0.02, 0.3]
        momentum: [uniform, 0.0, 0.9]
"""


def grid_file(tmp_path, text):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("change,message", [
    (("replicates: 2", "replicates: 1"), "search.replicates = 1: must be an integer in [2, 1,000]"),
    (("replicates: 2", "replicates: 1000000"), "search.replicates = 1000000: must be an integer in [2, 1,000]"),
    (("grace_epochs: 1", "grace_epochs: 1\n      seed: 4294967296"), "search.seed = 4294967296: must be an integer in [0, "),
    (("metric: val_accuracy", "metric: accuracy"), "search.metric = 'accuracy': must be a validation metric"),
    (("grace_epochs: 1", "grace: 1"), "search.grace: unknown key"),
    (("[loguniform, 1.0e-6, 1.0e-3]", "[loguniform, 0, 1.0e-3]"), "search.space.l2 = ['loguniform', 0, 0.001]: "
                                                                   "loguniform needs low > 0"),
    (("[uniform, 0.0, 0.9]", "[uniform, 0.0, 1.5]"), "search.space.momentum = 1.5: must be a number in [0, 1)"),
    (("momentum: [uniform", "seed: [uniform"), "search.space.seed: not searched"),
    (("momentum: [uniform", "colour: [uniform"), "search.space.colour: unknown axis"),
    (("validation: holdout", "validation: test"), "search: needs validation: holdout"),
    (("epochs: 3", "epochs: [3, 4]"), "search: the grid's axes must take one value each"),
    (("configs: 3", "configs: null"), "search: give a budget"),
])
def test_a_bad_search_section_is_one_line_naming_file_and_key(tmp_path, change, message):
    text = (BASE + SEARCH).replace(*change)
    assert text != BASE + SEARCH
    path = grid_file(tmp_path, text)
    with pytest.raises(GridError) as err:
        load_grid(path)
    assert str(err.value).startswith(path + ": ") and message in str(err.value) and "\n" not in str(err.value)


def test_momentum_drawn_for_an_optimizer_without_one_is_refused(tmp_path):
    path = grid_file(tmp_path, BASE + "    optimizer: adam\n" + SEARCH)
    with pytest.raises(GridError, match="search.space: momentum = 0.9: only sgd and rmsprop take a momentum"):
        load_grid(path)


def packs_of(exp) -> list:
    """The experiment's pack folders, every step's, relative to it."""
    return sorted(os.path.relpath(os.path.join(root, d), exp) for root, dirs, _ in os.walk(exp)
                  for d in dirs if d.startswith("pack_"))


def test_a_search_stopped_by_ctrl_c_resumes_grows_and_reports(tmp_path):
    write_mnist_cache(tmp_path / "cache", n_train=1500, n_test=300)
    cmd, env = runner_cmd(tmp_path, BASE + SEARCH, "srch", "--report")
    exp = tmp_path / "runs" / "srch"
    first = Runner(cmd, env, tmp_path / "first.log")
    wait_until(lambda: any(rows_by_trial(exp).values()), what="a first reported epoch")
    held = hold_trial_workers(first.pid)  # Ctrl-C comes mid-run, however fast the machine
    first.proc.send_signal(signal.SIGINT)
    release(held)
    assert first.wait() == 130, first.output()[-3000:]
    # The configs in flight are not taken for ASHA's stops, and the way on is printed.
    assert "in flight when stopped" in first.output()
    assert "resume with: python sweeps/run.py --name srch" in first.output()

    # A grid that changes more than the budget does not grow the search: one line, exit 2.
    record = (exp / "noisesweep.json").read_bytes()
    bad = run([*runner_cmd(tmp_path, (BASE + SEARCH).replace("0.02, 0.3", "0.01, 0.3"), "srch")[0], "--resume"], env)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0, bad.stderr
    assert "it grows by its budget alone (search.configs, search.time_budget_min), and this grid changes space" \
        in bad.stderr
    assert (exp / "noisesweep.json").read_bytes() == record

    # Resumed with a budget of 4: the stopped step finishes its 3 configs, then a new step
    # samples the one still owed, its Optuna study told the 3 before it.
    grow, _ = runner_cmd(tmp_path, (BASE + SEARCH).replace("configs: 3", "configs: 4"), "srch")
    proc = run([*grow, "--resume", "--report"], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "config 3/3 ended" in proc.stdout and "config 4/4 ended" in proc.stdout  # counted across restarts
    assert "search: 3 configs sampled before this step, given to Optuna with their means; 1 to sample now" \
        in proc.stdout
    assert "4 configs tried (2 replicates each)" in proc.stdout
    assert "A new study created" not in first.output() + proc.stdout + proc.stderr  # Optuna's start-up line
    packs = packs_of(exp)
    assert len(packs) == 4 and sum(p.startswith("grow-2/") for p in packs) == 1

    # Each sampled config trained as its replicate seeds 0 and 1, with the same drawn values;
    # the searcher saw their mean every epoch.
    drawn = set()
    for pack in packs:
        members = json.loads((exp / pack / "members.json").read_text())
        params = [json.loads((exp / pack / m / "params.json").read_text()) for m in members]
        assert [p["seed"] for p in params] == [0, 1]
        assert len({(p["l2"], p["lr"], p["momentum"]) for p in params}) == 1
        drawn.add((params[0]["l2"], params[0]["lr"], params[0]["momentum"]))
        pack_rows = read_json_lines(str(exp / pack / "result.json"))[0]
        member_rows = [read_json_lines(str(exp / pack / m / "result.json"))[0] for m in members]
        for row in pack_rows:
            own = [r for rows in member_rows for r in rows if r["epoch"] == row["epoch"]]
            assert row["mean_val_accuracy"] == pytest.approx(np.mean([r["val_accuracy"] for r in own]))
    assert len(drawn) == 4  # the grown step drew a config of its own, not the first step's first again

    # The report's chosen config: the best hold-out mean among configs that ran every epoch,
    # its test accuracy the mean of its replicates' own (computed here from their logs).
    finals = {}
    for pack in packs:
        members = json.loads((exp / pack / "members.json").read_text())
        rows = [read_json_lines(str(exp / pack / m / "result.json"))[0] for m in members]
        if all(len(r) == 3 for r in rows):
            finals[pack] = ([r[-1]["val_accuracy"] for r in rows], [r[-1]["test_accuracy"] for r in rows])
    assert finals  # ASHA lets at least the first config run to its end
    best = max(finals.values(), key=lambda v: np.mean(v[0]))
    report_md = (exp / "report" / "report.md").read_text()
    assert "## Search: the chosen config" in report_md
    assert f"{np.mean(best[0]):.4f} ± {np.std(best[0], ddof=1):.4f}" in report_md
    assert f"{np.mean(best[1]):.4f} ± {np.std(best[1], ddof=1):.4f} (2)" in report_md
    assert (exp / "report" / "figures" / "search_trajectory.png").exists()
    assert len(pd.read_csv(exp / "report" / "search.csv")) == 4

    status = run([cmd[0], "-m", "sweeps.cli", "status", str(exp)], env)
    assert status.returncode == 0 and "srch: finished" in status.stdout, status.stdout + status.stderr
    assert "search: 4 of 4 configs tried (2 replicates each)" in status.stdout
    assert f"best mean val_accuracy (hold-out): {np.mean(best[0]):.4f}" in status.stdout

    # Resumed once more, a finished search trains nothing again.
    before = {p: (exp / p / "result.json").read_bytes() for p in packs}
    again = run([*grow, "--resume"], env)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert {p: (exp / p / "result.json").read_bytes() for p in packs} == before and packs_of(exp) == packs


def test_a_grown_searchs_optuna_study_holds_the_configs_tried_before():
    from sweeps.search import param_space, parse, tune_config

    base = {"arch": "mlp64", "epochs": 3, "validation": "holdout"}
    spec = parse({"metric": "val_accuracy", "replicates": 2, "configs": 5,
                  "space": {"lr": ["loguniform", 0.01, 0.3], "nesterov": ["choice", False, True]}}, base)
    before = [({"lr": 0.1, "nesterov": True}, 0.9), ({"lr": 0.02, "nesterov": False}, 0.8),
              ({"lr": 0.2, "nesterov": True}, None)]  # the last one errored: counted, not told
    config = tune_config(spec, base, max_concurrent=None, before=before)
    assert config.num_samples == 2  # 5 configs in all, 3 sampled before
    searcher = config.search_alg
    searcher.set_search_properties(config.metric, config.mode, param_space(base, spec))
    told = [(t.params, t.value) for t in searcher._ot_study.get_trials()]
    assert told == [({"lr": 0.1, "nesterov": True}, 0.9), ({"lr": 0.02, "nesterov": False}, 0.8)]


def stub_trial(status, epoch, value, lr):
    from ray.tune.experiment import Trial

    trial = Trial("__fake", config={"epochs": 4, "lr": lr}, stub=True)
    trial.set_status(status)
    if epoch:
        trial.update_last_result({"epoch": epoch, "mean_val_accuracy": value})
    return trial


def test_the_search_view_counts_configs_ended_before_a_restart_and_says_where_it_stands(tmp_path):
    import io

    from sweeps.console import SearchView

    spec = {"metric": "val_accuracy", "mode": "max", "configs": 5, "time_budget_min": 30, "space": {"lr": []}}
    # Two configs ended in an earlier run (restored: Tune sends no event for them), one
    # running now, one waiting.
    trials = [stub_trial("TERMINATED", 4, 0.91, 0.1), stub_trial("TERMINATED", 1, 0.95, 0.2),
              stub_trial("RUNNING", 2, 0.90, 0.3), stub_trial("PENDING", 0, None, 0.4)]
    out = io.StringIO()
    view = SearchView(spec, out=out, heartbeat_s=0)
    view.started -= 125
    view.on_step_end(0, trials)
    assert out.getvalue() == ("  search: 2/5 configs ended, 1 running (epoch 2/4), best so far 0.9500, 2m05s run, "
                              "budget 30 min\n")
    out.truncate(0), out.seek(0)
    trials[2].update_last_result({"epoch": 4, "mean_val_accuracy": 0.97})
    view.on_trial_complete(0, trials, trials[2])  # Tune says so while the trial still reads RUNNING
    assert out.getvalue() == "  config 3/5 ended after 4 epochs: lr=0.3: mean_val_accuracy 0.9700 | best so far 0.9700\n"


def test_the_search_view_of_a_grown_step_counts_the_configs_of_the_steps_before():
    import io

    from sweeps.console import SearchView

    spec = {"metric": "val_accuracy", "mode": "max", "configs": 4, "time_budget_min": None, "space": {"lr": []}}
    out = io.StringIO()
    view = SearchView(spec, out=out, heartbeat_s=0, earlier=[0.93, None, 0.96])  # one errored before
    trial = stub_trial("RUNNING", 4, 0.95, 0.3)
    view.on_trial_complete(0, [trial], trial)
    assert out.getvalue() == "  config 4/4 ended after 4 epochs: lr=0.3: mean_val_accuracy 0.9500 | best so far 0.9600\n"


def test_a_sampled_config_with_no_epoch_yet_reads_as_tried_and_not_started(tmp_path):
    """The first seconds of every new config: its pack has listed its members, none has
    reported. The status and the report read it (no crash), last, at epoch 0."""
    from analysis import search
    from analysis.load import load_experiment
    from tests.tune_layout import config, curve, write_trial

    exp = tmp_path / "srch"
    for lr, rows in ((0.05, curve(0.9)), (0.2, [])):
        for seed in (0, 1):
            write_trial(exp / f"pack_{lr}", f"m{seed:02d}", config(lr=lr, seed=seed),
                        [{**r, "timestamp": 100 + i} for i, r in enumerate(rows)])
        (exp / f"pack_{lr}" / "params.json").write_text(json.dumps({"replicates": 2, **config(lr=lr)}))
        (exp / f"pack_{lr}" / "members.json").write_text(json.dumps(["m00", "m01"]))
    spec = {"metric": "val_accuracy", "mode": "max", "configs": 3, "replicates": 2, "space": {"lr": []}}
    with pytest.warns(UserWarning, match="no epochs reported"):
        df = load_experiment(str(exp))
    table = search.configs(df, spec)
    assert table["lr"].tolist() == [0.05, 0.2] and table["last_epoch"].tolist() == [3, 0]
    assert table["complete"].tolist() == [True, False] and table["val_accuracy_mean"].iloc[0] == pytest.approx(0.9)
    assert search.chosen(table, spec)["lr"] == 0.05
