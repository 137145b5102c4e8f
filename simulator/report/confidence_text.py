"""A result's confidence in words, the same in the terminal, the HTML page and the CSV of
``--out``: the expected error of each family of figures, how many published cases back it
and which regime matched, then each reason the run is extrapolation."""

from __future__ import annotations

from simulator.results.confidence import Confidence, ErrorBand

FAMILY_FIGURES = {
    "throughput": "throughput, cost",
    "latency": "latency",
}


def band_text(band: ErrorBand) -> str:
    """'±19.4% typical, ±26.8% p90 (4 held-out AMD inference cases, matched vendor+kind)'."""
    plural = "case" if band.cases == 1 else "cases"
    return (f"±{band.median_abs_error:.1%} typical, ±{band.p90_abs_error:.1%} p90 "
            f"({band.cases} held-out {band.regime} {plural}, matched {band.level})")


def confidence_rows(confidence: Confidence) -> list[tuple[str, str]]:
    """(label, text) rows: one per band ('unknown' when there is none), then each reason the
    run is extrapolation (or that it is not)."""
    rows = [(f"expected error, {figures}", band_text(band))
            for family, figures in FAMILY_FIGURES.items()
            if (band := confidence.band(family)) is not None]
    if not confidence.bands:
        rows.append(("expected error", "unknown: no held-out published case of this kind"))
    if not confidence.extrapolated:
        return [*rows, ("extrapolation", "no: vendor, precision, MoE and scale validated")]
    return [*rows, *((("extrapolation" if i == 0 else "", reason)
                      for i, reason in enumerate(confidence.extrapolation)))]


def confidence_csv_rows(confidence: Confidence) -> list[list[object]]:
    """Rows of ``confidence.csv``: one per band, plain numbers (fractions)."""
    flags = "; ".join(confidence.extrapolation)
    rows: list[list[object]] = [
        [b.family, b.level, b.regime, b.cases, b.median_abs_error, b.p90_abs_error,
         b.worst_abs_error, confidence.extrapolated, flags, " ".join(b.case_ids)]
        for b in confidence.bands]
    return rows or [["", "", "", 0, "", "", "", confidence.extrapolated, flags, ""]]


CSV_HEADER = ["family", "level", "regime", "cases", "median_abs_error", "p90_abs_error",
              "worst_abs_error", "extrapolated", "extrapolation", "case_ids"]
