"""Loading scenarios from files, with ``--set`` overrides; the entry point of the Python API."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simulator.errors import InputError, InputErrors
from simulator.profiles.overrides import apply_overrides, parse_assignment
from simulator.profiles.scenario import Scenario
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import YamlDocument, read_yaml


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read, override and validate a scenario file.

    Raises :class:`simulator.errors.XpusimError` (with file, line and field path) for any
    problem in the input.
    """
    doc = read_yaml(path)
    if not isinstance(doc.data, dict):
        raise InputError("a scenario must be a mapping of fields (name, hardware, cluster, "
                         "model, workload, ...)", file=doc.file)
    data = apply_overrides(doc.data, overrides)
    if isinstance(data.get("name"), str):
        data = {**data, "name": overridden_name(data["name"], overrides)}
    return scenario_from_dict(data, doc=doc, base_dir=Path(path).parent, overrides=overrides)


def overridden_name(name: str, overrides: list[str] | tuple[str, ...] | Sequence[str]) -> str:
    """The scenario's title with the ``--set`` overrides that changed it appended: a file
    titled "... on 8 x H100 SXM (TP8)" run with ``--set hardware=mi300x`` must not be
    reported under its old title alone. An override of ``name`` itself is the title."""
    if not overrides or any(parse_assignment(o)[0] == ["name"] for o in overrides):
        return name
    return f"{name}, with --set {', '.join(_short(o.strip(), 60) for o in overrides)}"


def scenario_from_dict(data: dict[str, Any], *, doc: YamlDocument | None = None,
                       base_dir: str | Path | None = None,
                       overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Validate a scenario given as a mapping (e.g. built in a notebook)."""
    try:
        return validate(Scenario, data, doc, context={"base_dir": base_dir})
    except InputErrors as exc:
        raise _blame_overrides(exc, overrides) from None


def _blame_overrides(exc: InputErrors, overrides: list[str] | tuple[str, ...]) -> InputErrors:
    """Errors inside a path that ``--set`` wrote are reported against the --set, not the file."""
    paths = {".".join(map(str, parse_assignment(o)[0])): o for o in overrides}
    for error in exc.errors:
        blamed = [text for dotted_path, text in paths.items()
                  if error.path and (error.path == dotted_path
                                     or error.path.startswith(dotted_path + ".")
                                     or dotted_path.startswith(error.path + "."))]
        if blamed:
            error.file = f"--set {_short(blamed[0])}"
        elif overrides:
            error.message += f" (after --set {_short(' '.join(overrides))})"
    return InputErrors(exc.errors)


def _short(text: str, limit: int = 80) -> str:
    """An override as shown in a message: cut short (a value can be a whole file's worth)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
