"""Turning pydantic's ValidationError into messages that say where, what and what is allowed.

Each error becomes ``FILE:LINE: dotted.field.path: message``; an unknown field lists the
allowed ones; a wrong value shows what was given.
"""

from __future__ import annotations

import re
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
            # pydantic names the union member it tried ("literal['auto']", "function-after[
            # ...]"): an internal label, never shown; a tag of ours leads on into its member
            current = _union_member(current, str(segment))
        else:
            shown.append(segment)
            current = None
    return shown, _unwrap(current) if current is not None else None


def dotted(path: list[str | int]) -> str:
    """A field path as users write it: ``workload.parallelism.tp``, ``cases[2].id``. A key too
    long to be a field name is cut short (it may be a line of some other file)."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + _cut(str(part), _MAX_KEY)
    return out or "(top level)"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


# pydantic's error types, in plain words ({name} fields come from the error's context).
_PLAIN = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "finite_number": "must be a finite number (not .inf or .nan)",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_parsing_size": "must be a whole number of reasonable size",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be text",
    "literal_error": "must be {expected}",
    "enum": "must be one of {expected}",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "string_too_short": "must have at least {min_length} character(s)",
    "string_too_long": "must have at most {max_length} character(s)",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "tuple_type": "must be a list",
    "union_tag_invalid": "must be one of {expected_tags}",
    "union_tag_not_found": "must have a {discriminator} field",
    "frozen_instance": "cannot be changed",
}
_MAX_SHOWN = 60  # characters of a given value quoted back in a message
_MAX_KEY = 40  # characters of an unknown key shown (field names are shorter)


def _shown_value(value: object) -> str:
    """The value the user gave, quoted and cut short (it may come from a large file)."""
    return _cut(repr(value), _MAX_SHOWN)


def _message(err: ErrorDetails, parent: Any) -> str:
    """One error in plain words, with what is allowed and what was given."""
    kind = err["type"]
    msg: str = err["msg"]
    if kind == "extra_forbidden":
        allowed = ""
        if isinstance(parent, type) and issubclass(parent, BaseModel):
            allowed = "; allowed: " + ", ".join(parent.model_fields)
        return f"unknown field{allowed}"
    if kind == "missing":
        return "required field is missing"
    if kind in _PLAIN:
        try:
            msg = _PLAIN[kind].format(**err.get("ctx", {}))
        except (KeyError, IndexError):
            msg = msg.replace("Input should be", "must be", 1)
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    else:
        msg = msg.replace("Input should be", "must be", 1)
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and "got " not in msg:
        msg = f"{msg} (got {_shown_value(value)})"
    return msg


def _merged(errors: list[InputError]) -> list[InputError]:
    """One line per field: the alternatives of a union (``5 GB`` is neither a time nor
    ``auto``) are joined with "or"."""
    by_key: dict[tuple[str | None, str | None], InputError] = {}
    for error in errors:
        key = (error.file, error.path)
        first = by_key.get(key)
        if first is None:
            by_key[key] = error
        elif error.message not in first.message:
            got = error.message[error.message.rfind(" (got "):]
            head = first.message.removesuffix(got) if got.startswith(" (got ") else first.message
            first.message = f"{head}; or {error.message}"
    return list(by_key.values())


_MISSING = "required field is missing"
_MAX_LINES = 12  # more problems than this are counted, not listed


def _grouped(errors: list[InputError]) -> list[InputError]:
    """Missing and unknown fields of one mapping on one line each (a mapping of the wrong
    kind would otherwise list every field), and at most :data:`_MAX_LINES` lines."""
    out: list[InputError] = []
    groups: dict[tuple[str, str, str], tuple[InputError, list[str]]] = {}
    for error in errors:
        kind = ("missing" if error.message == _MISSING
                else "unknown" if error.message.startswith("unknown field '") else None)
        if kind is None or not error.path:
            out.append(error)
            continue
        parent, _, name = error.path.rpartition(".")
        file = (error.file or "").rsplit(":", 1)[0] if kind == "unknown" else error.file or ""
        key = (kind, file, parent)
        if key not in groups:
            groups[key] = (error, [])
            out.append(error)
        groups[key][1].append(name if kind == "missing" else
                              error.message.split("'")[1])
    for (kind, _, parent), (first, names) in groups.items():
        if len(names) > 1:
            first.path = parent or None
            allowed = first.message[first.message.find(";"):] if ";" in first.message else ""
            first.message = (f"required fields are missing: {', '.join(names)}"
                             if kind == "missing" else
                             f"unknown fields {', '.join(map(repr, names))}{allowed}")
    if len(out) > _MAX_LINES:
        more = len(out) - _MAX_LINES + 1
        out = [*out[:_MAX_LINES - 1], InputError(f"... and {more} more problems",
                                                 file=out[0].file)]
    return out


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
            name = _cut(str(shown[-1]), _MAX_KEY)
            message = f"unknown field {name!r}" + _message(err, parent)[len("unknown field"):]
        else:
            message = _message(err, parent)
        where = file or (doc.file if doc else None)
        if doc is not None:
            line = doc.line_of((*prefix, *shown))
            if line is not None and where:
                where = f"{where}:{line}"
        errors.append(InputError(message, file=where, path=dotted([*prefix, *shown])))
    return InputErrors(_grouped(_merged(errors)))


def validate(model: type[M], data: Any, doc: YamlDocument | None = None,
             context: dict[str, Any] | None = None) -> M:
    """``model.model_validate(data)`` with errors that name file, line and field path."""
    _refuse_foreign(model, data, doc)
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


def _refuse_foreign(model: type[BaseModel], data: Any, doc: YamlDocument | None) -> None:
    """A file with none of the model's fields is some other file (``hardware: /etc/shadow``):
    one line naming it, and nothing of its content."""
    if doc is None or not isinstance(data, dict) or not data:
        return
    if any(isinstance(key, str) and key in model.model_fields for key in data):
        return
    kind = re.sub(r"(?<!^)(?=[A-Z])", " ", model.__name__).lower()
    required = [name for name, info in model.model_fields.items() if info.is_required()]
    raise InputErrors([InputError(f"not a {kind}: none of its {len(data)} top-level keys is a "
                                  f"field of one (it needs {', '.join(required[:6])}, ...)",
                                  file=doc.file)])
