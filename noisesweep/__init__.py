"""noisesweep's Python API: a noise x L2 study from a script or a notebook.

    import noisesweep

    exp = noisesweep.run({"arch": "mine", "dataset": "digits", "noise_scale": [0, 0.2],
                          "l2": [0, 1e-4], "seed": [0, 1, 2], "epochs": 3},
                         models={"mine": build}, datasets={"digits": arrays}, pack=2)
    exp.summary()                        # mean ± std over replicate seeds, with significance
    exp.figure("accuracy_vs_noise")      # a matplotlib Figure
    exp.report("out/")                   # every table and figure, as `noisesweep report` writes them

    exp = noisesweep.load("runs/study-20261205-083405")   # any experiment folder, without Ray

The command line (`python sweeps/run.py`, `noisesweep run`) is the same runner: `run`'s
keyword options are its flags (`pack=2` is `--pack 2`, `storage_path=` `--storage-path`).
"""

from noisesweep.api import load, run
from noisesweep.experiment import Experiment

__all__ = ["Experiment", "load", "run"]
