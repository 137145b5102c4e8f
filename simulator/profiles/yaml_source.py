"""Reading YAML safely and remembering where each value stood, for error messages.

Only safe-loader semantics are used (no tags that build Python objects). Besides the data we
keep a map from field path (a tuple of keys and indices) to the 1-based line of that value,
so that a validation error can say ``scenario.yaml:12: workload.parallelism.tp: ...``.

Profiles and scenarios are small hand-written files, so anything that is not one is refused
before it can cost memory or time, each with one line naming the file and the limit:

- a path that is not a regular file (a FIFO would block, ``/dev/zero`` never ends), a
  symbolic-link loop, a file larger than :data:`MAX_FILE_BYTES`;
- nesting deeper than :data:`MAX_DEPTH` (the recursive parts of a YAML library would
  otherwise exhaust the stack);
- aliases that expand to more than :data:`MAX_NODES` values ("billion laughs": a few lines
  of nested aliases name billions of values), or an alias that contains itself;
- a key given twice in one mapping (YAML says keys are unique; the reference loader keeps
  the last one silently, so ``{accelerators: 1, accelerators: 1000}`` would mean 1000).

The document is parsed once, by libyaml where PyYAML was built with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from simulator.errors import InputError
from simulator.profiles.input_files import read_bounded_text

Loc = tuple[str | int, ...]

MAX_FILE_BYTES = 1 << 20  # 1 MiB: the largest built-in profile is 10 kB
MAX_DEPTH = 64  # nesting levels; built-in files use fewer than 8
MAX_NODES = 100_000  # values after alias expansion; built-in files have a few hundred

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it
_MERGE = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class YamlDocument:
    """A parsed YAML file: its data, its name, and the line of every field path in it."""

    data: Any
    file: str
    lines: dict[Loc, int] = field(default_factory=dict)

    def line_of(self, loc: Loc) -> int | None:
        """Line of the deepest prefix of ``loc`` present in the file."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(tuple(loc[:end]))
            if line is not None:
                return line
        return None


def _check_tree(root: yaml.Node, file: str | None) -> dict[Loc, int]:
    """Refuse deep nesting, alias bombs, recursive aliases and duplicate keys; return the
    line of every field path. Iterative, so that no input can exhaust the stack."""
    lines: dict[Loc, int] = {}
    expanded = 0
    stack: list[tuple[yaml.Node, Loc, tuple[int, ...]]] = [(root, (), ())]
    while stack:
        node, loc, ancestors = stack.pop()
        expanded += 1
        if expanded > MAX_NODES:
            raise InputError(f"the document expands to more than {MAX_NODES:,} values "
                             f"(aliases repeated inside aliases?); the limit keeps a "
                             f"small file from filling memory", file=file)
        if len(ancestors) > MAX_DEPTH:
            raise InputError(f"line {node.start_mark.line + 1}: nested more than "
                             f"{MAX_DEPTH} levels deep", file=file)
        if id(node) in ancestors:
            raise InputError(f"line {node.start_mark.line + 1}: an alias refers to a "
                             f"value that contains it (a recursive structure)", file=file)
        lines.setdefault(loc, node.start_mark.line + 1)
        inner = (*ancestors, id(node))
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, value_node in node.value:
                line = key_node.start_mark.line + 1
                if key_node.tag == _MERGE:
                    stack.append((value_node, loc, inner))
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                if key in seen:
                    where = ".".join(map(str, (*loc, key)))
                    raise InputError(f"line {line}: {where} is given twice (first on line "
                                     f"{seen[key]}); keys must be unique", file=file)
                seen[key] = line
                lines[(*loc, key)] = line
                stack.append((value_node, (*loc, key), inner))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*loc, index), inner))
    return lines


def _syntax_error(exc: yaml.YAMLError, text: str, file: str | None) -> InputError:
    """One line: where (line, column) and what, from any of PyYAML's error kinds."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}: "
    elif isinstance(position := getattr(exc, "position", None), int):  # bad characters
        before = text[:position]
        where = f"line {before.count(chr(10)) + 1}, column {position - before.rfind(chr(10))}: "
    else:
        where = ""
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    if isinstance(character := getattr(exc, "character", None), str):
        problem = f"{problem} ({ord(character):#06x})"
    return InputError(f"YAML syntax error at {where}{' '.join(str(problem).split())}",
                      file=file)


def _parse(text: str, file: str) -> YamlDocument:
    """Parse within the limits; syntax errors propagate as PyYAML raised them."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return YamlDocument(data=None, file=file)
        lines = _check_tree(node, file)
        return YamlDocument(data=loader.construct_document(node), file=file, lines=lines)
    except RecursionError:
        raise InputError(f"nested more than {MAX_DEPTH} levels deep", file=file) from None
    finally:
        loader.dispose()


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse YAML text within the limits above; every problem is one :class:`InputError`
    with the line (and column, for syntax errors)."""
    try:
        return _parse(text, file)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    except ValueError as exc:  # a scalar its constructor refuses: 5,000 digits, month 13
        what = "a number of more than 4,300 digits" if "digits" in str(exc) else str(exc)
        raise InputError(f"a value YAML cannot convert: {what}", file=file) from None


def parse_yaml_value(text: str, flag: str = "--set") -> Any:
    """One value given on the command line (``--set``, ``--grid``), read as YAML with the
    same limits as a file; text that is not valid YAML is the string itself."""
    try:
        return _parse(text, flag).data
    except (yaml.YAMLError, ValueError):
        return text


def _read_text(path: Path, name: str) -> str:
    """The file's text, after making sure it is a regular file of a sane size."""
    return read_bounded_text(path, name, limit=MAX_FILE_BYTES,
                             expected="a YAML file (profiles and scenarios are a few kB)")


def read_yaml(path: str | Path) -> YamlDocument:
    """Read a YAML file; a missing, odd, oversized or unreadable file is an
    :class:`InputError` with one line."""
    return parse_yaml(_read_text(Path(path), str(path)), str(path))


