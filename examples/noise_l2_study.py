"""A noise x L2 study of a model of your own on arrays of your own, from a script.

    python examples/noise_l2_study.py            # MNIST (downloaded or cached), 3 x 2 x 3 configs, ~10 min
    python examples/noise_l2_study.py --tiny     # generated images, 4 configs: a minute

The model is a plain function returning a Keras model; every keyword option beyond
l2, input_shape and num_classes (here `width`) could be a grid axis too. The data is four
arrays. The figures and tables land in runs/noise_l2_study/report/.
"""

import argparse

import numpy as np

import noisesweep


def small_cnn(l2=0.0, input_shape=(28, 28, 1), num_classes=10, width=8):
    """Conv(width)-BatchNorm-ReLU-MaxPool-Flatten-Dense, L2 on both kernels."""
    import keras
    from keras import layers

    reg = keras.regularizers.l2(l2) if l2 else None
    return keras.Sequential([
        keras.Input(input_shape),
        layers.Conv2D(width, 3, padding="same", kernel_regularizer=reg),
        layers.BatchNormalization(), layers.ReLU(), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dense(num_classes, activation="softmax", kernel_regularizer=reg),
    ])


def generated_digits(n_train=600, n_test=200, seed=0):
    """MNIST-shaped images a small model learns: class k lights its own 6x6 patch."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, 10, n).astype(np.uint8)
        x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for k in range(10):
            r, c = 2 + 6 * (k // 4), 2 + 6 * (k % 4)
            x[y == k, r:r + 6, c:c + 6] = 230
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def study(tiny: bool) -> dict:
    """The grid: Gaussian noise scale x L2 factor x replicate seed."""
    if tiny:
        return {"arch": "small_cnn", "dataset": "digits", "noise_type": "gaussian", "noise_scale": [0.1, 0.5],
                "l2": 0.0, "seed": [0, 1], "epochs": 2}
    return {"arch": "small_cnn", "dataset": "digits", "noise_type": "gaussian", "noise_scale": [0.0, 0.3, 0.6],
            "l2": [0.0, 0.001], "seed": [0, 1, 2], "epochs": 3}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="generated images and 4 configs: a minute")
    p.add_argument("--storage-path", default="./runs")
    args = p.parse_args(argv)
    if args.tiny:
        arrays = generated_digits()
    else:
        from sweeps.data import load_dataset

        arrays = load_dataset("mnist").arrays()
    exp = noisesweep.run(study(args.tiny), models={"small_cnn": small_cnn}, datasets={"digits": arrays},
                         name="noise_l2_study", storage_path=args.storage_path, pack=2)
    print(exp.summary()[["noise_scale", "l2", "val_accuracy_mean", "val_accuracy_std", "vs_best"]].to_string())
    files = exp.report()
    print(f"report: {len(files)} files in {exp.path}/report")


if __name__ == "__main__":
    main()
