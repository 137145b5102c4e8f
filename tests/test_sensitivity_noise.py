"""Issue 17 item 5: sensitivity with a noise estimate. Common random numbers (the baseline
and every variant of a seed see the same requests), repeated seeds, a 95% interval per
effect, and effects within noise marked and ranked after real ones."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest

from simulator.loading import load_scenario
from simulator.profiles.overrides import apply_overrides
from simulator.simulate import simulate
from simulator.studies.paired import Interval, interval, paired_and_unpaired_sd
from simulator.studies.rows import Base
from simulator.studies.sensitivity import run_sensitivity
from tests.conftest import assert_clean_error, run_cli

ROOT = Path(__file__).resolve().parent.parent
SERVING_8B = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"  # tp: 1, seed 7
SHORT = ["workload.arrivals.requests=300"]


def _base(path: Path, overrides: list[str]) -> Base:
    base = Base.from_file(path)
    return Base(apply_overrides(base.data, overrides), base.base_dir, base.file)


@pytest.fixture(scope="module")
def tpot_study():
    """The 8B at TP1, ranked by p99 TPOT over four seeds: HBM bandwidth against scale-up
    bandwidth, which no TP1 replica uses (no tensor-parallel collectives)."""
    return run_sensitivity(_base(SERVING_8B, SHORT), metric="tpot_p99_s", seeds=4,
                           only=["scale_up_bandwidth", "hbm_bandwidth"])


# ---- common random numbers ---------------------------------------------------------------
def test_the_same_seed_draws_the_same_requests_on_any_hardware():
    """The engine draws arrivals and lengths from the seed alone, so a perturbed part is run
    on exactly the baseline's requests; another seed draws other requests."""
    def requests(*overrides: str):
        scenario = load_scenario(SERVING_8B, overrides=[*SHORT, *overrides])
        return simulate(scenario).requests

    base = requests()
    faster = requests("hardware=h200-sxm")  # another profile entirely: other HBM, same seed
    for column in ("arrival_s", "prompt_tokens", "output_tokens"):
        assert list(getattr(base, column)) == list(getattr(faster, column)), column
    assert list(base.finish_s) != list(faster.finish_s)  # the part did change the run
    other_seed = requests("seed=8")
    assert list(base.arrival_s) != list(other_seed.arrival_s)


def test_every_variant_of_a_seed_runs_with_that_seed(tpot_study):
    assert tpot_study.seeds == [7, 8, 9, 10]  # the scenario's seed, +1, ...
    for k, seed in enumerate(tpot_study.seeds):
        assert tpot_study.baseline_rows[k]["seed"] == seed
        for e in tpot_study.effects:
            assert e.low_rows[k]["seed"] == seed and e.high_rows[k]["seed"] == seed


def test_paired_differences_spread_less_than_unpaired_on_a_real_run(tpot_study):
    """With CRN the seed-to-seed swing of the workload cancels out of the difference."""
    (hbm,) = [e for e in tpot_study.effects if e.parameter.name == "hbm_bandwidth"]
    base = [row["tpot_p99_s"] for row in tpot_study.baseline_rows]
    high = [row["tpot_p99_s"] for row in hbm.high_rows]
    paired, unpaired = paired_and_unpaired_sd(base, high)
    assert paired < unpaired / 2


def test_paired_and_unpaired_spread_by_hand():
    # base 10, 12, 14, 16; other about 1 lower on each seed.
    # paired: -1, -0.8, -1.1, -0.9; mean -0.95, squared deviations .0025 + .0225 + .0225
    #   + .0025 = .05, / 3 -> sd = sqrt(0.016667) = 0.1291
    # unpaired (seed k against k+1): 9-12, 11.2-14, 12.9-16, 15.1-10 = -3, -2.8, -3.1, 5.1;
    #   mean -0.95, squared deviations 4.2025 + 3.4225 + 4.6225 + 36.6025 = 48.85, / 3
    #   -> sd = sqrt(16.2833) = 4.0353
    paired, unpaired = paired_and_unpaired_sd([10, 12, 14, 16], [9, 11.2, 12.9, 15.1])
    assert paired == pytest.approx(math.sqrt(0.05 / 3))
    assert unpaired == pytest.approx(math.sqrt(48.85 / 3))
    with pytest.raises(ValueError):
        paired_and_unpaired_sd([1.0], [2.0])


# ---- the interval and its verdict ----------------------------------------------------------
def test_interval_by_hand():
    # 1, 2, 3: mean 2, s = 1, half = t(0.975, 2) * 1 / sqrt(3) = 4.303 / 1.7321 = 2.4843
    wide = interval([1.0, 2.0, 3.0])
    assert wide.mean == 2.0 and wide.half == pytest.approx(4.303 / math.sqrt(3))
    assert wide.within_noise is True and wide.verdict == "within noise"
    # 0.9, 1.0, 1.1: mean 1, s = 0.1, half = 0.24843 < 1
    tight = interval([0.9, 1.0, 1.1])
    assert tight.half == pytest.approx(0.4303 / math.sqrt(3))
    assert tight.within_noise is False and tight.verdict == "real"
    assert interval([0.0, 0.0]).verdict == "no effect"
    assert interval([]) is None


