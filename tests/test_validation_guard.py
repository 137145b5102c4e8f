"""Guard (issue 6): xpusim may not drift further from the published measurements.

Runs every case in ``validation/cases`` through the real :func:`simulator.simulate.simulate`.
The issue's targets are a median absolute error of at most 15% and no case beyond 35%. Until
calibration reaches them, the limits below are a ratchet set just above the figures of the
last recorded run (docs/validation.md): a change that makes the simulator less true fails,
and each calibration step lowers them toward the targets.
"""

from __future__ import annotations

import pytest

from simulator.validation import error_summary, run_cases
from tests.conftest import ROOT

CASES_DIR = ROOT / "validation" / "cases"
TARGET_MEDIAN, TARGET_CASE = 0.15, 0.35  # issue 6: where the limits must get to
MEDIAN_LIMIT = 0.09  # recorded 2026-11-27 (measured efficiencies, I16, Nemotron recompute): 8.2%
CASE_LIMIT = 0.95  # recorded 2026-11-27: 91.8% (I04-server-ttft)
# Cases known not to produce a prediction, with the reason; a new failure, or a known one
# that starts working, fails the guard so that this list stays true.
KNOWN_FAILURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def report():
    return run_cases(CASES_DIR)


def test_limits_are_the_targets_or_tighter_ratchets():
    """A limit may sit above its target only while calibration has not reached it."""
    assert MEDIAN_LIMIT <= TARGET_MEDIAN  # reached: 8.2% <= 15%
    assert TARGET_CASE <= CASE_LIMIT <= 0.95  # not yet: the server-mode latencies


def test_every_case_runs_except_the_known_ones(report):
    failed = {r.case.id: r.failure for r in report.failed}
    assert set(failed) == set(KNOWN_FAILURES), f"cases without a prediction: {failed}"


def test_median_absolute_error_within_limit(report):
    overall = error_summary(report)[0]
    assert overall.median_abs_error is not None
    assert overall.median_abs_error <= MEDIAN_LIMIT, (
        f"median |error| {overall.median_abs_error:.1%} > {MEDIAN_LIMIT:.0%}; per group:\n"
        + "\n".join(f"{s.group}: median {s.median_abs_error}, worst {s.worst_abs_error} "
                    f"({s.worst_case})" for s in error_summary(report)))


def test_every_case_within_limit(report):
    too_far = [f"{r.case.id}: predicted {r.predicted:.4g}, measured {r.case.measured:.4g} "
               f"({r.signed_error:+.1%})"
               for r in report.compared if r.abs_error is not None and r.abs_error > CASE_LIMIT]
    assert not too_far, f"cases beyond {CASE_LIMIT:.0%}:\n" + "\n".join(too_far)
