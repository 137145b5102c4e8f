"""How far to trust a result: the error xpusim showed on published measurements of the same
regime, and whether the run lies outside everything measured.

Filled by :mod:`simulator.confidence` from the committed per-regime statistics of the
validation suite (``simulator/confidence/error_bands.json``); plain data, like every result
record.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorBand(BaseModel):
    """The absolute relative error of one family of figures over the held-out published cases
    of the most specific regime that has enough of them."""

    model_config = ConfigDict(frozen=True)

    family: str = Field(description="throughput (throughput, step time, sustainable rate, "
                                    "and what follows from them: cost, energy, time to train) "
                                    "or latency (TTFT, TPOT, end to end)")
    level: str = Field(description="which regime matched, most to least specific: "
                                   "vendor+kind+precision+moe, vendor+kind+precision, "
                                   "vendor+kind+moe, vendor+kind, kind+moe, kind")
    regime: str = Field(description="the matched regime in words, e.g. 'AMD inference fp8'")
    cases: int = Field(description="held-out published figures behind the band")
    case_ids: list[str] = Field(description="their validation case ids")
    median_abs_error: float = Field(description="median |predicted - measured| / measured: "
                                                "the expected error")
    p90_abs_error: float = Field(description="90th percentile of the same (linear "
                                             "interpolation): the band's upper edge")
    worst_abs_error: float = Field(description="the largest of the same")


class Confidence(BaseModel):
    """The expected error of a result and whether it extrapolates beyond the validated
    regimes (``docs/planning.md``, "Confidence")."""

    model_config = ConfigDict(frozen=True)

    vendor: str = Field(description="the hardware profile's vendor")
    moe: bool = Field(description="whether the model has mixture-of-experts layers")
    scale: int = Field(description="accelerators the regime is judged by: the cluster "
                                   "(training) or one replica (serving; replicas do not "
                                   "interact)")
    expected_error: float | None = Field(
        description="the throughput band's median |error| (None: no band); what "
                    "`plan --max-expected-error` compares")
    bands: list[ErrorBand] = Field(description="one per family with published cases")
    extrapolated: bool = Field(description="the run lies outside every validated case of "
                                           "its vendor and kind (see extrapolation)")
    extrapolation: list[str] = Field(description="why, one line per reason: no validated "
                                                 "case of the vendor, precision or MoE-ness, "
                                                 "or a scale beyond the largest validated")
    source: str = Field(description="the validation run the bands come from")

    def band(self, family: str) -> ErrorBand | None:
        """The band of ``family`` (throughput or latency), if there is one."""
        return next((b for b in self.bands if b.family == family), None)
