"""Turning pydantic's ValidationError into messages that say where, what and what is allowed.

Each error becomes ``FILE:LINE: dotted.field.path: message``; an unknown field lists the
allowed ones; a wrong value shows what was given.
"""

from __future__ import annotations

import types
import typing
from typing import Any, TypeVar

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from simulator.errors import InputError, InputErrors
from simulator.profiles.yaml_source import Loc, YamlDocument

M = TypeVar("M", bound=BaseModel)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and Optional wrappers."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _union_member(tp: Any, tag: str) -> Any | None:
    """The member of a discriminated union whose tag (a Literal field or a Tag) is ``tag``."""
    for member in typing.get_args(tp):
        if typing.get_origin(member) is typing.Annotated:
            tags = [m for m in member.__metadata__ if isinstance(m, Tag)]
            if any(t.tag == tag for t in tags):
                return _unwrap(member)
        member = _unwrap(member)
        if isinstance(member, type) and issubclass(member, BaseModel):
            for info in member.model_fields.values():
                if typing.get_origin(info.annotation) is typing.Literal and tag in typing.get_args(
                    info.annotation
                ):
                    return member
    return None


def resolve_loc(root: type[BaseModel], loc: Loc) -> tuple[list[str | int], Any]:
    """Walk ``loc`` through the schema: the user-visible path and the type at its end."""
    shown: list[str | int] = []
    current: Any = root
    for segment in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(segment))
            shown.append(segment)
            current = info.annotation if info else None
        elif origin is dict:
            shown.append(segment)
            current = typing.get_args(current)[1] if segment != "[key]" else None
        elif origin in (list, tuple):
            shown.append(segment)
            args = typing.get_args(current)
            current = args[0] if args else None
        elif origin in (typing.Union, types.UnionType):
            member = _union_member(current, str(segment))
            if member is None:
                shown.append(segment)
            current = member
            if member is None:
                continue
        else:
            shown.append(segment)
            current = None
    return shown, _unwrap(current) if current is not None else None


def dotted(path: list[str | int]) -> str:
    """A field path as users write it: ``workload.parallelism.tp``, ``cases[2].id``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _message(err: ErrorDetails, parent: Any) -> str:
    kind = err["type"]
    msg: str = err["msg"]
    if kind == "extra_forbidden":
        allowed = ""
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = "; allowed: " + ", ".join(parent.model_fields)
        return f"unknown field{allowed}"
    if kind == "missing":
        return "required field is missing"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and kind != "missing" and "got " not in msg:
        msg = f"{msg} (got {value!r})"
    return msg


def to_input_errors(exc: ValidationError, root: type[BaseModel],
                    doc: YamlDocument | None = None, file: str | None = None,
                    prefix: Loc = ()) -> InputErrors:
    """Convert a pydantic error into our error type, one entry per problem."""
    errors: list[InputError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        shown, _ = resolve_loc(root, loc)
        parent = resolve_loc(root, loc[:-1])[1] if loc else root
        if err["type"] == "extra_forbidden" and shown:
            name = shown[-1]
            message = f"unknown field {name!r}" + _message(err, parent)[len("unknown field"):]
        else:
            message = _message(err, parent)
        where = file or (doc.file if doc else None)
        if doc is not None:
            line = doc.line_of((*prefix, *shown))
            if line is not None and where:
                where = f"{where}:{line}"
        errors.append(InputError(message, file=where, path=dotted([*prefix, *shown])))
    return InputErrors(errors)


def validate(model: type[M], data: Any, doc: YamlDocument | None = None,
             context: dict[str, Any] | None = None) -> M:
    """``model.model_validate(data)`` with errors that name file, line and field path."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise to_input_errors(exc, model, doc) from None
    except InputErrors:
        raise
    except Exception as exc:
        problems = getattr(exc, "problems", None)
        if problems is None:
            raise
        raise _problems_to_errors(problems, doc) from None


def _problems_to_errors(problems: list[Any], doc: YamlDocument | None) -> InputErrors:
    """Cross-field problems (objects with ``path`` and ``message``) as located errors."""
    errors = []
    for problem in problems:
        where = doc.file if doc else None
        if doc is not None:
            line = doc.line_of(tuple(problem.path))
            if line is not None:
                where = f"{where}:{line}"
        errors.append(InputError(problem.message, file=where, path=dotted(list(problem.path))))
    return InputErrors(errors)
