"""The confidence of a result computed with a calibrated profile: the calibration's own
left-out error on the user's runs, instead of the validation suite's generic band.

A profile fitted to the user's runs (``xpusim calibrate``) carries in its ``calibration``
record how far it predicted each of those runs when the run was left out of the fit. For a
run like those (same kind, a precision and a scale they covered) that is the best estimate of
the error there is; outside them the result says it extrapolates.
"""

from __future__ import annotations

from simulator.confidence.regime import THROUGHPUT, Regime
from simulator.profiles.calibration_record import CalibrationRecord
from simulator.results.confidence import Confidence, ErrorBand

LEVEL = "calibration"


def calibrated_confidence(record: CalibrationRecord, regime: Regime, profile: str,
                          generic: Confidence) -> Confidence:
    """The calibration's bands for ``regime``; ``generic`` (the suite's) where the runs
    were of another kind, with the reason in its source."""
    if regime.kind not in record.kinds or not record.bands:
        return generic.model_copy(update={
            "source": f"{generic.source}; {profile}'s calibration covers "
                      f"{'/'.join(record.kinds) or 'no'} runs, not {regime.kind}"})
    runs = f"{len(record.runs)} calibration run{'s' if len(record.runs) != 1 else ''}"
    bands = [ErrorBand(family=b.family, level=LEVEL, regime=f"{profile} on your {runs}",
                       cases=b.figures, case_ids=list(record.runs), median_abs_error=b.median,
                       p90_abs_error=b.p90, worst_abs_error=b.worst) for b in record.bands]
    headline = next((b for b in bands if b.family == THROUGHPUT), None)
    reasons = []
    if regime.precision not in record.precisions:
        reasons.append(f"calibrated on {'/'.join(record.precisions)} runs; this run is "
                       f"{regime.precision}")
    if record.max_scale and regime.scale > record.max_scale:
        reasons.append(f"{regime.scale} accelerators is beyond the largest calibration run "
                       f"({record.max_scale})")
    return Confidence(vendor=regime.vendor, moe=regime.moe, scale=regime.scale,
                      expected_error=headline.median_abs_error if headline else None,
                      bands=bands, extrapolated=bool(reasons), extrapolation=reasons,
                      source=f"leave-one-out error of {profile}'s calibration "
                             f"({record.date}, {record.measurements})")
