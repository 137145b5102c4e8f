"""``--set dotted.path=value`` overrides, applied to the raw mapping before validation.

Values are read as YAML scalars (``8`` is an int, ``true`` a bool, ``80 GB`` a string,
``[1, 2]`` a list). A path that names no field of the schema is reported by validation as an
unknown field, with the allowed names.

One rule for file paths: a path written in a scenario file is relative to that file, a path
given on the command line (``--set hardware=./my-chip.yaml``, ``--grid``) relative to the
current directory, as every other command-line path. So a relative file path set here is
made absolute from the current directory before the scenario's own directory can claim it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from simulator.errors import InputError
from simulator.profiles.catalog import looks_like_path
from simulator.profiles.yaml_source import parse_yaml_value

# Fields whose string value may name a file: (profiles and stacks also take built-in ids,
# told apart by looks_like_path); a trace or a rate trace is always a file.
_PROFILE_FIELDS = {("hardware",), ("model",), ("workload", "engine")}
_FILE_FIELDS = {("workload", "arrivals", "path"), ("workload", "arrivals", "rate_trace")}


def anchor_paths(path: tuple[str | int, ...], value: Any, base: Path | None = None) -> Any:
    """``value`` set at ``path`` with every relative file path in it made absolute from
    ``base`` (default the current directory; a measurements file passes its own folder).
    Mappings are searched: ``--set workload.arrivals={..., path: t.csv}``."""
    if isinstance(value, dict):
        return {key: anchor_paths((*path, key), item, base) for key, item in value.items()}
    if not isinstance(value, str) or not value:
        return value
    is_file = path in _FILE_FIELDS or (path in _PROFILE_FIELDS and looks_like_path(value))
    if not is_file or Path(value).expanduser().is_absolute():
        return value
    return str((base or Path.cwd()) / Path(value).expanduser())


def parse_assignment(text: str) -> tuple[list[str | int], Any]:
    """``PATH=VALUE`` as a key path (indices for digits) and the value read as YAML."""
    if "=" not in text:
        raise InputError(f"--set expects PATH=VALUE, got {text!r}")
    path_text, value_text = text.split("=", 1)
    path_text = path_text.strip()
    if not path_text or any(not part for part in path_text.split(".")):
        raise InputError(f"--set has an empty field name in {path_text!r}")
    value = parse_yaml_value(value_text) if value_text.strip() else ""
    path: list[str | int] = [int(p) if p.isdigit() else p for p in path_text.split(".")]
    return path, anchor_paths(tuple(str(p) for p in path), value)


def apply_overrides(data: dict[str, Any], assignments: list[str] | tuple[str, ...]) -> dict:
    """A deep copy of ``data`` with each ``PATH=VALUE`` assignment applied."""
    result = copy.deepcopy(data)
    for text in assignments:
        path, value = parse_assignment(text)
        node: Any = result
        for depth, key in enumerate(path[:-1]):
            if isinstance(node, list) and isinstance(key, int):
                if key >= len(node):
                    raise InputError(f"--set {text}: index {key} is past the end of "
                                     f"{'.'.join(map(str, path[:depth]))}")
                node = node[key]
                continue
            if not isinstance(node, dict):
                raise InputError(f"--set {text}: {'.'.join(map(str, path[:depth]))} is a value, "
                                 f"not a group of fields")
            key = str(key)  # a field name that happens to be digits, not an index
            if not isinstance(node.get(key), dict | list):
                if key in node and node[key] is not None and not isinstance(node[key], dict):
                    raise InputError(f"--set {text}: {'.'.join(map(str, path[:depth + 1]))} is "
                                     f"a value, not a group of fields")
                node[key] = {}
            node = node[key]
        last = str(path[-1]) if isinstance(node, dict) else path[-1]
        in_list = isinstance(node, list) and isinstance(last, int) and last < len(node)
        if in_list or isinstance(node, dict):
            node[last] = value
        else:
            raise InputError(f"--set {text}: cannot set {last!r} there")
    return result
