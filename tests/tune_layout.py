"""Experiment folders in Ray Tune's file layout, with values the tests choose."""

import csv
import json
import os

TUNE_KEYS = {"done": False, "should_checkpoint": True, "node_ip": "127.0.0.1", "hostname": "vm"}


def write_trial(exp, name, config, epochs_metrics, truncate_last=False, error=False):
    """One trial folder: params.json, result.json (a JSON line per epoch), progress.csv."""
    path = os.path.join(exp, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "params.json"), "w") as f:
        json.dump(config, f, indent=2)
    rows = []
    for i, metrics in enumerate(epochs_metrics, 1):
        rows.append({**metrics, "epoch": i, "training_iteration": i, "trial_id": name[-11:],
                     "pid": 100 + i, "node_id": "n1", "diverged": metrics.get("diverged", False),
                     "config": config, **TUNE_KEYS})
    lines = [json.dumps(r) for r in rows]
    text = "\n".join(lines) + ("\n" if lines else "")
    if truncate_last and lines:
        text = text[: -len(lines[-1]) // 2 - 1]
    with open(os.path.join(path, "result.json"), "w") as f:
        f.write(text)
    if rows:
        with open(os.path.join(path, "progress.csv"), "w", newline="") as f:
            flat = [{k: v for k, v in r.items() if k != "config"} for r in rows]
            # As Tune: the columns of the first row; later keys (a final evaluation) stay out.
            writer = csv.DictWriter(f, fieldnames=list(flat[0]), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(flat)
    if error:
        with open(os.path.join(path, "error.txt"), "w") as f:
            f.write("Failure # 1\nRuntimeError: boom\n")
    return path


def config(**kw):
    base = {"arch": "mlp64", "dataset": "mnist", "noise_type": "gaussian", "noise_scale": 0.0,
            "noise_target": "both", "l2": 0.0, "optimizer": "sgd", "lr": 0.1, "batch_size": 128,
            "epochs": 3, "seed": 0, "train_subset": None, "loss_fn": "sparse_categorical_crossentropy"}
    return {**base, **kw}


def curve(final_acc, epochs=3, final_loss=None):
    """Per-epoch metrics rising linearly to `final_acc` at the last epoch."""
    final_loss = 1 - final_acc if final_loss is None else final_loss
    return [{"loss": final_loss * (epochs + 1 - e), "accuracy": final_acc * e / epochs,
             "val_loss": final_loss * (epochs + 1 - e) + 0.01, "val_accuracy": final_acc * e / epochs,
             "epoch_time_s": 1.0} for e in range(1, epochs + 1)]
