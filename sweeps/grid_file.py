"""A grid file's YAML, read as grids are written: `1e-3` is a number (YAML 1.1 wants
`1.0e-3`), and a key given twice in one mapping is an error (YAML would keep the last
silently). What cannot be read is one line naming the file (and the line)."""

from __future__ import annotations

import re

import yaml


class Unreadable(ValueError):
    """A grid file that cannot be read or is not YAML: the message names file and line."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` as a number (YAML 1.1 wants `1.0e-3`) and refuses a
    key given twice in one mapping (YAML would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` merges, and its keys may be overridden: that is what it is for
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} given twice in one mapping", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read(path: str):
    """The document of the YAML file at `path`; Unreadable when it cannot be."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.load(f, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise Unreadable(f"{path}:{at}: not valid YAML: {problem}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise Unreadable(f"{path}: cannot read: {e}") from None
    except RecursionError:  # lists or mappings nested thousands deep: no grid is
        raise Unreadable(f"{path}: not a grid: nested too deep to read") from None
