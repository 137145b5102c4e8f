"""write_atomic: whole files or none, with the permissions any other file gets, and every
writer of the CLI's outputs going through it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from simulator.report import files as report_files
from simulator.report.files import write_atomic, write_markdown_section
from simulator.studies.pareto import plot_front
from simulator.studies.table import write_table


@pytest.fixture
def umask():
    """Set the process umask for one test, restoring it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(saved)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def plain_open_mode(path: Path) -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask."""
    with open(path, "w") as handle:
        handle.write("x")
    return mode(path)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_the_mode_a_plain_open_gives(tmp_path, umask, mask):
    umask(mask)
    write_atomic(tmp_path / "a.txt", "text")
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    expected = plain_open_mode(tmp_path / "reference")
    assert expected == 0o666 & ~mask
    assert mode(tmp_path / "a.txt") == expected
    assert mode(tmp_path / "b.bin") == expected


def test_the_usual_umask_gives_0644(tmp_path, umask):
    umask(0o022)
    write_atomic(tmp_path / "result.json", "{}")
    assert mode(tmp_path / "result.json") == 0o644


def test_content_replaces_the_old_file_and_no_temporary_file_stays(tmp_path):
    path = tmp_path / "sub" / "out.csv"
    write_atomic(path, "old\n")
    write_atomic(path, "név,1\r\n")
    assert path.read_bytes() == "név,1\r\n".encode()
    write_atomic(path, b"\x89PNG")
    assert path.read_bytes() == b"\x89PNG"
    assert [p.name for p in path.parent.iterdir()] == ["out.csv"]


def test_a_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    path = tmp_path / "report.html"
    write_atomic(path, "before")

    def no_space(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report_files.os, "replace", no_space)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "after")
    assert path.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_study_tables_plots_and_markdown_go_through_write_atomic(tmp_path, monkeypatch):
    written: list[str] = []
    real = report_files.write_atomic

    def spy(path, content):
        written.append(Path(path).name)
        real(path, content)

    monkeypatch.setattr("simulator.studies.table.write_atomic", spy)
    monkeypatch.setattr("simulator.studies.pareto.write_atomic", spy)
    monkeypatch.setattr(report_files, "write_atomic", spy)
    rows = [{"x": 1.0, "y": 2.0}, {"x": 2.0, "y": 1.0}]
    write_table(tmp_path / "t.csv", rows, ["x", "y"])
    write_table(tmp_path / "t.jsonl", rows, ["x", "y"])
    assert plot_front(tmp_path / "front.png", rows, rows, "x", "y") is None
    write_markdown_section(tmp_path / "page.md", "generated")
    assert written == ["t.csv", "t.jsonl", "front.png", "page.md"]
    assert (tmp_path / "t.csv").read_text() == "x,y\n1.0,2.0\n2.0,1.0\n"
    assert (tmp_path / "front.png").read_bytes().startswith(b"\x89PNG")
    assert "generated" in (tmp_path / "page.md").read_text()
