"""Benchmark: the same trials through the sweep runner (packed and alone) and as a plain
sequential Keras loop; and a pack's member-epochs per second against its size K.

Per architecture, it writes one grid (N seeds, Gaussian noise 0.1, E epochs,
a training subset), then times from process launch to exit:
  (a) `python sweeps/run.py --grid G` with its defaults (embedded Ray Tune, packed);
  (a') the same with `--pack 1` (every trial alone);
  (b) this script's `--loop` child: one Python process, data loaded once,
      each trial as the seed reports do it (TensorFlow's default threads and
      kernels: oneDNN off on CPUs without AVX-512 VNNI, where the runner turns
      it on), through the same data, noise and model code.
It prints wall times, their ratio, the overhead per trial (wall time x
concurrent slots minus the trials' own epoch time, per trial), the time from
launch to the first reported epoch, and how far the two ways' final
validation accuracies are apart.

    python bench/throughput.py --quick     # 20,000 images, 2 epochs, 4 trials per arch: < 5 min
    python bench/throughput.py             # all 60,000 images, 3 epochs, 4 trials per arch
    python bench/throughput.py --pack-sizes 1,4,16 --archs mlp64   # member-epochs/s vs K
    python bench/throughput.py --pack-sizes 1 --archs cnn --onednn both   # oneDNN on vs off
    NOISESWEEP_TASKS=tests.user_models python bench/throughput.py --pack-sizes 1,2,4 \
        --archs bn_resnet --subset 10000   # a model of one's own (models.vectorized)

`--pack-sizes` trains, for each K, one pack of K members (own seeds, own Gaussian noise,
full MNIST or `--subset` images, batch 128 or `--batch-size`) per CPU, all at once and each on one thread, as the runner's
packed trials do; it times each pack's second epoch (the first compiles) and prints the
whole machine's member-epochs per second.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The user's own kernel setting, read before anything imports sweeps (which sets oneDNN on
# in this process's environment): the loop child runs with it, as the seeds ran.
USER_ONEDNN = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
sys.path.insert(0, ROOT)


def write_grid(folder: str, arch: str, trials: int, epochs: int, subset: int | None) -> str:
    path = os.path.join(folder, f"bench_{arch}.yaml")
    with open(path, "w") as f:
        f.write(f"arch: {arch}\ndataset: mnist\nnoise_type: gaussian\nnoise_scale: 0.1\n"
                f"epochs: {epochs}\nseed: {list(range(trials))}\n"
                + (f"train_subset: {subset}\n" if subset else ""))
    return path


def run_sweep(grid: str, folder: str, extra: list[str]) -> dict:
    """Launch the runner as a user would; watch for the first result row."""
    storage = os.path.join(folder, "runs")
    os.makedirs(folder, exist_ok=True)
    cmd = [sys.executable, "sweeps/run.py", "--grid", grid, "--name", "b", "--storage-path", storage, *extra]
    log = open(os.path.join(folder, "sweep.log"), "w+")
    t0 = time.perf_counter()
    # Output to a file: a pipe nobody drains while polling fills up and blocks the runner.
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    first = None
    while proc.poll() is None:
        if first is None and any(os.path.getsize(p) for p in glob.glob(os.path.join(storage, "b", "*", "result.json"))
                                 + glob.glob(os.path.join(storage, "b", "*", "*", "result.json"))):
            first = time.perf_counter() - t0
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    log.seek(0)
    out = log.read()
    log.close()
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed ({proc.returncode}):\n{out[-3000:]}")
    from analysis.load import read_json_lines, trial_dirs

    finals, slot_seconds = {}, {}
    for folder in trial_dirs(os.path.join(storage, "b")):  # a pack's members, each a trial
        with open(os.path.join(folder, "params.json")) as f:
            seed = json.load(f)["seed"]
        rows = read_json_lines(os.path.join(folder, "result.json"))[0]
        finals[seed] = rows[-1]["val_accuracy"]
        # A pack's members share its epochs: count each pack epoch once.
        for r in rows:
            slot_seconds[(os.path.dirname(folder) if "_m" in os.path.basename(folder) else folder, r["epoch"])] = \
                r["epoch_time_s"]
    return {"wall": wall, "first_epoch": first, "train_s": sum(slot_seconds.values()), "acc": finals}


def run_loop(grid: str) -> dict:
    t0 = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env.update({"TF_ENABLE_ONEDNN_OPTS": USER_ONEDNN} if USER_ONEDNN is not None else {})
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--loop", grid], cwd=ROOT,
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"loop failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"wall": wall, "first_epoch": result["first_epoch"] + 0.0, **result}


def loop_child(grid_path: str) -> None:
    """The seeds' way: one process, data once, one model after another."""
    t0 = time.perf_counter()
    import keras  # TensorFlow before sweeps (which turns oneDNN on): the kernels this child was given

    from sweeps.data import load_dataset
    from sweeps.grids import load_grid
    from sweeps.data.arrays import num_classes_of
    from sweeps.optimizers import steps_per_epoch
    from sweeps.plain_keras import classifier_data, compiled_model

    grid = load_grid(grid_path)
    arrays = load_dataset("mnist", log=lambda line: None).arrays()
    epoch_times, finals, first = [], {}, None

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            nonlocal first
            epoch_times.append(time.perf_counter() - self.t)
            first = first if first is not None else time.perf_counter() - t0

    for config in grid.trials:
        keras.utils.set_random_seed(config["seed"])
        data = classifier_data(config, arrays)
        (x, y), val = data["train"], data["val"]
        model = compiled_model(config, x.shape[1:], num_classes_of(arrays), steps_per_epoch(len(x), config))
        history = model.fit(x, y, batch_size=config["batch_size"], epochs=config["epochs"], validation_data=val,
                            callbacks=[Timer()], verbose=0)
        finals[config["seed"]] = history.history["val_accuracy"][-1]
    print(json.dumps({"train_s": sum(epoch_times), "acc": finals, "first_epoch": first}))


