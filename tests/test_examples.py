"""The examples run as a user runs them, on their tiny variant: the script from the command
line, the notebook cell by cell in a real Jupyter kernel (nbclient); a model defined in the
notebook trains on Ray's workers, and its figures show in the notebook's outputs."""

import os
import subprocess
import sys

import nbformat
from nbclient import NotebookClient

from tests.sweeps_running import ROOT

EXAMPLES = os.path.join(ROOT, "examples")


def test_the_script_runs_its_study_and_writes_the_report(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(EXAMPLES, "noise_l2_study.py"), "--tiny",
                           "--storage-path", str(tmp_path / "runs")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PYTHONPATH": ROOT})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "4/4 configs finished" in done.stdout
    assert "val_accuracy_mean" in done.stdout
    report = tmp_path / "runs" / "noise_l2_study" / "report"
    assert (report / "figures" / "accuracy_vs_noise.png").stat().st_size > 10_000


def test_the_notebook_runs_and_shows_its_figures(tmp_path):
    nb = nbformat.read(os.path.join(EXAMPLES, "noise_l2_study.ipynb"), as_version=4)
    os.environ["NOISESWEEP_EXAMPLE_TINY"] = "1"  # the kernel inherits it
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    finally:
        del os.environ["NOISESWEEP_EXAMPLE_TINY"]
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "4/4 configs finished" in text
    run, summary, accuracy, curves = nb.cells[-4:]
    assert "Experiment(" in run.outputs[-1]["data"]["text/plain"]
    # The live view is one progress display updated in place, not terminal control codes.
    bars = [o for o in run.outputs if o.output_type == "display_data" and "<progress" in o["data"].get("text/html", "")]
    assert len(bars) == 1 and bars[0]["data"]["text/plain"].startswith("[4/4 configs done]"), run.outputs
    assert 'value="4" max="4"' in bars[0]["data"]["text/html"]
    assert "\x1b" not in text and "configs done" not in text
    assert "val_accuracy_mean" in summary.outputs[-1]["data"]["text/plain"]
    for cell in (accuracy, curves):  # each figure shown once, as an image
        images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(images) == 1, cell.outputs
    assert (tmp_path / "runs" / "notebook_study" / "noisesweep.json").exists()
