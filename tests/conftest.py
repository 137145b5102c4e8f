"""Shared fixtures: paths of the repository and a runner for the real `xpusim` entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((ROOT / "scenarios").glob("*.yaml"))


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


def run_cli(*args: str, cwd: Path | None = None) -> CliResult:
    """Run `python -m simulator.cli.main ARGS` in a subprocess, as a user would."""
    env = {**os.environ, "COLUMNS": "100", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "simulator.cli.main", *args],
                          capture_output=True, text=True, cwd=cwd or ROOT, env=env, timeout=120)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def assert_clean_error(result: CliResult, *fragments: str) -> None:
    """Bad input: exit code 2, nothing on stdout, no traceback, the fragments on stderr."""
    assert result.code == 2, (result.out, result.err)
    assert "Traceback" not in result.err
    assert result.out == ""
    for fragment in fragments:
        assert fragment in result.err, result.err


def edited_h100_profile(tmp_path: Path, line: str, replacement: str) -> Path:
    """The shipped H100 profile with one line's start replaced, written to ``tmp_path``: how a
    test feeds the real profile one bad number (the assert keeps the test failing loudly if
    the shipped line it edits changes)."""
    profile = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    assert line in profile, line
    bad = tmp_path / "hw.yaml"
    bad.write_text(profile.replace(line, replacement))
    return bad


@pytest.fixture
def cli():
    return run_cli
