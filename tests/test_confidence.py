"""Confidence with every answer (issue 17, item 2): per-regime error bands built from
hand-made validation rows, the fallback from the most to the least specific regime, the
extrapolation flags, and the committed table read by every result."""

from __future__ import annotations

import json

import pytest

from simulator.confidence.lookup import BANDS_FILE, BandTable, confidence_for, load_bands
from simulator.confidence.regime import Regime, metric_family
from simulator.confidence.table import MIN_CASES, BandCase, build_table, p90
from simulator.errors import XpusimError
from simulator.validation.bands import band_case, bands_json, bands_table
from simulator.validation.cases import Case, Source
from simulator.validation.runner import CaseRow, ValidationReport


def _regime(vendor: str = "NVIDIA", kind: str = "training", precision: str = "fp8",
            moe: bool = False, scale: int = 8) -> Regime:
    return Regime(vendor=vendor, kind=kind, precision=precision, moe=moe, scale=scale)


def _case(case_id: str, error: float, *, family: str = "throughput", held_out: bool = True,
          near_saturation: bool = False, **regime) -> BandCase:
    return BandCase(id=case_id, regime=_regime(**regime), family=family, abs_error=error,
                    held_out=held_out, near_saturation=near_saturation)


# Four dense NVIDIA fp8 training figures (10, 20, 30, 40%), one MoE one (50%), one at 64
# accelerators, a calibration figure (1%, never in a band) in bf16, and AMD serving: three
# throughput figures and a server latency at saturation (90%, kept out of the bands).
CASES = [
    _case("T1", 0.10), _case("T2", 0.20), _case("T3", 0.30), _case("T4", 0.40, scale=64),
    _case("T5", 0.50, moe=True),
    _case("T6", 0.01, held_out=False, precision="bf16", scale=128),
    _case("I1", 0.05, vendor="AMD", kind="inference"),
    _case("I2", 0.15, vendor="AMD", kind="inference"),
    _case("I3", 0.25, vendor="AMD", kind="inference", moe=True),
    _case("I4", 0.90, vendor="AMD", kind="inference", family="latency", near_saturation=True),
]


def _table(cases=CASES) -> BandTable:
    return BandTable.model_validate({"generated": "2026-12-02", "command": "test",
                                     **build_table(cases)})


def test_p90_interpolates_between_order_statistics():
    # position 0.9 * (4 - 1) = 2.7: 0.30 + 0.7 * (0.40 - 0.30) = 0.37
    assert p90([0.40, 0.10, 0.30, 0.20]) == pytest.approx(0.37)
    assert p90([0.25]) == 0.25
    # position 0.9 * (2 - 1) = 0.9: 0.1 + 0.9 * 0.1 = 0.19
    assert p90([0.1, 0.2]) == pytest.approx(0.19)


def test_the_most_specific_band_with_enough_cases_matches():
    confidence = confidence_for(_regime(), _table())
    band = confidence.band("throughput")
    assert band is not None
    # dense NVIDIA fp8 training: T1..T4, median (0.2 + 0.3) / 2, p90 0.37, worst 0.40
    assert (band.level, band.cases, band.case_ids) == ("vendor+kind+precision+moe", 4,
                                                       ["T1", "T2", "T3", "T4"])
    assert (band.median_abs_error, band.p90_abs_error, band.worst_abs_error) == \
        (0.25, 0.37, 0.40)
    assert band.regime == "NVIDIA training fp8 dense"
    assert confidence.expected_error == 0.25
    assert not confidence.extrapolated and confidence.extrapolation == []
    assert confidence.band("latency") is None  # training has one family