def pack_child(arch: str, k: int, first_seed: int, subset: int, batch: int) -> None:
    """One pack of k members on one thread: its epoch times, as JSON."""
    from sweeps.quiet import import_tensorflow  # as a runner's worker does: sweeps' TensorFlow settings first

    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from sweeps.data import load_dataset
    from sweeps.grids import trial_config
    from sweeps.tasks.base import unjudged
    from sweeps.training.pack import Pack

    arrays = load_dataset("mnist", log=lambda line: None).arrays()
    members = [trial_config({"arch": arch, "seed": first_seed + i, "noise_type": "gaussian", "noise_scale": 0.1,
                             "batch_size": batch, "train_subset": subset or None}, {}) for i in range(k)]
    members = [unjudged(m) for m in members]  # a denoiser's judge is not timed here
    pack = Pack(members, arrays)
    times = []
    for _ in range(2):
        t = time.perf_counter()
        pack.train_epoch()
        times.append(time.perf_counter() - t)
    print(json.dumps({"times": times, "net": type(pack.engine.net).__name__}))


def pack_sizes(archs: list[str], sizes: list[int], slots: int, kernels: list[str], subset: int | None,
               batch: int) -> None:
    print(f"member-epochs per second, {f'{subset:,} images' if subset else 'full MNIST'}, batch {batch}, one pack per "
          f"CPU ({slots}), 1 thread each")
    print(f"{'arch':<11} {'K':>3} {'oneDNN':>6} {'s/epoch (2nd)':>14} {'member-epochs/s':>16} {'x K=1':>6}  net")
    for arch in archs:
        base: dict = {}
        for k in sizes:
            for onednn in kernels:  # one after the other for each K: the ratio side by side
                env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}
                procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--pack-child", arch, str(k),
                                           str(100 * j), str(subset or 0), str(batch)], cwd=ROOT, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True, env=env) for j in range(slots)]
                done = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
                seconds = [d["times"][1] for d in done]
                rate = sum(k / t for t in seconds)
                base.setdefault(onednn, rate)
                print(f"{arch:<11} {k:>3} {'on' if onednn == '1' else 'off':>6} {max(seconds):14.2f} {rate:16.3f} "
                      f"{rate / base[onednn]:6.2f}  {done[0]['net']}", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="20,000 training images, 2 epochs")
    p.add_argument("--archs", default="mlp64,mlp500_300,cnn")
    p.add_argument("--trials", type=int, default=4)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--subset", type=int, default=None)
    p.add_argument("--loop", metavar="GRID", help=argparse.SUPPRESS)
    p.add_argument("--pack-child", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=128, help="with --pack-sizes: the packs' batch size")
    p.add_argument("--pack-sizes", default=None, help="K values: member-epochs/s of packs of each size")
    p.add_argument("--onednn", choices=("1", "0", "both"), default=None,
                   help="with --pack-sizes: TensorFlow's oneDNN kernels on, off, or both "
                        "(default: as the runner would run them, on unless TF_ENABLE_ONEDNN_OPTS says otherwise)")
    p.add_argument("sweep_args", nargs="*", help="extra flags for sweeps/run.py (after --)")
    args = p.parse_args()
    if args.loop:
        loop_child(args.loop)
        return 0
    if args.pack_child:
        arch, k, seed, subset, batch = args.pack_child
        pack_child(arch, int(k), int(seed), int(subset), int(batch))
        return 0
    if args.pack_sizes:
        pack_sizes(args.archs.split(","), [int(v) for v in args.pack_sizes.split(",")], os.cpu_count(),
                   ["1", "0"] if args.onednn == "both" else [args.onednn or USER_ONEDNN or "1"], args.subset,
                   args.batch_size)
        return 0
    epochs = args.epochs or (2 if args.quick else 3)
    subset = args.subset or (20000 if args.quick else None)
    slots = os.cpu_count()
    print(f"{args.trials} trials per arch, {epochs} epochs, {subset or 60000} training images, {slots} CPUs")
    print(f"{'arch':<11} {'packed s':>8} {'alone s':>8} {'loop s':>8} {'packed/loop':>11} {'alone/loop':>10} "
          f"{'ovh/trial packed':>16} {'ovh/trial loop':>15} {'1st epoch packed':>16} {'1st epoch loop':>15} "
          f"{'max |dacc|':>10}")
    with tempfile.TemporaryDirectory(prefix="noisesweep-bench-") as tmp:
        for arch in args.archs.split(","):
            grid = write_grid(tmp, arch, args.trials, epochs, subset)
            sweep = run_sweep(grid, os.path.join(tmp, arch), args.sweep_args)
            alone = run_sweep(grid, os.path.join(tmp, arch + "_alone"), [*args.sweep_args, "--pack", "1"])
            loop = run_loop(grid)
            n = args.trials
            # Overhead in CPU-slot seconds: the sweep holds `slots` slots for its wall time.
            ovh_sweep = (sweep["wall"] * min(slots, n) - sweep["train_s"]) / n
            ovh_loop = (loop["wall"] - loop["train_s"]) / n
            dacc = max(abs(sweep["acc"][s] - loop["acc"][str(s)]) for s in sweep["acc"])
            print(f"{arch:<11} {sweep['wall']:8.1f} {alone['wall']:8.1f} {loop['wall']:8.1f} "
                  f"{sweep['wall'] / loop['wall']:11.2f} {alone['wall'] / loop['wall']:10.2f} "
                  f"{ovh_sweep:16.2f} {ovh_loop:15.2f} {sweep['first_epoch']:16.1f} {loop['first_epoch']:15.1f} "
                  f"{dacc:10.4f}", flush=True)
            # Final val accuracy by seed: how far the two ways are apart against how far
            # replicates are (the loop runs TensorFlow's default kernels, the runner oneDNN's).
            for way, acc in (("packed", sweep["acc"]), ("alone", alone["acc"]), ("loop", loop["acc"])):
                print(f"  {way} val accuracy by seed: " + ", ".join(f"{s}: {acc[s]:.4f}" for s in sorted(acc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
