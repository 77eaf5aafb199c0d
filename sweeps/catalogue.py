"""The shipped grids as a person browses them (`noisesweep grids`, `--list`): each grid's
header comment read as fields, and one entry per grid with its configs, what it
reproduces and how long it takes."""

from __future__ import annotations

import os
import textwrap

from sweeps.grids import GRID_DIR, known_grids, load_grid


def header(name: str) -> dict:
    """A shipped grid's header comment as fields: `summary` (its first line) and each
    `# Key:` paragraph (Reproduces, Configs, Time), continuation lines joined."""
    fields: dict = {}
    key = None
    with open(os.path.join(GRID_DIR, f"{name}.yaml"), encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                break
            text = line[1:].strip()
            head, _, rest = text.partition(":")
            if key is None and head == name:
                key, fields["summary"] = "summary", rest.strip()
            elif head and " " not in head and head[0].isupper():
                key, fields[head] = head, rest.strip()
            elif key:
                fields[key] += " " + text
    return fields


def catalogue(width: int = 100) -> list[str]:
    """Every shipped grid as lines a person reads: its trials (and its tiny variant's),
    what it is, what it reproduces and how long it takes, from its header."""
    lines = []
    for name in known_grids():
        info = header(name)
        grid, small = load_grid(name), load_grid(f"{name}:tiny")
        if grid.search:
            size = (f"search of {grid.search['configs'] or 'as many'} configs x {grid.search['replicates']} replicates "
                    f"({name}:tiny {small.search['configs']} x {small.search['replicates']})")
        else:
            size = f"{len(grid.trials)} configs ({name}:tiny {len(small.trials)})"
        lines.append(f"{name}: {size}. {info.get('summary', '')}")
        for key in ("Reproduces", "Time"):
            if key in info:
                lines += textwrap.wrap(f"{key.lower()}: {info[key]}", width=width, initial_indent="  ",
                                       subsequent_indent="    ")
    return lines