def test_one_seed_is_exact_only_where_no_seed_enters():
    assert interval([0.3], deterministic=True) == Interval(mean=0.3, half=0.0, n=1)
    unknown = interval([0.3])
    assert unknown.half is None and unknown.within_noise is None and unknown.verdict == ""


# ---- the study -------------------------------------------------------------------------------
def test_a_parameter_that_cannot_matter_is_within_noise_and_ranked_last(tpot_study):
    first, second = tpot_study.effects
    assert first.parameter.name == "hbm_bandwidth"
    el = first.elasticity_interval["tpot_p99_s"]
    assert el.n == 4 and el.half is not None
    assert el.mean + el.half < 0  # more bandwidth, shorter decode steps: excludes 0
    assert first.verdict("tpot_p99_s") == "real"
    assert second.parameter.name == "scale_up_bandwidth"
    assert second.within_noise("tpot_p99_s")
    for metric in tpot_study.metrics:  # at TP1 it moves nothing, on any seed
        assert second.elasticity_interval[metric] == Interval(mean=0.0, half=0.0, n=4)


def test_within_noise_is_never_ranked_above_a_real_effect():
    """A 70B at TP8: p99 TTFT of a short Poisson run swings with batching luck."""
    result = run_sensitivity(_base(ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml",
                                   ["workload.arrivals.requests=200"]), seeds=3,
                             only=["peak_flops", "scale_up_latency", "power"])
    flags = [e.within_noise(result.metric) for e in result.effects]
    assert flags == sorted(flags)  # False (real) before True (within noise)
    assert result.effects[0].parameter.name == "peak_flops"
    assert result.effects[-1].verdict(result.metric) == "no effect"  # power: cost only


def test_training_needs_one_seed_and_its_interval_is_zero():
    result = run_sensitivity(_base(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml",
                                   ["workload.failures.enabled=false"]),
                             only=["hbm_bandwidth"])
    assert len(result.seeds) == 1 and result.deterministic
    (effect,) = result.effects
    assert effect.elasticity_interval["step_time_s"].half == 0.0
    assert result.baseline_interval["step_time_s"].half == 0.0


def test_training_with_failures_does_not_claim_an_exact_cost():
    """Failures are drawn from the seed: with one seed the cost has no interval."""
    result = run_sensitivity(_base(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml",
                                   ["workload.failures.enabled=true"]),
                             only=["hbm_bandwidth"], metric="cost_usd")
    assert not result.deterministic
    (effect,) = result.effects
    assert effect.elasticity_interval["cost_usd"].half is None
    assert effect.elasticity_interval["step_time_s"].half == 0.0


# ---- the command -------------------------------------------------------------------------
def _cli(*extra: str):
    return run_cli("sensitivity", str(SERVING_8B), "--set", SHORT[0], "--seeds", "3",
                   "--only", "hbm_bandwidth", "--only", "scale_up_bandwidth",
                   "--metric", "tpot_p99_s", "--jobs", "1", *extra)


def test_cli_table_json_and_csv_carry_the_interval(tmp_path):
    out = tmp_path / "effects.csv"
    table = _cli("--out", str(out))
    assert table.code == 0, table.err
    assert "over 3 seeds" in table.out and "within noise" in table.out
    assert "±" in table.out and "no effect" in table.out
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 * 5  # two parameters x five metrics
    top = rows[0]
    assert (top["parameter"], top["metric"], top["verdict"]) == ("hbm_bandwidth",
                                                                 "tpot_p99_s", "real")
    assert float(top["elasticity_ci95"]) < abs(float(top["elasticity"]))
    assert top["seeds"] == "3"
    data = json.loads(_cli("--format", "json").out)
    assert data["seeds"] == [7, 8, 9] and data["common_random_numbers"] is True
    second = data["effects"][1]
    assert second["parameter"] == "scale_up_bandwidth"
    assert second["elasticity_ci95"]["tpot_p99_s"] == 0.0
    assert second["verdict"]["tpot_p99_s"] == "no effect"
    json_out = tmp_path / "effects.json"
    assert _cli("--out", str(json_out), "--format", "json").code == 0
    assert json.loads(json_out.read_text())["effects"] == data["effects"]


def test_cli_one_serving_seed_says_noise_is_not_estimated():
    result = run_cli("sensitivity", str(SERVING_8B), "--set", SHORT[0], "--seeds", "1",
                     "--only", "hbm_bandwidth", "--jobs", "1")
    assert result.code == 0, result.err
    assert "noise: not estimated (one seed)" in result.out


@pytest.mark.parametrize(("extra", "message"), [
    (("--seeds", "0"), "argument --seeds: '0'"),
    (("--seeds", "many"), "argument --seeds"),
    (("--out", "effects.txt"), "--out effects.txt: give a .csv or .json file name"),
])
def test_cli_bad_flags(extra, message, tmp_path):
    result = run_cli("sensitivity", str(SERVING_8B), *extra, cwd=tmp_path)
    assert_clean_error(result, message)
