"""The committed error bands, and the confidence of one regime: the most specific band with
enough held-out cases per family, and the extrapolation flags.

The table is read once per process from ``error_bands.json`` next to this module (regenerate
it with ``xpusim validate-against validation/ --bands simulator/confidence/error_bands.json``;
``tests/test_validation_guard.py`` fails when it is stale), and each regime's answer is
cached: a sweep of thousands of points pays for one lookup per regime.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from simulator.confidence.calibrated import calibrated_confidence
from simulator.confidence.regime import FAMILIES, THROUGHPUT, Regime, regime_of
from simulator.confidence.table import LEVELS, level_key
from simulator.errors import XpusimError
from simulator.profiles.scenario import Scenario
from simulator.results.confidence import Confidence, ErrorBand

BANDS_FILE = Path(__file__).with_name("error_bands.json")


class _Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: str
    family: str
    key: dict[str, str | bool]
    regime: str
    cases: int
    case_ids: list[str]
    median_abs_error: float
    p90_abs_error: float
    worst_abs_error: float


class _Coverage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    vendor: str
    cases: int
    precisions: list[str]
    moe: list[bool]
    max_scale: int


class BandTable(BaseModel):
    """The file's content (see :func:`simulator.confidence.table.build_table`), with the
    line saying which validation run it comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generated: str
    command: str
    levels: list[str]
    min_cases: int
    held_out_cases: int
    bands: list[_Band]
    coverage: list[_Coverage]

    def find(self, level: str, family: str, key: dict[str, Any]) -> _Band | None:
        """The band of ``family`` for the regime ``key`` at ``level`` (None: no case)."""
        return next((b for b in self.bands
                     if b.level == level and b.family == family and b.key == key), None)

    def covered(self, kind: str, vendor: str) -> _Coverage | None:
        """What was measured for ``kind`` on ``vendor``'s hardware (None: nothing)."""
        return next((c for c in self.coverage if c.kind == kind and c.vendor == vendor), None)


def load_bands(path: str | Path = BANDS_FILE) -> BandTable:
    """Read and check a band table; a missing or malformed file is an installation error."""
    try:
        return BandTable.model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError, ValidationError) as exc:
        raise XpusimError(f"{path}: not a readable error-band table ({exc}); regenerate it "
                          f"with xpusim validate-against validation/ --bands {path}") from exc


@lru_cache(maxsize=1)
def _committed() -> BandTable:
    return load_bands()


def _band(table: BandTable, regime: Regime, family: str) -> ErrorBand | None:
    """The most specific band of ``family`` with at least ``min_cases`` held-out cases."""
    for level in LEVELS:
        found = table.find(level, family, level_key(regime, level))
        if found is not None and found.cases >= table.min_cases:
            return ErrorBand(family=family, level=level, regime=found.regime,
                             cases=found.cases, case_ids=found.case_ids,
                             median_abs_error=found.median_abs_error,
                             p90_abs_error=found.p90_abs_error,
                             worst_abs_error=found.worst_abs_error)
    return None


def extrapolation(table: BandTable, regime: Regime) -> list[str]:
    """Why ``regime`` lies outside the validated cases of its vendor and kind ([]: inside).
    No commas: the reasons go into CSV cells that quick tools split on them."""
    kind, vendor = regime.kind, regime.vendor
    seen = table.covered(kind, vendor)
    if seen is None:
        return [f"no validated {kind} case on {vendor} hardware"]
    reasons = []
    if regime.precision not in seen.precisions:
        reasons.append(f"no validated {kind} case at {regime.precision} on {vendor} "
                       f"(validated: {'/'.join(seen.precisions)})")
    if regime.moe not in seen.moe:
        reasons.append(f"no validated {'MoE' if regime.moe else 'dense'}-model {kind} case "
                       f"on {vendor}")
    if regime.scale > seen.max_scale:
        unit = "accelerators per replica" if kind == "inference" else "accelerators"
        reasons.append(f"{regime.scale} {unit} is beyond the largest validated {kind} case "
                       f"on {vendor} ({seen.max_scale})")
    return reasons


def confidence_for(regime: Regime, table: BandTable) -> Confidence:
    """The bands and extrapolation flags of ``regime`` in ``table``."""
    families = [THROUGHPUT] if regime.kind == "training" else list(FAMILIES)
    bands = [b for b in (_band(table, regime, f) for f in families) if b is not None]
    headline = next((b for b in bands if b.family == THROUGHPUT), None)
    reasons = extrapolation(table, regime)
    return Confidence(vendor=regime.vendor, moe=regime.moe, scale=regime.scale,
                      expected_error=headline.median_abs_error if headline else None,
                      bands=bands, extrapolated=bool(reasons), extrapolation=reasons,
                      source=f"validation run of {table.generated} ({table.held_out_cases} "
                             f"held-out figures in the bands)")


@lru_cache(maxsize=512)
def _cached(regime: Regime) -> Confidence:
    return confidence_for(regime, _committed())


def confidence_of(scenario: Scenario) -> Confidence:
    """The confidence of a validated scenario against the committed band table, or against
    its profile's own calibration when it has one (:mod:`simulator.confidence.calibrated`)."""
    regime = regime_of(scenario)
    generic = _cached(regime)
    record = scenario.hardware.calibration
    if record is None:
        return generic
    return calibrated_confidence(record, regime, scenario.hardware.id, generic)
