"""workload.arrivals profile, growth, rate_trace and start_s: every bad input is one message
naming the field (or the trace's file and line), exit 2 from the command line."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simulator.errors import InputError
from simulator.profiles.inference import Arrivals
from tests.conftest import ROOT, assert_clean_error, run_cli

FLAT = [1.0] * 24
BASE = {"process": "poisson", "rate_per_s": 2, "duration_s": "1 h"}


@pytest.mark.parametrize(("change", "fragments"), [
    ({"profile": {"hourly": [1.0] * 23}}, ("hourly lists 23 multipliers; it needs 24",)),
    ({"profile": {"hourly": [-1.0] + [1.0] * 23}}, ("profile.hourly.0",
                                                     "greater than or equal to 0")),
    ({"profile": {"hourly": [True] + [1.0] * 23}}, ("profile.hourly.0", "boolean")),
    ({"profile": {"hourly": [0.0] * 24}}, ("every multiplier of the profile is 0",)),
    ({"profile": {}}, ("exactly one of hourly", "weekly")),
    ({"profile": {"hourly": FLAT, "weekly": [FLAT] * 7}}, ("exactly one of hourly",)),
    ({"profile": {"weekly": [FLAT] * 6}}, ("weekly lists 6 days",)),
    ({"profile": {"weekly": [FLAT] * 6 + [[1.0] * 25]}}, ("weekly day 6 lists 25",)),
    ({"profile": {"daily": FLAT}}, ("profile.daily", "Extra inputs")),
    ({"growth": {"kind": "cubic", "factor": 2, "over_s": "1 y"}}, ("growth.kind",)),
    ({"growth": {"kind": "linear", "factor": 2}}, ("growth kind linear needs factor and "
                                                   "over_s",)),
    ({"growth": {"kind": "exponential", "factor": 0, "over_s": "1 y"}},
     ("growth.factor", "greater than 0")),
    ({"growth": {"kind": "exponential", "factor": 2, "over_s": "1 y", "points": [
        {"at_s": 0, "factor": 1}]}}, ("takes factor and over_s, not points",)),
    ({"growth": {"kind": "table"}}, ("growth kind table needs points",)),
    ({"growth": {"kind": "table", "factor": 2, "points": [{"at_s": 0, "factor": 1}]}},
     ("takes points, not factor or over_s",)),
    ({"growth": {"kind": "table", "points": [{"at_s": "2 d", "factor": 1},
                                             {"at_s": "1 d", "factor": 2}]}},
     ("strictly increasing at_s",)),
    ({"growth": {"kind": "table", "points": [{"at_s": 0, "factor": 0}]}},
     ("every growth factor is 0",)),
    ({"growth": {"kind": "table", "points": [{"at_s": "soon", "factor": 1}]}},
     ("growth.points.0.at_s",)),
    ({"growth": {"kind": "exponential", "factor": 1e6, "over_s": "1 s"}},
     ("grows beyond any finite count",)),
    ({"start_s": "1 d", "profile": None}, ("start_s places the run on the timeline",)),
    ({"start_s": -5, "profile": {"hourly": FLAT}}, ("start_s", "greater than or equal to 0")),
    ({"process": "gamma", "cv": 2, "profile": {"hourly": FLAT}},
     ("not process: gamma",)),
    ({"duration_s": None, "requests": 100, "profile": {"hourly": FLAT}},
     ("a time-varying rate needs duration_s",)),
    ({"duration_s": "11 y", "requests": 100, "profile": {"hourly": FLAT}},
     ("at most 10 years",)),
    ({"start_s": "95 y", "duration_s": "6 y", "requests": 100, "profile": {"hourly": FLAT}},
     ("reaches 101 years into the timeline",)),
    ({"profile": {"hourly": [0.0] * 23 + [1.0]}},
     ("the rate is 0 over the whole window",)),
    ({"rate_per_s": 300, "duration_s": "1 d", "profile": {"hourly": FLAT}},
     ("integral over duration_s is 2.59e+07 requests", "cap with requests")),
])
def test_a_bad_time_varying_rate_names_the_field(change, fragments):
    fields = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as err:
        Arrivals(**fields)
    text = str(err.value)
    for fragment in fragments:
        assert fragment in text, text


def test_a_cap_lets_a_long_window_through_and_counts_the_cap():
    capped = Arrivals(**{**BASE, "rate_per_s": 300, "duration_s": "1 d", "requests": 5000,
                         "profile": {"hourly": FLAT}})
    assert capped.expected_requests == 5000


@pytest.mark.parametrize(("text", "fragments"), [
    ("time_s,rate_per_s\n0,1\n10,abc\n", (":3", "rate_per_s", "'abc' is not a finite number")),
    ("time_s,rate_per_s\n0,1\n0,2\n", (":3", "time_s", "times must increase")),
    ("time_s,rate_per_s\n0,1\n5,-2\n", (":3", "rate_per_s", "negative")),
    ("time_s,rate_per_s\n0,1\n5,nan\n", (":3", "not a finite number")),
    ("time_s,rate_per_s\n0,1\n5,\n", (":3", "missing value")),
    ("time,rate\n0,1\n", ("the header lacks time_s, rate_per_s",)),
    ("time_s,rate_per_s,time_s\n0,1,2\n", ("column time_s is named twice",)),
    ("time_s,rate_per_s\n", ("no rows",)),
    ("# only a comment\n", ("no header row",)),
    ("time_s,rate_per_s\n0,0\n5,0\n", ("every rate is 0",)),
])
def test_a_bad_rate_trace_names_its_line(tmp_path, text, fragments):
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        Arrivals(process="poisson", rate_trace=str(path), duration_s=60)
    for fragment in fragments:
        assert fragment in str(err.value), str(err.value)


def test_rate_trace_rules_against_other_fields(tmp_path):
    one_row = tmp_path / "one.csv"
    one_row.write_text("time_s,rate_per_s\n0,3\n")
    assert Arrivals(process="poisson", rate_trace=str(one_row),
                    duration_s=10).expected_requests == pytest.approx(30)
    with pytest.raises(ValidationError, match="rescales a rate trace to that mean rate"):
        Arrivals(process="poisson", rate_trace=str(one_row), rate_per_s=5, duration_s=10)
    with pytest.raises(ValidationError, match="profile and rate_trace both"):
        Arrivals(process="poisson", rate_trace=str(one_row), duration_s=10,
                 profile={"hourly": FLAT})
    with pytest.raises(ValidationError, match="no such trace file"):
        Arrivals(process="poisson", rate_trace=str(tmp_path / "none.csv"), duration_s=10)


SCENARIO = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"


def test_the_cli_refuses_a_short_profile_with_exit_2():
    result = run_cli("run", str(SCENARIO), "--set", "workload.arrivals.profile.hourly=[1, 2]",
                     "--set", "workload.arrivals.requests=null",
                     "--set", "workload.arrivals.duration_s=60")
    assert_clean_error(result, "workload.arrivals", "hourly lists 2 multipliers")


def test_the_cli_refuses_a_bad_rate_trace_row_with_exit_2(tmp_path):
    trace = tmp_path / "rates.csv"
    trace.write_text("time_s,rate_per_s\n0,1\n10,-1\n")
    result = run_cli("run", str(SCENARIO), "--set", f"workload.arrivals.rate_trace={trace}",
                     "--set", "workload.arrivals.duration_s=60")
    assert_clean_error(result, "rates.csv:3", "rate_per_s", "negative")


def test_the_example_in_the_docs_is_valid_and_counts_what_its_comment_says():
    import math

    import yaml

    text = (ROOT / "docs" / "serving.md").read_text()
    section = text[text.index("## Load that varies in time"):]
    block = section[section.index("```yaml") + len("```yaml"):section.index("```\n", 8)]
    arrivals = Arrivals(**yaml.safe_load(block)["arrivals"])
    # midnight of day 200: 300/s x 0.2 x 3^(t/Y), integrated over the hour from t0 = 200 d:
    # 60 x Y/ln 3 x (3^(t1/Y) - 3^(t0/Y)); the growth at t0 is 3^(200/365.25) = 1.825
    year, t0 = 365.25 * 86_400, 200 * 86_400
    assert 3 ** (t0 / year) == pytest.approx(1.825, abs=0.001)
    by_hand = 60 * year / math.log(3) * (3 ** ((t0 + 3600) / year) - 3 ** (t0 / year))
    assert arrivals.expected_requests == pytest.approx(by_hand, rel=1e-9)
    assert math.isclose(arrivals.expected_requests, 394_000, rel_tol=0.001)
