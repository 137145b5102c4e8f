"""Issue 17 item 7: the long study commands report progress (plan, sensitivity,
validate-against), silently when asked or when not on a terminal."""

from __future__ import annotations

from simulator.studies.executors import InProcessExecutor, ReportingExecutor
from tests.conftest import run_cli


def _square(context, item):
    return context * item * item


def test_a_reporting_executor_counts_every_item_over_every_round():
    """A training plan submits layouts in rounds: the total grows with each round and the
    count of finished items never goes back."""
    calls: list[tuple[float, float]] = []
    executor = ReportingExecutor(InProcessExecutor(), lambda d, t: calls.append((d, t)))
    first = dict(executor.imap(_square, 2, [1, 2, 3]))
    second = dict(executor.imap(_square, 1, [4, 5]))
    assert first == {0: 2, 1: 8, 2: 18} and second == {0: 16, 1: 25}
    assert calls == [(1, 3), (2, 3), (3, 3), (4, 5), (5, 5)]
    assert (executor.name, executor.workers) == ("in-process", 1)


def test_plan_sensitivity_and_validation_take_quiet_and_print_no_bar_off_a_terminal():
    """Off a terminal (as here) no bar reaches stderr, with or without --quiet."""
    scenario = "scenarios/llama3.1-8b-h100-serving.yaml"
    for args in (("validate-against", "--only", "T01"),
                 ("validate-against", "--only", "T01", "--quiet"),
                 ("sensitivity", scenario, "--only", "hbm_bandwidth", "--quiet",
                  "--set", "workload.arrivals.requests=200")):
        result = run_cli(*args)
        assert result.code == 0, result.err
        assert result.err == ""
