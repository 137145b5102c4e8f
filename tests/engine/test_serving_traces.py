"""Trace files: the documented formats parse, and every malformed row names file, line, field."""

from __future__ import annotations

import os
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
    ("a,b\n", "t.txt", "this one has '.txt': name it .csv"),
    ("a,b\n", "trace", "this one has no suffix"),
])
def test_whole_file_problems(tmp_path, text, name, message):
    path = write(tmp_path, text, name)
    with pytest.raises(InputError, match=message) as info:
        read_trace(path)
    assert info.value.file == str(path)


def test_missing_file():
    with pytest.raises(InputError, match="file not found"):
        read_trace("/nonexistent/trace.csv")


def test_csv_fields_follow_the_csv_quoting_rules(tmp_path):
    """A quoted field may hold commas and line breaks; the row after it keeps its own line
    number (the quoted break makes row 2 span lines 2-3)."""
    text = (CSV_HEADER.rstrip("\n") + ",note\n0,10,5,\"a, b\nc\"\n1,x,5,d\n")
    with pytest.raises(InputError) as info:
        read_trace(write(tmp_path, text))
    assert info.value.file.endswith("t.csv:4") and info.value.path == "prompt_tokens"
    good = CSV_HEADER.rstrip("\n") + ",note\n0,10,5,\"a, b\nc\"\n1,11,6,d\n"
    np.testing.assert_array_equal(read_trace(write(tmp_path, good)).prompt_tokens, [10, 11])


def test_a_quoted_line_break_inside_a_count_is_a_bad_count(tmp_path):
    text = CSV_HEADER + '0,"12\n3",5\n'
    with pytest.raises(InputError, match="is not a positive integer"):
        read_trace(write(tmp_path, text))


@pytest.mark.parametrize("value", ["\u00b2", "\u0663", "\uff11\uff12"])  # ², Arabic 3, fullwidth 12
def test_only_ascii_digits_are_counts(tmp_path, value):
    with pytest.raises(InputError, match="is not a positive integer"):
        read_trace(write(tmp_path, CSV_HEADER + f"0,{value},5\n"))


@pytest.mark.parametrize("name,row", [
    ("t.csv", CSV_HEADER + "0,10000001,5\n"),
    ("t.csv", CSV_HEADER + "0," + "9" * 5000 + ",5\n"),
    ("t.jsonl", '{"arrival_s": 0, "prompt_tokens": 1000000000000000000000000000000, '
                '"output_tokens": 5}\n'),
])
def test_counts_beyond_a_request_are_refused(tmp_path, name, row):
    with pytest.raises(InputError, match="more than a request may hold") as info:
        read_trace(write(tmp_path, row, name))
    assert len(info.value.message) < 120  # the 5,000 digits are not echoed


def test_a_jsonl_number_json_cannot_convert_is_one_error(tmp_path):
    row = '{"arrival_s": 0, "prompt_tokens": 1' + "0" * 5000 + ', "output_tokens": 5}\n'
    with pytest.raises(InputError, match="JSON cannot convert"):
        read_trace(write(tmp_path, row, "t.jsonl"))


def test_a_column_named_twice_is_refused(tmp_path):
    text = "arrival_s,prompt_tokens,output_tokens,prompt_tokens\n0,10,5,20\n"
    with pytest.raises(InputError, match="names column 'prompt_tokens' 2 times") as info:
        read_trace(write(tmp_path, text))
    assert info.value.file.endswith(":1")


def test_a_jsonl_key_given_twice_is_refused(tmp_path):
    row = '{"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 5, "prompt_tokens": 20}\n'
    with pytest.raises(InputError, match="given twice") as info:
        read_trace(write(tmp_path, row, "t.jsonl"))
    assert info.value.path == "prompt_tokens"


def test_a_byte_order_mark_is_accepted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (CSV_HEADER + "0,10,5\n").encode())
    np.testing.assert_array_equal(read_trace(path).prompt_tokens, [10])


def test_more_rows_than_a_run_takes_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("simulator.engine.serving.traces.MAX_REQUESTS", 3)
    rows = "".join(f"{t},10,5\n" for t in range(4))
    with pytest.raises(InputError, match="more than 3 requests") as info:
        read_trace(write(tmp_path, CSV_HEADER + rows))
    assert info.value.file.endswith("t.csv:5")


def test_a_trace_above_the_size_limit_is_refused_unread(tmp_path, monkeypatch):
    monkeypatch.setattr("simulator.engine.serving.traces.MAX_TRACE_BYTES", 100)
    rows = "".join(f"{t},10,5\n" for t in range(40))
    with pytest.raises(InputError, match="a trace file is limited to 100 bytes"):
        read_trace(write(tmp_path, CSV_HEADER + rows))


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "t.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_trace(fifo)


def test_messages_quote_the_offending_value_only_shortened(tmp_path):
    secret = "root:$6$saltsaltsalt$hashhashhashhashhashhash:19000:0:99999:7:::"
    with pytest.raises(InputError) as info:
        read_trace(write(tmp_path, CSV_HEADER + f"0,{secret},5\n"))
    assert "hashhash" not in str(info.value) and "..." in info.value.message
    header_only = secret.replace(":", ",") + "\n0,1,2,3\n"
    with pytest.raises(InputError) as info:
        read_trace(write(tmp_path, header_only))
    assert "salt" not in str(info.value) and "required: arrival_s" in info.value.message


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


def test_rate_cannot_rescale_a_trace_whose_rows_share_one_time(tmp_path):
    write(tmp_path, CSV_HEADER + "3,10,2\n3,11,2\n", "t.csv")
    s = load_scenario(_trace_scenario(tmp_path, "t.csv", ", rate_per_s: 2.0"))
    with pytest.raises(InputError, match=r"all 2 rows .* arrive at t = 3 s") as info:
        run_serving(s)
    assert info.value.path == "workload.arrivals.rate_per_s"


def test_a_trace_path_that_is_not_a_file_says_what_it_is(tmp_path):
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    with pytest.raises(InputErrors, match="symbolic link loop"):
        load_scenario(_trace_scenario(tmp_path, "loop.csv"))
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(InputErrors, match="not a regular file"):
        load_scenario(_trace_scenario(tmp_path, "pipe.csv"))


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