def test_too_few_cases_fall_back_to_a_wider_regime():
    assert MIN_CASES == 3
    # MoE NVIDIA fp8 training: one case (T5) < 3 -> vendor+kind+precision: T1..T5
    band = confidence_for(_regime(moe=True), _table()).band("throughput")
    assert band is not None and band.level == "vendor+kind+precision"
    # median of 0.1..0.5 = 0.3; p90 at position 3.6: 0.4 + 0.6 * 0.1 = 0.46
    assert (band.cases, band.median_abs_error, band.p90_abs_error) == (5, 0.3, 0.46)
    # AMD serving, dense fp8: vendor+kind+precision+moe has I1, I2 only (< 3);
    # vendor+kind+precision has I1..I3 (the latency at saturation never counts)
    amd = confidence_for(_regime(vendor="AMD", kind="inference"), _table())
    assert amd.band("throughput").level == "vendor+kind+precision"
    assert amd.band("throughput").case_ids == ["I1", "I2", "I3"]
    assert amd.band("throughput").median_abs_error == 0.15
    assert amd.band("latency") is None  # its only latency figure is at saturation


def test_an_unvalidated_vendor_falls_back_to_its_kind_and_is_flagged():
    confidence = confidence_for(_regime(vendor="Google"), _table())
    band = confidence.band("throughput")
    # every held-out dense training figure: T1..T4 (T5 is MoE, T6 calibration)
    assert (band.level, band.cases, band.regime) == ("kind+moe", 4, "training dense")
    assert band.median_abs_error == 0.25
    assert confidence.extrapolated
    assert confidence.extrapolation == ["no validated training case on Google hardware"]


def test_an_unvalidated_precision_moe_or_scale_is_flagged():
    table = _table()
    # bf16 was measured on NVIDIA training (T6, calibration): not extrapolation
    assert not confidence_for(_regime(precision="bf16"), table).extrapolated
    fp4 = confidence_for(_regime(precision="fp4"), table)
    assert fp4.extrapolation == ["no validated training case at fp4 on NVIDIA (validated: "
                                 "bf16/fp8)"]
    # the band of an fp4 run falls back past precision to the dense runs: T1..T4
    assert fp4.band("throughput").level == "vendor+kind+moe"
    assert fp4.band("throughput").case_ids == ["T1", "T2", "T3", "T4"]
    # a MoE run on a vendor without MoE cases falls back to the vendor's: Google has none
    # at all, so the kind's MoE figures (T5 alone, < 3) give way to every training figure
    google_moe = confidence_for(_regime(vendor="Google", moe=True), table)
    assert google_moe.band("throughput").level == "kind"
    assert google_moe.band("throughput").cases == 5
    moe = confidence_for(_regime(vendor="AMD", kind="inference", moe=True), table)
    assert not moe.extrapolated  # I3
    big = confidence_for(_regime(scale=129), table)
    assert big.extrapolation == ["129 accelerators is beyond the largest validated training "
                                 "case on NVIDIA (128)"]
    replica = confidence_for(_regime(vendor="AMD", kind="inference", scale=16), table)
    assert replica.extrapolation == ["16 accelerators per replica is beyond the largest "
                                     "validated inference case on AMD (8)"]


def test_a_kind_without_any_case_has_no_band():
    confidence = confidence_for(_regime(kind="inference", vendor="Intel"),
                                _table([c for c in CASES if c.regime.kind == "training"]))
    assert confidence.bands == [] and confidence.expected_error is None
    assert confidence.extrapolation == ["no validated inference case on Intel hardware"]


def test_metric_families():
    assert metric_family("training.step_time_s") == "throughput"
    assert metric_family("training.accelerator_hours") == "throughput"
    assert metric_family("inference.sustainable_rate_per_s") == "throughput"
    assert metric_family("inference.output_tokens_per_s") == "throughput"
    assert metric_family("inference.ttft_s.mean") == "latency"
    assert metric_family("inference.e2e_s.p50") == "latency"
    assert metric_family("training.failures.expected_interruptions") is None


# ---- from a validation run ----------------------------------------------------------------
def _row(case_id: str, metric: str, measured: float, predicted: float | None, *,
         calibration: bool = False, capacity_case: str | None = None,
         regime: Regime | None = None) -> CaseRow:
    case = Case(id=case_id, title="synthetic", source=Source(url="u", locator="l"),
                confidence="V", vendor="AMD", kind="inference", metric=metric,
                measured=measured, used_for_calibration=calibration,
                calibrated_parameters="x" if calibration else None,
                capacity_case=capacity_case, scenario={})
    return CaseRow(case=case, file="synthetic.yaml", predicted=predicted, failure=None,
                   seconds=0.0, regime=regime or _regime(vendor="AMD", kind="inference"))


