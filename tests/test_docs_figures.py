"""Issue 17 item 11: the figures quoted in the README and docs are what the commands print.

1. **Output blocks.** A code block right after ``<!-- docs-figures -->`` starts with the
   command (``$ xpusim ...``); after ``<!-- docs-figures: xpusim ... -->`` it holds output
   only and the marker names the command. The command is run from a scratch folder in which
   ``scenarios/`` and ``validation/`` link to the repository's (so ``--out`` files land
   there), and every quoted line must be a line of its output. Runs of spaces are collapsed
   (a table's padding follows the terminal's width), ``...`` in a line stands for the cells
   the page leaves out, and ``...`` lines and table borders are skipped.
2. **Figures in prose.** The number of published figures the README and the tutorial quote
   is the number of cases in ``validation/``; the README's median errors are those of
   ``docs/validation.md``'s summary, which ``tests/test_validation_guard.py`` keeps equal to
   a fresh run.

A block gone stale (the physics or a table changed): ``python tests/test_docs_figures.py``
prints each marked command with its output now; ``--write`` rewrites the blocks that quote a
whole output in place (abbreviated ones, with ``...``, are for a person to update).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"<!-- docs-figures(?::\s*(?P<command>.+?))?\s*-->\s*\n```[a-z]*\n"
                    r"(?P<body>.*?)```", re.S)
BORDER = set("┏┳┓┡╇┩└┴┘━─┌┬┐├┼┤╞╪╡═╭╮╰╯ ")
LINKED = ("scenarios", "validation", "hardware_profiles", "model_profiles", "serving_stacks")


@dataclass(frozen=True)
class Block:
    """A marked output block: where it is, the command, and the lines it quotes."""

    page: str
    line: int
    command: str
    quoted: tuple[str, ...]


def marked_blocks() -> list[Block]:
    """Every marked block of the README and docs/*.md."""
    blocks = []
    for page in PAGES:
        text = page.read_text()
        for match in MARKER.finditer(text):
            lines = match.group("body").splitlines()
            command = match.group("command")
            if command is None:
                assert lines and lines[0].startswith("$ "), (
                    f"{page.name}: a block after <!-- docs-figures --> must start with '$ '")
                command, lines = lines[0][2:], lines[1:]
            blocks.append(Block(page=page.name, line=text.count("\n", 0, match.start()) + 1,
                                command=command.strip(), quoted=tuple(lines)))
    return blocks


def collapse(line: str) -> str:
    """The line with every run of spaces made one (and none at the ends)."""
    return " ".join(line.split())


def checked_lines(block: Block) -> list[str]:
    """The quoted lines that carry figures: not borders, not '...' alone, not blank."""
    return [collapse(q) for q in block.quoted
            if collapse(q) not in ("", "...") and not set(q) <= BORDER]


def matches(quoted: str, printed: set[str]) -> bool:
    """Whether the collapsed quoted line is a printed line, '...' standing for any cells."""
    if quoted in printed:
        return True
    if "..." not in quoted:
        return False
    pattern = re.compile(".*".join(re.escape(part) for part in quoted.split("...")))
    return any(pattern.fullmatch(line) for line in printed)


def run_command(command: str, scratch: Path) -> subprocess.CompletedProcess:
    """Run ``command`` (``xpusim ...``) as the page shows it, from ``scratch``."""
    args = shlex.split(command)
    assert args[0] == "xpusim", command
    for name in LINKED:
        link = scratch / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    env = {**os.environ, "COLUMNS": "300", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "simulator.cli.main", *args[1:]],
                          capture_output=True, text=True, cwd=scratch, env=env, timeout=300)


BLOCKS = marked_blocks()


def test_the_pages_mark_their_output_blocks():
    """The README's example and the tutorial's and planning guide's outputs are checked."""
    pages = {b.page for b in BLOCKS}
    assert {"README.md", "tutorial.md", "planning.md"} <= pages, pages
    assert all(checked_lines(b) for b in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b.page}:{b.line}" for b in BLOCKS])
def test_quoted_output_is_what_the_command_prints(block: Block, tmp_path: Path):
    proc = run_command(block.command, tmp_path)
    assert proc.returncode == 0, proc.stderr
    printed = {collapse(line) for line in proc.stdout.splitlines()}
    stale = [q for q in checked_lines(block) if not matches(q, printed)]
    assert not stale, (f"{block.page}:{block.line}: `{block.command}` no longer prints "
                       f"these lines (regenerate: python tests/test_docs_figures.py):\n"
                       + "\n".join(stale) + "\n--- it prints now:\n" + proc.stdout[-4000:])


@pytest.mark.parametrize(("line", "printed", "expected"), [
    ("│ h100 │ bf16 │ 1 │", {"│ h100 │ bf16 │ 1 │"}, True),
    ("│ h100 │ ... │ 0.16 │", {"│ h100 │ bf16 │ 1 │ 0.16 │"}, True),
    ("│ h100 │ ... │ 0.16 │", {"│ h100 │ bf16 │ 1 │ 0.17 │"}, False),
    ("│ h100 │ bf16 │ 2 │", {"│ h100 │ bf16 │ 1 │"}, False),
])
def test_matching_by_hand(line, printed, expected):
    assert matches(collapse(line), printed) is expected


def test_blank_borders_and_ellipses_are_not_checked():
    block = Block(page="x", line=1, command="xpusim", quoted=(
        "┏━━━┳━━━┓", "...", "", "│  a  │   1.5 │", "└───┴───┘"))
    assert checked_lines(block) == ["│ a │ 1.5 │"]


# ---- figures in prose ---------------------------------------------------------------------
def _summary_table() -> dict[str, tuple[int, float]]:
    """docs/validation.md's summary rows: group -> (figures compared, median abs error %)."""
    rows = {}
    for line in (ROOT / "docs" / "validation.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] != "group" and cells[4].endswith("%"):
            rows.setdefault(cells[0], (int(cells[2]), float(cells[4][:-1])))
    return rows


def test_the_count_of_published_figures_is_the_suite_size():
    from simulator.validation.cases import load_cases

    count = len(load_cases(ROOT / "validation"))
    assert _summary_table()["all"][0] == count
    readme = (ROOT / "README.md").read_text()
    tutorial = (ROOT / "docs" / "tutorial.md").read_text()
    assert re.search(rf"checked against {count} published figures", readme), count
    assert re.search(rf"runs {count} published measurements", tutorial), count


def test_the_readme_median_errors_are_the_validation_tables():
    """'median error 11.6%, NVIDIA 11%, ...': each as precise as the README writes it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    readme = " ".join(" ".join(line.removeprefix(">").split()) for line in lines)
    found = re.search(r"median error (?P<all>[\d.]+)%, (?P<rest>(?:\w+ [\d.]+%(?:, | and )?)+)",
                      readme)
    assert found, "the README's status paragraph no longer quotes the median errors"
    quoted = {"all": found.group("all")}
    quoted.update((m.group(1), m.group(2))
                  for m in re.finditer(r"(\w+) ([\d.]+)%", found.group("rest")))
    table = _summary_table()
    assert len(quoted) >= 5
    for group, text in quoted.items():
        key = group if group == "all" else f"vendor: {group}"
        decimals = len(text.split(".")[1]) if "." in text else 0
        assert abs(float(text) - table[key][1]) <= 0.5 * 10 ** -decimals + 1e-9, (
            f"README says {group} {text}%, docs/validation.md {table[key][1]}%")


def _abbreviates(line: str) -> bool:
    """Whether a quoted line leaves something out: a line of '...' or a '...' cell (a
    warning that prints '...' itself is whole)."""
    text = collapse(line)
    return text == "..." or "│ ... │" in text or "┃ ... ┃" in text


def refresh(page: Path, scratch: Path) -> int:
    """Rewrite ``page``'s marked blocks that quote a whole output (no '...') with what their
    commands print now; return how many changed. Abbreviated blocks are left to a person."""
    text = page.read_text()

    def fresh(match: re.Match) -> str:
        body = match.group("body")
        if any(_abbreviates(line) for line in body.splitlines()):
            return match.group(0)
        lines = body.splitlines()
        head = [] if match.group("command") else [lines[0]]
        command = match.group("command") or lines[0][2:]
        printed = run_command(command.strip(), scratch).stdout.splitlines()
        new_body = "\n".join([*head, *(line.rstrip() for line in printed)]) + "\n"
        return match.group(0).replace(body, new_body, 1)

    new = MARKER.sub(fresh, text)
    if new != text:
        page.write_text(new)
    return int(new != text)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        if sys.argv[1:] == ["--write"]:  # whole outputs rewritten in place
            changed = sum(refresh(page, Path(folder)) for page in PAGES)
            print(f"{changed} page(s) rewritten; abbreviated blocks ('...') are not")
        else:
            for b in BLOCKS:
                result = run_command(b.command, Path(folder))
                print(f"==== {b.page}:{b.line}: $ {b.command}\n{result.stdout}{result.stderr}")
