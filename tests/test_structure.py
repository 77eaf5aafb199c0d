"""The structure the code promises: no import cycle between the project's modules (at
module level or inside functions), the analysis takes only the schema from sweeps/, and
the shared vocabulary refuses what it does not know."""

import ast
import os

import numpy as np
import pytest

from sweeps import noise, schema

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sweeps", "models", "analysis")


def project_modules() -> dict:
    """Module name -> file, for every .py under the project's packages."""
    out = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for f in files:
                if f.endswith(".py"):
                    rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, ".")
                    out[rel.removesuffix(".__init__")] = os.path.join(folder, f)
    return out


def imports_of(path: str, modules: dict) -> set:
    """Project modules a file imports anywhere in it (functions included)."""
    found = set()
    for node in ast.walk(ast.parse(open(path).read())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                     for a in node.names]
        for name in names:
            # Importing a.b.c runs a and a.b first.
            parts = name.split(".")
            found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(modules)
    return found


def test_no_import_cycle_between_project_modules():
    modules = project_modules()
    graph = {m: imports_of(path, modules) - {m} for m, path in modules.items()}
    # A package's __init__ runs before its modules: that edge is not a cycle by itself.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(stack[stack.index(d):] + [d])
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)


def test_analysis_takes_only_the_schema_from_sweeps():
    modules = project_modules()
    for m, path in modules.items():
        if m.startswith("analysis"):
            from_sweeps = {d for d in imports_of(path, modules) if d.startswith("sweeps")}
            assert from_sweeps <= {"sweeps", "sweeps.schema"}, (m, from_sweeps)


@pytest.mark.parametrize("last, wanted, diverged, errored, clean, status", [
    (5, 5, False, False, True, "finished"),
    (5, 5, True, False, True, "diverged"),  # a NaN loss is a result, whatever else
    (3, 5, False, True, True, "errored"),
    (3, 5, False, False, True, "unfinished"),
    (5, 5, False, False, False, "unfinished"),  # a damaged log is not taken as finished
    (None, 5, False, False, True, "unfinished"),
    (5, 5, False, True, True, "finished"),  # retried to the end after an error
])
def test_one_rule_decides_a_trials_status(last, wanted, diverged, errored, clean, status):
    assert schema.trial_status(last, wanted, diverged, errored, clean) == status
    assert status in schema.STATUSES


def test_unknown_metrics_are_refused_where_reported():
    schema.check_metrics({"loss": 1.0, "epoch": 2, "test_accuracy": 0.9, "node_id": "n"})
    with pytest.raises(schema.SchemaError, match="unknown metric.*test_acc"):
        schema.check_metrics({"test_acc": 0.9})


def test_older_configs_read_in_todays_form():
    assert schema.upgrade_config({"arch": "vae", "kind": "denoise", "seed": 1}) == \
        {"arch": "vae", "task": "vae", "seed": 1}
    assert schema.upgrade_config({"arch": "dae_dense", "kind": "denoise"})["task"] == "denoise"
    assert schema.upgrade_config({"arch": "mlp64"})["task"] == "classify"
    assert schema.label("val_loss", "classify") == "validation loss (cross-entropy)"


def test_every_noise_type_has_its_own_adder_and_unknown_types_are_errors():
    assert noise.NOISE_TYPES == ("none", *noise.NOISES)
    images = np.full((2, 28, 28), 128, np.uint8)
    with pytest.raises(ValueError, match="noise_type must be one of"):
        noise.noisy_split(images, "train", seed=0, noise_type="speckle", noise_scale=0.1)
