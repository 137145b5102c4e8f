"""The record a calibrated hardware profile carries: how it was fitted and how well.

``xpusim calibrate`` writes it into the profile it produces, so the profile says itself which
numbers were fitted, from which runs, with what uncertainty, and how far its predictions of
the user's own runs were off before and after (left-one-out: the honest figure). Results
computed with the profile report that error as their confidence band instead of the generic
one of the validation suite.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge
from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG

NonNegative = Annotated[float, Ge(0)]


class ErrorSummary(BaseModel):
    """Median and worst absolute relative error over the measured figures."""

    model_config = SPEC_CONFIG

    median: NonNegative
    worst: NonNegative


class FamilyError(BaseModel):
    """The left-out error of one family of figures (throughput or latency): the band results
    computed with the calibrated profile carry."""

    model_config = SPEC_CONFIG

    family: str
    figures: int
    median: NonNegative
    p90: NonNegative
    worst: NonNegative


class CalibratedParameter(BaseModel):
    """One parameter of the fit: where it lives, its prior, its fitted value and status."""

    model_config = SPEC_CONFIG

    name: str
    field: str = Field(description="dotted path in the profile (or `stack:<id>.<path>`)")
    prior: float = Field(description="the value before calibration, SI")
    value: float = Field(description="the calibrated value, SI")
    relative_sd: NonNegative = Field(description="1-sigma uncertainty, relative")
    status: str = Field(description="fitted, weakly identified or not identified")


class CalibrationRecord(BaseModel):
    """How and how well a profile was calibrated (written by ``xpusim calibrate``)."""

    model_config = SPEC_CONFIG

    command: str
    date: str
    measurements: str = Field(description="the measurements file and its SHA-256")
    runs: list[str]
    figures: int = Field(description="measured figures fitted")
    noise: NonNegative = Field(description="the relative measurement noise assumed")
    error_before: ErrorSummary
    error_after: ErrorSummary
    error_left_out: ErrorSummary = Field(
        description="each run predicted by the fit without it: the expected error of this "
                    "profile on a run like these")
    parameters: list[CalibratedParameter]
    bands: list[FamilyError] = Field(
        default_factory=list, description="the left-out error per family of figures")
    kinds: list[str] = Field(default_factory=list,
                             description="the runs' kinds (training, inference)")
    precisions: list[str] = Field(default_factory=list, description="the runs' precisions")
    max_scale: int = Field(0, description="the largest run, in the accelerators a regime is "
                                          "judged by (cluster for training, one replica for "
                                          "serving); 0: unknown")
