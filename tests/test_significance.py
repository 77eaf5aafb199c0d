"""Welch's t-test and Holm's correction against values computed by hand, and the report's
marks on cells that cannot be told apart from the best."""

import math

import pytest

from analysis import report
from analysis.aggregate import summarize
from analysis.load import load_experiment
from analysis.significance import holm, welch
from tests.tune_layout import config, curve, write_trial


def t_two_sided_p(t: float, df: float, steps: int = 200000) -> float:
    """2 * P(T > |t|) for Student's t with `df` degrees of freedom, by Simpson's rule on
    the density (no scipy): the integral from 0 to |t|, subtracted from 1/2."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))
    f = lambda x: c * (1 + x * x / df) ** (-(df + 1) / 2)  # noqa: E731
    h = abs(t) / steps
    area = f(0) + f(abs(t)) + sum((4 if k % 2 else 2) * f(k * h) for k in range(1, steps))
    return 2 * (0.5 - area * h / 3)


def test_welch_by_hand():
    a, b = [0.90, 0.92, 0.94], [0.95, 0.96, 0.97]
    # means 0.92 and 0.96; sample variances 0.0004 and 0.0001; n = 3 each
    va, vb = 0.0004 / 3, 0.0001 / 3
    t = (0.92 - 0.96) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / 2 + vb**2 / 2)
    assert t == pytest.approx(-3.098387, abs=1e-6) and df == pytest.approx(2.941176, abs=1e-6)
    got = welch(a, b)
    assert got["t"] == pytest.approx(t) and got["df"] == pytest.approx(df)
    assert got["diff"] == pytest.approx(-0.04)
    assert got["p"] == pytest.approx(t_two_sided_p(t, df), abs=1e-7)
    assert 0.05 < got["p"] < 0.06  # not significant at 5 % with 3 replicates a side


def test_holm_by_hand():
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03; 2 x 0.03 = 0.06; 1 x 0.04 = 0.04, raised to 0.06
    assert holm([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.6]).tolist() == pytest.approx([1.0, 1.0])  # 2 x 0.5, 1 x 0.6 -> max 1.0


def test_each_cell_against_the_best_with_holm_and_marks(tmp_path):
    exp = tmp_path / "exp"
    finals = {0.0: [0.95, 0.96, 0.97], 0.1: [0.90, 0.92, 0.94], 0.5: [0.50, 0.51, 0.52], 1.0: [0.3]}
    for scale, accs in finals.items():
        for seed, acc in enumerate(accs):
            write_trial(exp, f"s{scale}_{seed}_0000{seed}", config(noise_scale=scale, seed=seed), curve(acc))
    summary = summarize(load_experiment(str(exp))).set_index("noise_scale")
    assert summary.loc[0.0, "vs_best"] == "best" and summary.loc[1.0, "vs_best"] == "not tested (n < 2)"
    close, far = welch(finals[0.1], finals[0.0]), welch(finals[0.5], finals[0.0])
    adjusted = holm([close["p"], far["p"]])
    for scale, result, p_holm in ((0.1, close, adjusted[0]), (0.5, far, adjusted[1])):
        row = summary.loc[scale]
        assert row["welch_t"] == pytest.approx(result["t"]) and row["welch_df"] == pytest.approx(result["df"])
        assert row["p"] == pytest.approx(t_two_sided_p(result["t"], result["df"]), abs=1e-7)
        assert row["p_holm"] == pytest.approx(p_holm)
        assert row["val_accuracy_diff"] == pytest.approx(sum(finals[scale]) / 3 - 0.96)
    # 2 tests: the close cell's p (0.05-0.06) doubled or kept stays >= 0.05; the far one's is tiny.
    assert summary.loc[0.1, "vs_best"] == "≈ best" and summary.loc[0.5, "vs_best"] == "worse"
    assert summary.loc[0.5, "p_holm"] == pytest.approx(2 * far["p"])  # the smaller p, times 2
    out = tmp_path / "report"
    assert report.main([str(exp), "--out", str(out)]) == 0
    text = (out / "summary.md").read_text()
    assert "| vs best (Holm p) |" in text and "≈ best (" in text and "worse (" in text
    assert "not tested (n < 2)" in text and "Holm's method" in (out / "report.md").read_text()


def test_learning_curve_panels_follow_the_l2_axis_by_value(tmp_path):
    from analysis.figures import panel_order

    exp = tmp_path / "exp"
    # best first would be 0.001, 1e-06, 0.0005; as text 0.0005, 0.001, 1e-06
    for l2, acc in ((1e-6, 0.95), (0.0005, 0.90), (0.001, 0.97)):
        for seed in (0, 1):
            write_trial(exp, f"l2{l2}_{seed}_0000{seed}", config(l2=l2, seed=seed), curve(acc + 0.001 * seed))
    summary = summarize(load_experiment(str(exp)))
    assert summary["l2"].tolist() == [0.001, 1e-6, 0.0005]  # the table: best first
    assert panel_order(summary, ["l2"], 12)["l2"].tolist() == [1e-6, 0.0005, 0.001]
    assert panel_order(summary, ["l2"], 2)["l2"].tolist() == [1e-6, 0.001]  # the best two, by value
