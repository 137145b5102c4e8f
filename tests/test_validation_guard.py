"""Guard (issue 6): xpusim stays within the agreed error of the published measurements.

Runs every case in ``validation/cases`` through the real :func:`simulator.simulate.simulate`
and fails if any case does not run, if the median absolute error exceeds 15%, or if any case
exceeds 35%. Tighten the limits as the model improves and record the figures in
docs/validation.md.

Until the training and serving engines are wired into ``simulate()`` the results carry no
``training`` or ``inference`` section; a tiny probe scenario of each kind detects that, and
the guard is skipped with that reason. It activates by itself once both engines land.
"""

from __future__ import annotations

import pytest

from simulator import scenario_from_dict
from simulator.simulate import simulate
from simulator.validation import read_metric, run_cases, summarize
from simulator.validation.runner import MetricMissing
from tests.conftest import ROOT

CASES_DIR = ROOT / "validation" / "cases"
MEDIAN_LIMIT = 0.15  # median absolute error over all cases
CASE_LIMIT = 0.35  # absolute error of every single case

_PROBES = {
    "training.mfu": {
        "name": "guard probe: training", "hardware": "h100-sxm", "cluster": {"accelerators": 8},
        "model": "llama3.1-8b",
        "workload": {"kind": "training", "seq_len": 2048, "global_batch_size": 8, "steps": 1,
                     "parallelism": {"tp": 8}},
    },
    "inference.output_tokens_per_s": {
        "name": "guard probe: inference", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
        "model": "llama3.1-8b",
        "workload": {"kind": "inference", "arrivals": {"process": "offline", "requests": 4},
                     "prompt_tokens": 64, "output_tokens": 16},
    },
}


def _engines_wired() -> bool:
    """True once simulate() reports the metrics of both engines on a tiny scenario of each."""
    for metric, data in _PROBES.items():
        try:
            read_metric(simulate(scenario_from_dict(data)), metric)
        except MetricMissing:
            return False
    return True


pytestmark = pytest.mark.skipif(
    not _engines_wired(),
    reason="the training and serving engines are not wired into simulator.simulate.simulate() "
           "yet (a probe's result has no training.mfu / inference.output_tokens_per_s); the "
           "validation guard activates by itself once they are")


@pytest.fixture(scope="module")
def report():
    return run_cases(CASES_DIR)


def test_every_case_runs(report):
    failed = [f"{r.case.id}: {r.failure}" for r in report.failed]
    assert not failed, "cases without a prediction:\n" + "\n".join(failed)


def test_median_absolute_error_within_limit(report):
    overall = summarize(report)[0]
    assert overall.median_abs_error is not None
    assert overall.median_abs_error <= MEDIAN_LIMIT, (
        f"median |error| {overall.median_abs_error:.1%} > {MEDIAN_LIMIT:.0%}; per group:\n"
        + "\n".join(f"{s.group}: median {s.median_abs_error}, worst {s.worst_abs_error} "
                    f"({s.worst_case})" for s in summarize(report)))


def test_every_case_within_limit(report):
    too_far = [f"{r.case.id}: predicted {r.predicted:.4g}, measured {r.case.measured:.4g} "
               f"({r.signed_error:+.1%})"
               for r in report.compared if r.abs_error is not None and r.abs_error > CASE_LIMIT]
    assert not too_far, f"cases beyond {CASE_LIMIT:.0%}:\n" + "\n".join(too_far)
