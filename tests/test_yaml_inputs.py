"""Odd YAML files and values (issue 16, item 3): each refused with one line, through the CLI.

A YAML bomb, a file that never ends, a pipe, a link loop, deep nesting and a key given twice
must not cost memory, time or a silent wrong value: one line naming the file (and line, where
there is one) and the limit, exit 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from simulator.errors import InputError
from simulator.profiles.yaml_source import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NODES,
    parse_yaml,
    parse_yaml_value,
)
from tests.conftest import ROOT, assert_clean_error, run_cli

GOOD = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"


def _bomb(levels: int, width: int = 9) -> str:
    """The "billion laughs" shape: each level an alias list of the level below."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_bomb(9))  # 9^9 = 387 million values if expanded
    result = run_cli("run", str(path))
    assert_clean_error(result, str(path), f"{MAX_NODES:,} values")
    assert len(result.err.strip().splitlines()) == 1


def test_aliases_within_the_budget_still_work():
    doc = parse_yaml(_bomb(3), "ok.yaml")  # 9 + 81 + 729 values
    assert len(doc.data["l2"]) == 9 and doc.data["l2"][0][0] == ["x"] * 9


def test_a_recursive_alias_is_refused():
    with pytest.raises(InputError, match="recursive"):
        parse_yaml("a: &a [1, *a]\n", "r.yaml")


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(GOOD.read_text() + "cluster:\n  accelerators: 1000\n")
    first = GOOD.read_text().splitlines().index("cluster: {accelerators: 1}") + 1
    last = len(GOOD.read_text().splitlines()) + 1
    result = run_cli("run", str(path))
    assert_clean_error(result, str(path), f"line {last}: cluster is given twice",
                       f"first on line {first}")


def test_a_key_given_twice_in_a_flow_mapping_is_refused():
    with pytest.raises(InputError, match=r"line 1: cluster.accelerators is given twice"):
        parse_yaml("cluster: {accelerators: 1, accelerators: 1000}\n", "f.yaml")


def test_merge_keys_are_not_duplicates():
    doc = parse_yaml("base: &b {tp: 2, pp: 1}\nx:\n  <<: *b\n  tp: 4\n", "m.yaml")
    assert doc.data["x"] == {"tp": 4, "pp": 1}


def test_deep_nesting_is_refused_without_exhausting_the_stack(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("[" * 600 + "]" * 600 + "\n")
    assert_clean_error(run_cli("run", str(path)), f"nested more than {MAX_DEPTH} levels")
    assert parse_yaml("[" * 10 + "]" * 10, "ok.yaml").data == [[[[[[[[[[]]]]]]]]]]


def test_a_file_over_the_size_limit_is_refused_with_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    assert_clean_error(run_cli("run", str(path)), str(path), f"{MAX_FILE_BYTES:,} bytes")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_refused_without_blocking(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    assert_clean_error(run_cli("run", str(path)), str(path), "not a regular file")


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_device_that_never_ends_is_refused():
    assert_clean_error(run_cli("run", "/dev/zero"), "/dev/zero", "not a regular file")


@pytest.mark.skipif(sys.platform == "win32", reason="needs symbolic links")
def test_a_symbolic_link_loop_is_named_as_such(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.symlink_to(b)
    b.symlink_to(a)
    assert_clean_error(run_cli("run", str(a)), str(a), "symbolic link loop")


def test_a_nul_byte_is_one_line_with_its_line_number(tmp_path):
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"name: x\nhardware: h100\x00-sxm\n")
    result = run_cli("run", str(path))
    assert_clean_error(result, str(path), "line 2, column 15")
    assert len(result.err.strip().splitlines()) == 1


def test_text_that_is_not_utf8_names_its_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"name: x\nhardware: h\xe9\n")
    assert_clean_error(run_cli("run", str(path)), str(path), "line 2", "not UTF-8")


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.read_bytes())
    assert run_cli("validate", str(path)).code == 0


def test_command_line_values_have_the_same_limits():
    with pytest.raises(InputError, match="expands to more than"):
        parse_yaml_value(_bomb(9))
    assert parse_yaml_value("[1, 2") == "[1, 2"  # not YAML: the text itself
    assert parse_yaml_value("8") == 8 and parse_yaml_value("80 GB") == "80 GB"


def test_set_with_a_duplicate_key_is_one_clean_line():
    result = run_cli("run", str(GOOD), "--set", "cluster={accelerators: 1, accelerators: 9}")
    assert_clean_error(result, "accelerators is given twice")
