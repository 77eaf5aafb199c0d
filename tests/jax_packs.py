"""Packs trained on Keras's JAX backend, in a process of their own (a process's Keras has one
backend): `python -m tests.jax_packs` prints, as JSON, each case's packed and solo rows and
whether each member started from its solo trial's weights. TensorFlow is kept out of the
process: the engine must not need it there (GPU images often carry JAX alone)."""

import json
import os
import sys

CASES = {
    # a model of one's own with BatchNormalization and dropout: state and draws per member
    "bn_mlp": {"arch": "bn_mlp", "l2s": (0.0001, 0.001)},
    # a built-in classifier (TensorFlow packs it with its hand-written layers)
    "mlp64": {"arch": "mlp64", "l2s": (0.0, 0.001)},
    # a dense denoiser: another task's targets and loss
    "dae_dense": {"arch": "dae_dense", "l2s": (0.0, 0.001), "task": "denoise", "classifier": None,
                  "eval_levels": [0.0]},
}


def _configs(case):
    from sweeps.grids import trial_config

    spec = {k: v for k, v in CASES[case].items() if k != "l2s"}
    base = {"epochs": 2, "train_subset": 600, "test_subset": 300, "noise_type": "gaussian", "noise_scale": 0.2,
            **spec}
    return [trial_config({**base, "seed": s, "l2": l2}, {}) for s, l2 in zip((0, 1), CASES[case]["l2s"])]


def main():
    import keras
    import numpy as np

    import tests.user_models  # noqa: F401  (registers the models)
    from models.vectorized import VectorizedNet
    from tests.packs import train
    from tests.synthetic import learnable_mnist

    arrays = learnable_mnist(600, 300)
    out = {"backend": keras.backend.backend(), "tensorflow_loaded": sys.modules.get("tensorflow") is not None}
    for case in CASES:
        configs = _configs(case)
        packed, packed_weights = train(configs, arrays)
        solos = [train([c], arrays) for c in configs]
        out[case] = {
            "vectorized": isinstance(packed.engine.net, VectorizedNet),
            "same_start": [all(np.array_equal(a, b) for a, b in zip(packed_weights[0][i], solos[i][1][0][0]))
                           for i in range(len(configs))],
            "packed": packed.ledger.rows, "solo": [s[0].ledger.rows[0] for s in solos],
        }
    print(json.dumps(out, default=float))


if __name__ == "__main__":
    # Here only, not on import: the test that runs this module imports its CASES.
    os.environ["KERAS_BACKEND"] = "jax"
    sys.modules["tensorflow"] = None  # an import of TensorFlow fails in this process
    main()
