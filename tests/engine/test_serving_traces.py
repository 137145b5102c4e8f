"""Trace files: the documented formats parse, and every malformed row names file, line, field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from simulator.engine.serving import run_serving
from simulator.engine.serving.traces import read_trace
from simulator.errors import InputError, InputErrors
from simulator.loading import load_scenario
from tests.conftest import ROOT

GOOD_CSV = """\
# a comment line
request_id,arrival_s,prompt_tokens,output_tokens
a,0.0,100,20

b,0.5,2000,300
c,0.5,7,1
"""


def write(tmp_path: Path, text: str, name: str = "t.csv") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_csv_with_extra_columns_comments_and_blank_lines(tmp_path):
    trace = read_trace(write(tmp_path, GOOD_CSV))
    np.testing.assert_array_equal(trace.arrival_s, [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(trace.prompt_tokens, [100, 2000, 7])
    np.testing.assert_array_equal(trace.output_tokens, [20, 300, 1])


def test_jsonl(tmp_path):
    text = ('{"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 5, "user": "x"}\n\n'
            '{"arrival_s": 1.25, "prompt_tokens": 20, "output_tokens": 6}\n')
    trace = read_trace(write(tmp_path, text, "t.jsonl"))
    np.testing.assert_array_equal(trace.arrival_s, [0.0, 1.25])
    np.testing.assert_array_equal(trace.output_tokens, [5, 6])


CSV_HEADER = "arrival_s,prompt_tokens,output_tokens\n"
MALFORMED = {
    "arrival not a number": (CSV_HEADER + "0,10,5\nsoon,10,5\n", 3, "arrival_s", "not a number"),
    "negative arrival": (CSV_HEADER + "-1,10,5\n", 2, "arrival_s", "finite time >= 0"),
    "infinite arrival": (CSV_HEADER + "inf,10,5\n", 2, "arrival_s", "finite time >= 0"),
    "out of order": (CSV_HEADER + "2,10,5\n1,10,5\n", 3, "arrival_s", "arrival order"),
    "fractional prompt": (CSV_HEADER + "0,12.5,5\n", 2, "prompt_tokens", "positive integer"),
    "zero output": (CSV_HEADER + "0,12,0\n", 2, "output_tokens", "positive integer"),
    "missing field": (CSV_HEADER + "0,12\n", 2, "output_tokens", "missing value"),
    "empty field": (CSV_HEADER + "0,,5\n", 2, "prompt_tokens", "missing value"),
    "header lacks a column": ("arrival_s,prompt_tokens,answer\n0,1,2\n", 1, "output_tokens",
                              "the header has no column"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_each_malformed_csv_row_names_file_line_and_field(tmp_path, case):
    text, line, field, message = MALFORMED[case]
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_trace(path)
    error = info.value
    assert error.file == f"{path}:{line}"
    assert error.path == field
    assert message in error.message
    assert str(error).startswith(f"{path}:{line}: {field}: ")


JSONL_MALFORMED = {
    "not json": ('{"arrival_s": 0, "prompt_tokens": 1, "output_tokens": 1}\n{oops\n', 2, None,
                 "not valid JSON"),
    "not an object": ("[1, 2, 3]\n", 1, None, "expected a JSON object"),
    "missing key": ('{"arrival_s": 0, "prompt_tokens": 1}\n', 1, "output_tokens",
                    "missing value"),
    "float tokens": ('{"arrival_s": 0, "prompt_tokens": 1.5, "output_tokens": 1}\n', 1,
                     "prompt_tokens", "positive integer"),
    "boolean time": ('{"arrival_s": true, "prompt_tokens": 1, "output_tokens": 1}\n', 1,
                     "arrival_s", "not a number"),
}


@pytest.mark.parametrize("case", JSONL_MALFORMED, ids=list(JSONL_MALFORMED))
def test_each_malformed_jsonl_row_names_file_line_and_field(tmp_path, case):
    text, line, field, message = JSONL_MALFORMED[case]
    path = write(tmp_path, text, "t.jsonl")
    with pytest.raises(InputError) as info:
        read_trace(path)
    assert info.value.file == f"{path}:{line}"
    assert info.value.path == field
    assert message in info.value.message


@pytest.mark.parametrize("text,name,message", [
    ("", "t.csv", "the trace is empty"),
    (CSV_HEADER, "t.csv", "the trace has no requests"),
    ("a,b\n", "t.txt", "unknown trace format '.txt'"),
])
def test_whole_file_problems(tmp_path, text, name, message):
    path = write(tmp_path, text, name)
    with pytest.raises(InputError, match=message) as info:
        read_trace(path)
    assert info.value.file == str(path)


def test_missing_file():
    with pytest.raises(InputError, match="no such trace file"):
        read_trace("/nonexistent/trace.csv")


def _trace_scenario(tmp_path: Path, trace: str, arrivals: str = "") -> Path:
    return write(tmp_path, f"""\
        name: trace test
        hardware: h100-sxm
        cluster: {{accelerators: 1}}
        model: llama3.1-8b
        workload:
          kind: inference
          arrivals: {{process: trace, path: {trace}{arrivals}}}
          prompt_tokens: 100
          output_tokens: 10
        """, "s.yaml")


def test_a_scenario_finds_its_trace_relative_to_itself_and_replays_it(tmp_path):
    (tmp_path / "traces").mkdir()
    write(tmp_path / "traces", GOOD_CSV, "t.csv")
    s = load_scenario(_trace_scenario(tmp_path, "traces/t.csv"))
    outcome = run_serving(s)
    np.testing.assert_array_equal(outcome.requests.prompt_tokens, [100, 2000, 7])
    np.testing.assert_array_equal(outcome.requests.arrival_s, [0.0, 0.5, 0.5])
    assert outcome.result.inference.requests == 3


def test_rate_rescales_a_trace_and_requests_cut_it(tmp_path):
    rows = "".join(f"{t},10,2\n" for t in range(0, 10))
    write(tmp_path, CSV_HEADER + rows, "t.csv")
    s = load_scenario(_trace_scenario(tmp_path, "t.csv", ", rate_per_s: 2.0, requests: 5"))
    times = run_serving(s).requests.arrival_s
    np.testing.assert_allclose(times, [0.0, 0.5, 1.0, 1.5, 2.0])


def test_a_missing_trace_is_a_scenario_error(tmp_path):
    with pytest.raises(InputErrors, match="no such trace file") as info:
        load_scenario(_trace_scenario(tmp_path, "nope.csv"))
    assert info.value.errors[0].path == "workload.arrivals.path"


def test_a_malformed_trace_fails_the_run_with_its_line(tmp_path):
    write(tmp_path, CSV_HEADER + "0,10,2\n1,ten,2\n", "t.csv")
    s = load_scenario(_trace_scenario(tmp_path, "t.csv"))
    with pytest.raises(InputError, match=r"t.csv:3: prompt_tokens: 'ten'"):
        run_serving(s)


def test_the_shipped_sample_trace_is_valid():
    trace = read_trace(ROOT / "scenarios" / "traces" / "chat-sample.csv")
    assert len(trace.arrival_s) > 1000
    assert np.all(np.diff(trace.arrival_s) >= 0)
