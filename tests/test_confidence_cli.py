"""Confidence through the command line: a run shows its regime's error band (terminal, JSON,
confidence.csv, report.html), an unvalidated precision is flagged as extrapolation, and
``plan --max-expected-error`` drops the candidates it does not trust."""

from __future__ import annotations

import csv

import pytest

from simulator.confidence.lookup import load_bands
from tests.conftest import ROOT, assert_clean_error, run_cli

SCENARIOS = ROOT / "scenarios"
# Llama 3.1 70B on MI300X at fp8, one GPU per replica: the regime of MLPerf's I04 and I40
AMD_FP8 = [str(SCENARIOS / "llama3.1-70b-mi300x-serving.yaml"), "--set",
           "workload.arrivals.requests=60", "--set", "workload.precision=fp8", "--set",
           "workload.parallelism.tp=1"]


def _committed_band(level: str, family: str, **key):
    found = load_bands().find(level, family, key)
    assert found is not None, (level, family, key)
    return found


@pytest.fixture(scope="module")
def amd_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("amd")
    result = run_cli("run", *AMD_FP8, "--quiet", "--format", "json", "--out", str(out))
    assert result.code == 0, result.err
    return result.json(), out


def test_an_amd_serving_run_carries_the_amd_band(amd_run):
    data, _out = amd_run
    confidence = data["confidence"]
    band = next(b for b in confidence["bands"] if b["family"] == "throughput")
    # AMD inference fp8 dense has two held-out throughput figures (I04's), fewer than the
    # three a band needs, so the band is AMD inference fp8: I04's and I40's
    assert len(_committed_band("vendor+kind+precision+moe", "throughput", vendor="AMD",
                               kind="inference", precision="fp8", moe=False).case_ids) < 3
    expected = _committed_band("vendor+kind+precision", "throughput", vendor="AMD",
                               kind="inference", precision="fp8")
    assert band["level"] == "vendor+kind+precision"
    assert band["regime"] == "AMD inference fp8"
    assert band["case_ids"] == expected.case_ids and band["cases"] == expected.cases >= 3
    assert all(case.startswith(("I04", "I40")) for case in band["case_ids"])
    assert band["median_abs_error"] == expected.median_abs_error
    assert confidence["expected_error"] == expected.median_abs_error
    assert (confidence["vendor"], confidence["moe"], confidence["scale"]) == ("AMD", False, 1)
    assert confidence["extrapolated"] is False and confidence["extrapolation"] == []


def test_the_band_is_in_the_csv_and_the_html_of_out(amd_run):
    data, out = amd_run
    band = next(b for b in data["confidence"]["bands"] if b["family"] == "throughput")
    rows = list(csv.DictReader((out / "confidence.csv").open()))
    throughput = next(r for r in rows if r["family"] == "throughput")
    assert float(throughput["median_abs_error"]) == band["median_abs_error"]
    assert throughput["case_ids"].split() == band["case_ids"]
    assert throughput["extrapolated"] == "False"
    page = (out / "report.html").read_text()
    assert f"±{band['median_abs_error']:.1%} typical" in page
    assert "held-out AMD inference fp8 cases" in page


def test_the_terminal_shows_the_band():
    result = run_cli("run", *AMD_FP8, "--quiet")
    assert result.code == 0, result.err
    assert "Confidence" in result.out
    assert "held-out AMD inference fp8 cases" in result.out
    assert "no: vendor, precision, MoE and scale validated" in result.out


def test_an_unvalidated_precision_is_flagged_as_extrapolation():
    # Google trained at bf16 only (T53): fp8 training on a TPU is outside every measurement
    scenario = str(SCENARIOS / "llama3.1-70b-tpu-v5p-training.yaml")
    result = run_cli("run", scenario, "--set", "workload.precision=fp8", "--quiet",
                     "--format", "json")
    assert result.code == 0, result.err
    confidence = result.json()["confidence"]
    assert confidence["extrapolated"] is True
    assert "no validated training case at fp8 on Google (validated: bf16)" in \
        confidence["extrapolation"]
    terminal = run_cli("run", scenario, "--set", "workload.precision=fp8", "--quiet")
    assert "no validated training case at fp8 on Google" in terminal.out


# ---- plan --max-expected-error -----------------------------------------------------------------
PLAN = ["plan", str(SCENARIOS / "llama3.1-8b-h100-serving.yaml"), "--set",
        "workload.arrivals.requests=60", "--rate", "20", "--profiles", "h100-sxm,mi300x",
        "--precisions", "fp8", "--tp", "1", "--no-plot", "--quiet", "--jobs", "1"]


