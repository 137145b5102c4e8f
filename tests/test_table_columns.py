"""Issue 17 item 8: one unit per column in the study tables (sweep, plan, sensitivity)."""

from __future__ import annotations

import pytest

from simulator.report.columns import column_cells, fmt, humanised, labelled
from tests.conftest import run_cli


def test_a_column_of_short_durations_stays_in_seconds():
    header, cells = column_cells("ttft_p99_s", [0.09774, 55.83, None])
    assert header == "ttft_p99_s"
    assert cells == ["0.09774", "55.83", ""]


def test_one_long_duration_humanises_the_whole_column_and_drops_the_unit():
    """The issue's example: '3.6 min' next to '4.024' under ttft_p99_s."""
    header, cells = column_cells("ttft_p99_s", [4.024, 216.0])
    assert header == "ttft_p99"
    assert cells == ["4.02 s", "3.6 min"]


def test_rates_money_and_flags_are_not_durations():
    assert not humanised("requests_per_s", [1e6])
    assert column_cells("requests_per_s", [500.0])[0] == "requests_per_s"
    assert fmt(12345.6, "usd_per_hour") == "12,346"
    assert fmt(True) == "yes" and fmt(None) == ""


@pytest.mark.parametrize(("value", "text"), [(0.5, "ttft_p99_s = 0.5"),
                                              (7200.0, "ttft_p99 = 2 h")])
def test_a_figure_in_a_line_of_text_states_its_unit_once(value, text):
    assert labelled("ttft_p99_s", value) == text


def test_the_sweep_table_never_mixes_units_in_a_column(tmp_path):
    """Through the CLI: at 5 requests/s p99 TTFT is a fraction of a second, at 400/s (past
    the ~23/s one H100 serves) the queue of 4,000 requests makes it minutes; the column is
    humanised as a whole and titled without '_s'."""
    result = run_cli("sweep", "scenarios/llama3.1-8b-h100-serving.yaml",
                     "--grid", "workload.arrivals.rate_per_s=5,400",
                     "--set", "workload.arrivals.requests=4000",
                     "--out", str(tmp_path / "rows.csv"))
    assert result.code == 0, result.err
    header = next(line for line in result.out.splitlines() if "status" in line)
    assert "ttft_p99 " in header and "ttft_p99_s" not in header
    rows = [line for line in result.out.splitlines() if " ok " in line]
    assert len(rows) == 2
    assert all(any(unit in row for unit in (" ms", " s ", " min", " h")) for row in rows)
    csv_text = (tmp_path / "rows.csv").read_text()
    assert "ttft_p99_s" in csv_text.splitlines()[0]  # the CSV keeps plain seconds
