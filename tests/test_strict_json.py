"""JSON output is strict JSON (issue 16, item 2): an undefined figure is null with a note."""

from __future__ import annotations

import json
import math

import pytest

from simulator.report.json_text import strict_json
from tests.conftest import ROOT, run_cli


def _strict(text: str):
    """Parse as a strict parser does: Infinity and NaN are errors."""
    def refuse(token: str):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_are_named_in_the_notes():
    data = {"a": 1.0, "b": math.inf, "c": {"d": [0.5, math.nan]}, "notes": ["kept"]}
    out = _strict(strict_json(data))
    assert out["a"] == 1.0 and out["b"] is None and out["c"]["d"] == [0.5, None]
    assert out["notes"] == ["kept", "b is undefined (infinite); written as null",
                            "c.d[1] is undefined (not a number); written as null"]
    assert data["b"] == math.inf, "the input is left alone"


def test_finite_data_is_plain_json():
    assert strict_json({"x": [1, 2.5, "s", None, True]}, indent=None) == \
        '{"x": [1, 2.5, "s", null, true]}'


@pytest.mark.parametrize("where", ["stdout", "result.json"])
def test_a_run_that_serves_no_token_prints_strict_json(tmp_path, where):
    """Every request is dropped (a 64-token KV cache): no cost per token exists."""
    result = run_cli("run", str(ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"),
                     "--set", "workload.batching.kv_cache_tokens=64",
                     "--set", "workload.arrivals.requests=20", "--format", "json",
                     "--out", str(tmp_path / "out"))
    assert result.code == 0, result.err
    text = result.out if where == "stdout" else (tmp_path / "out" / "result.json").read_text()
    data = _strict(text)
    assert data["inference"]["dropped"] == 20
    assert data["cost_per_million_tokens_usd"] is None
    assert any(n.startswith("cost_per_million_tokens_usd is undefined") for n in data["notes"])