def test_plan_drops_candidates_beyond_the_maximum_expected_error(tmp_path):
    nvidia = _committed_band("vendor+kind+precision+moe", "throughput", vendor="NVIDIA",
                             kind="inference", precision="fp8", moe=False)
    amd = _committed_band("vendor+kind+precision", "throughput", vendor="AMD",
                          kind="inference", precision="fp8")
    assert nvidia.median_abs_error < amd.median_abs_error  # the premise of this test
    limit = (nvidia.median_abs_error + amd.median_abs_error) / 2
    free = run_cli(*PLAN, "--format", "json", cwd=tmp_path)
    assert free.code == 0, free.err
    assert free.json()["winner"]["hardware"] == "mi300x"  # cheaper per hour
    assert free.json()["dropped_for_error"] == {}
    strict = run_cli(*PLAN, "--format", "json", "--max-expected-error", f"{limit:.4f}",
                     cwd=tmp_path)
    assert strict.code == 0, strict.err
    plan = strict.json()
    assert plan["winner"]["hardware"] == "h100-sxm"
    assert plan["winner"]["expected_error"] == nvidia.median_abs_error
    assert plan["dropped_for_error"] == {"expected error above the maximum": 1}
    assert [r["hardware"] for r in plan["pareto"]] == ["h100-sxm"]
    dropped = [r for r in plan["evaluated"] if r.get("dropped_for_error")]
    assert [r["hardware"] for r in dropped] == ["mi300x"]
    terminal = run_cli(*PLAN, "--max-expected-error", f"{limit * 100:.2f}%", cwd=tmp_path)
    assert f"--max-expected-error {limit:.1%}: 1 candidate(s) dropped:" in terminal.out
    assert "1 x expected error above the maximum" in terminal.out
    assert "expected error (cases)" in terminal.out


def test_plan_drops_extrapolated_candidates(tmp_path):
    # bf16 was never validated on AMD serving: dropped as extrapolation whatever the limit
    result = run_cli(*[a if a != "fp8" else "bf16" for a in PLAN], "--profiles", "mi300x",
                     "--format", "json", "--max-expected-error", "0.99", cwd=tmp_path)
    assert result.code == 0, result.err
    plan = result.json()
    assert plan["winner"] is None
    assert plan["dropped_for_error"] == {"extrapolation": 1}


@pytest.mark.parametrize("value", ["0", "-0.1", "abc", "nan", "0%"])
def test_plan_refuses_a_bad_maximum(value, tmp_path):
    result = run_cli(*PLAN, "--max-expected-error", value, cwd=tmp_path)
    assert_clean_error(result, "--max-expected-error", "fraction (0.15) or a percentage")


def test_bands_are_written_from_the_whole_suite_only(tmp_path):
    result = run_cli("validate-against", "validation/", "--only", "T01", "--bands",
                     str(tmp_path / "bands.json"))
    assert_clean_error(result, "--bands describes the whole suite")
    assert not (tmp_path / "bands.json").exists()


def test_compare_shows_each_profiles_expected_error_and_extrapolation(tmp_path):
    result = run_cli("compare", str(SCENARIOS / "llama3.1-70b-h100-serving.yaml"),
                     "--hardware", "h100-sxm,mi300x", "--set", "workload.arrivals.requests=60",
                     "--set", "workload.precision=fp8", "--quiet", "--format", "json",
                     cwd=tmp_path)
    assert result.code == 0, result.err
    rows = {r["hardware"]: r for r in result.json()["rows"]}
    nvidia = _committed_band("vendor+kind+precision+moe", "throughput", vendor="NVIDIA",
                             kind="inference", precision="fp8", moe=False)
    assert rows["h100-sxm"]["metrics"]["expected_error"] == nvidia.median_abs_error
    amd = _committed_band("vendor+kind+precision", "throughput", vendor="AMD",
                          kind="inference", precision="fp8")
    assert rows["mi300x"]["metrics"]["expected_error"] == amd.median_abs_error
    # the MI300X layout compare picks has more than the one GPU per replica AMD was measured at
    flags = [n for n in rows["mi300x"]["notes"] if n.startswith("extrapolation: ")]
    tp, pp = rows["mi300x"]["layout"].split(" x ")[1].split()  # "4 x tp2 pp1"
    layout_devices = int(tp.removeprefix("tp")) * int(pp.removeprefix("pp"))
    assert bool(flags) == (layout_devices > 1)
    assert not [n for n in rows["h100-sxm"]["notes"] if n.startswith("extrapolation: ")]