def test_a_validation_run_becomes_band_cases():
    tps = "inference.output_tokens_per_s"
    rows = [_row("I01", tps, 100.0, 80.0), _row("I02", tps, 100.0, 110.0),
            _row("I03", tps, 100.0, 95.0, calibration=True),
            _row("I04-ttft", "inference.ttft_s.mean", 1.0, 0.1, capacity_case="I04-cap"),
            _row("I05", tps, 100.0, None),
            _row("T14", "training.failures.expected_interruptions", 419.0, 515.0)]
    cases = [band_case(r) for r in rows]
    assert cases[0].abs_error == pytest.approx(0.2) and cases[0].in_bands
    assert cases[2].held_out is False and not cases[2].in_bands
    assert cases[3].family == "latency" and cases[3].near_saturation
    assert not cases[3].in_bands
    assert cases[4] is None and cases[5] is None  # no prediction; no family
    table = bands_table(ValidationReport(rows=tuple(rows), directory="synthetic"))
    # two held-out throughput figures (20% and 10%) in every level's AMD inference band
    assert table["held_out_cases"] == 2
    kind_band = next(b for b in table["bands"] if b["level"] == "kind")
    assert (kind_band["cases"], kind_band["median_abs_error"]) == (2, 0.15)
    assert table["coverage"] == [{"kind": "inference", "vendor": "AMD", "cases": 4,
                                  "precisions": ["fp8"], "moe": [False], "max_scale": 8}]
    text = bands_json(ValidationReport(rows=tuple(rows), directory="x"), "cmd", "2026-12-02")
    assert json.loads(text)["generated"] == "2026-12-02"


# ---- the committed table --------------------------------------------------------------------
def test_the_committed_table_reads_and_covers_every_vendor_of_the_suite():
    table = load_bands()
    assert table.min_cases == MIN_CASES and table.held_out_cases > 0
    vendors = {c.vendor for c in table.coverage}
    assert {"NVIDIA", "AMD", "Intel", "Google", "AWS"} <= vendors
    for band in table.bands:
        assert band.median_abs_error <= band.p90_abs_error <= band.worst_abs_error
        assert band.cases == len(band.case_ids)


def test_a_broken_table_is_an_error_naming_the_file(tmp_path):
    bad = tmp_path / "bands.json"
    bad.write_text('{"generated": "x"}')
    with pytest.raises(XpusimError, match=r"bands\.json: not a readable error-band table"):
        load_bands(bad)
    with pytest.raises(XpusimError, match="regenerate it"):
        load_bands(tmp_path / "missing.json")
    assert BANDS_FILE.name == "error_bands.json"


# ---- the regime of a scenario ---------------------------------------------------------------
def test_the_regime_of_shipped_scenarios():
    from simulator.confidence.regime import regime_of
    from simulator.loading import load_scenario
    from tests.conftest import ROOT

    def regime(name: str, *overrides: str) -> Regime:
        return regime_of(load_scenario(str(ROOT / "scenarios" / name), list(overrides)))

    # training: the whole cluster (64 H100, TP8 PP2)
    assert regime("llama3.1-70b-h100-training.yaml") == _regime(precision="bf16", scale=64)
    # serving: one replica, whatever the fleet: 9 replicas of TP8 on 72 GB200s -> 8
    assert regime("deepseek-v3-gb200-nvl72-serving.yaml") == _regime(
        kind="inference", precision="fp8", moe=True, scale=8)
    # disaggregated: the larger of the prefill and decode replicas (TP4 and TP8 -> 8)
    assert regime("llama3.1-70b-h100-disaggregated.yaml", "workload.parallelism.tp=4",
                  "workload.disaggregation.decode_parallelism={tp: 8}").scale == 8
    assert regime("llama3.1-70b-h100-disaggregated.yaml", "workload.parallelism.tp=4").scale \
        == 4
    assert regime("llama3.1-70b-mi300x-serving.yaml").vendor == "AMD"
