"""The points of a sweep: ``--grid`` axes crossed, ``--zip`` axes zipped, ``--seeds`` replicated.

A point is a list of ``--set PATH=VALUE`` overrides plus the labels that identify it in the
result table. Its :attr:`Point.key` is a digest of the overrides alone, so the same point has
the same key in every run of the same command (what ``--resume`` relies on), whatever the
order in which the points finish.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.errors import InputError
from simulator.profiles.yaml_source import parse_yaml_value

Axis = tuple[str, tuple[str, ...]]  # (dotted path, value texts)


@dataclass(frozen=True)
class Point:
    """One scenario of a study: overrides applied to the base, and its table labels."""

    overrides: tuple[str, ...]
    labels: tuple[tuple[str, Any], ...] = ()

    @property
    def key(self) -> str:
        """A stable 16-hex-digit digest of the overrides (the ``point`` column)."""
        text = json.dumps(list(self.overrides), separators=(",", ":"))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def label_dict(self) -> dict[str, Any]:
        """The labels as a mapping from column to value, for the point's row."""
        return dict(self.labels)


def split_values(text: str) -> list[str]:
    """Split ``a,b,[1, 2],{x: 1}`` on the commas outside brackets, braces and quotes."""
    parts: list[str] = []
    current: list[str] = []
    depth, quote = 0, ""
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def parse_axis(text: str, flag: str = "--grid") -> Axis:
    """``PATH=V1,V2,...`` -> (PATH, (V1, V2, ...)); every value must be non-empty."""
    if "=" not in text:
        raise InputError(f"{flag} expects PATH=V1,V2,..., got {text!r}")
    path, values_text = (part.strip() for part in text.split("=", 1))
    if not path or any(not part for part in path.split(".")):
        raise InputError(f"{flag} {text}: the field path {path!r} has an empty name")
    values = split_values(values_text)
    if not values or any(v == "" for v in values):
        raise InputError(f"{flag} {text}: give one or more comma-separated values, none empty")
    return path, tuple(values)


def label_value(text: str) -> Any:
    """A value text as it reads in YAML (``8`` -> 8, ``bf16`` -> 'bf16'), for table columns."""
    value = parse_yaml_value(text, "--grid")
    return value if isinstance(value, str | int | float | bool) else text


def build_points(grid: Sequence[Axis] = (), zipped: Sequence[Axis] = (), seeds: int = 0,
                 base_seed: int = 0) -> list[Point]:
    """The cartesian product of the ``grid`` axes and the zipped axes (one combined axis).

    With ``seeds`` > 0 every point is run ``seeds`` times with ``seed`` = base_seed,
    base_seed + 1, ...; the ``seed`` column then tells the replications apart.
    """
    paths = [path for path, _ in (*grid, *zipped)]
    duplicated = sorted({p for p in paths if paths.count(p) > 1})
    if duplicated:
        raise InputError(f"each field may be swept once; repeated: {', '.join(duplicated)}")
    if seeds and "seed" in paths:
        raise InputError("--seeds sets the seed itself; do not also sweep 'seed'")
    if seeds < 0:
        raise InputError(f"--seeds must be a positive number of replications, got {seeds}")
    for path, values in grid:
        if len(set(values)) != len(values):
            raise InputError(f"--grid {path}: a value is listed twice")
    lengths = {len(values) for _, values in zipped}
    if len(lengths) > 1:
        detail = ", ".join(f"{path} has {len(values)}" for path, values in zipped)
        raise InputError(f"--zip lists must have the same length: {detail}")
    axes: list[list[tuple[tuple[str, str], ...]]] = [
        [((path, value),) for value in values] for path, values in grid]
    if zipped:
        rows = [tuple((path, values[i]) for path, values in zipped)
                for i in range(lengths.pop())]
        if len(set(rows)) != len(rows):
            raise InputError("--zip: a combination of values is listed twice")
        axes.append(rows)
    points = []
    for combo in itertools.product(*axes):
        pairs = [pair for group in combo for pair in group]
        overrides = tuple(f"{path}={value}" for path, value in pairs)
        labels = tuple((path, label_value(value)) for path, value in pairs)
        if not seeds:
            points.append(Point(overrides, labels))
            continue
        for i in range(seeds):
            seed = base_seed + i
            points.append(Point((*overrides, f"seed={seed}"), (*labels, ("seed", seed))))
    return points


def axis_columns(points: Sequence[Point]) -> list[str]:
    """The label columns of ``points``, in first-seen order."""
    columns: dict[str, None] = {}
    for point in points:
        columns.update((name, None) for name, _ in point.labels)
    return list(columns)
