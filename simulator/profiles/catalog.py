"""The built-in hardware, model and serving-stack profiles, found by id.

In a source checkout they live at the repository top (``hardware_profiles/``,
``model_profiles/``, ``serving_stacks/``); an installed wheel carries copies under
``simulator/_data/``. Either way ``hardware_ids()`` lists them and
``load_hardware("h100-sxm")`` loads one (``stack_ids()``, ``load_stack("vllm-0.6")``). A reference
that looks like a path (has a ``/`` or ends in ``.yaml``/``.yml``) is read as a file instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

from simulator.errors import InputError, UnknownProfile
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.model_alias import is_alias, resolve_alias
from simulator.profiles.serving_stack import ServingStack
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import read_yaml

_PACKAGE = Path(__file__).resolve().parent.parent


def _builtin_dir(name: str) -> Path:
    packaged = _PACKAGE / "_data" / name
    if packaged.is_dir():
        return packaged
    return _PACKAGE.parent / name


def hardware_dir() -> Path:
    """The folder of the built-in hardware profiles (in the wheel, or at the top of a checkout)."""
    return _builtin_dir("hardware_profiles")


def model_dir() -> Path:
    """The folder of the built-in model profiles (in the wheel, or at the top of a checkout)."""
    return _builtin_dir("model_profiles")


def stack_dir() -> Path:
    """The folder of the built-in serving stacks (in the wheel, or at the top of a checkout)."""
    return _builtin_dir("serving_stacks")


def _ids(directory: Path) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def hardware_ids() -> list[str]:
    """The ids of the built-in hardware profiles, sorted."""
    return _ids(hardware_dir())


def model_ids() -> list[str]:
    """The ids of the built-in model profiles, sorted."""
    return _ids(model_dir())


def stack_ids() -> list[str]:
    """The ids of the built-in serving stacks, sorted."""
    return _ids(stack_dir())


def looks_like_path(ref: str) -> bool:
    """Whether a profile reference is a file path rather than a built-in id."""
    return "/" in ref or "\\" in ref or ref.endswith((".yaml", ".yml"))


def close_matches(ref: str, ids: list[str]) -> str:
    """The ids a mistyped ``ref`` probably meant, or all ids when none is close."""
    near = difflib.get_close_matches(ref, ids, n=4, cutoff=0.5)
    near += [i for i in ids if ref and ref.lower() in i and i not in near][: 4 - len(near)]
    if near:
        return "did you mean " + ", ".join(near) + "?"
    return "known: " + ", ".join(ids)


def unknown_id_message(kind: str, ref: str, ids: list[str]) -> str:
    """The message for an unknown id: the close matches (every id for serving stacks: there
    are few, and a user choosing one wants the list) and how to list or give a file instead."""
    command = ("profiles" if kind.startswith("hardware")
               else "stacks" if kind.startswith("serving") else "models")
    hint = ("known: " + ", ".join(ids) if command == "stacks" else close_matches(ref, ids))
    return (f"unknown {kind} {ref!r}; {hint} (`xpusim {command} list` shows all; or give a "
            f"path to a YAML file)")


def _resolve(ref: str, directory: Path, kind: str, base_dir: Path | None) -> Path:
    if looks_like_path(ref):
        path = Path(ref)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return path
    path = directory / f"{ref}.yaml"
    if not path.exists():
        raise LookupError(unknown_id_message(kind, ref, _ids(directory)))
    return path


def hardware_path(ref: str, base_dir: Path | None = None) -> Path:
    """The file of a hardware profile reference (``LookupError`` for an unknown id)."""
    return _resolve(ref, hardware_dir(), "hardware profile", base_dir)


def model_path(ref: str, base_dir: Path | None = None) -> Path:
    """The file of a model profile reference (``LookupError`` for an unknown id)."""
    return _resolve(ref, model_dir(), "model", base_dir)


def stack_path(ref: str, base_dir: Path | None = None) -> Path:
    """The file of a serving-stack reference (``LookupError`` for an unknown id)."""
    return _resolve(ref, stack_dir(), "serving stack", base_dir)


Profile = TypeVar("Profile", HardwareProfile, ModelProfile, ServingStack)


@cache
def _load_file(kind: type[Profile], path: Path, mtime_ns: int) -> Profile:
    """A profile file read and validated once per (kind, file, modification time)."""
    doc = read_yaml(path)
    _require_mapping(doc.data, str(path))
    return validate(kind, doc.data, doc)


@cache
def _load_model_file(path: Path, mtime_ns: int) -> ModelProfile:
    """A model profile file read once per modification time; an alias file takes its
    architecture from the profile it names (``model_alias``)."""
    doc = read_yaml(path)
    _require_mapping(doc.data, str(path))
    if is_alias(doc.data):
        return resolve_alias(doc, path, load_model)
    return validate(ModelProfile, doc.data, doc)


def _load(kind: type[Profile], locate: Callable[[str, Path | None], Path], ref: str | Path,
          base_dir: Path | None) -> Profile:
    """Locate ``ref`` (an id or a path) with ``locate`` and load it as ``kind``."""
    try:
        path = locate(str(ref), base_dir)
    except LookupError as exc:
        raise UnknownProfile(str(exc)) from None
    return _load_file(kind, path.resolve(), _mtime(path))


def _mtime(path: Path) -> int:
    """Part of the cache key, so that an edited file is read again (notebooks, sweeps)."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return -1  # missing: read_yaml reports it


def _require_mapping(data: object, file: str) -> None:
    if not isinstance(data, dict):
        raise InputError(f"expected a mapping of fields at the top level, got "
                         f"{type(data).__name__}", file=file)


def load_hardware(ref: str | Path, base_dir: Path | None = None) -> HardwareProfile:
    """Load a hardware profile by built-in id or path. Raises InputError for bad input."""
    return _load(HardwareProfile, hardware_path, ref, base_dir)


def load_model(ref: str | Path, base_dir: Path | None = None) -> ModelProfile:
    """Load a model profile by built-in id or path. Raises InputError for bad input."""
    try:
        path = model_path(str(ref), base_dir)
    except LookupError as exc:
        raise UnknownProfile(str(exc)) from None
    return _load_model_file(path.resolve(), _mtime(path))


def load_stack(ref: str | Path, base_dir: Path | None = None) -> ServingStack:
    """Load a serving stack by built-in id or path. Raises InputError for bad input."""
    return _load(ServingStack, stack_path, ref, base_dir)
