"""`compare` and `xpusim compare`: ratios that add up, reasoned rows, formats, sizing rules."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from simulator.cli import main as cli_main
from simulator.cli.compare_cmd import hardware_list
from simulator.economics.power import Activity, power_model
from simulator.errors import InputError
from simulator.loading import load_scenario
from simulator.profiles.catalog import load_hardware, load_model
from simulator.report.progress import ProgressBar, progress_bar
from simulator.studies.compare import DOES_NOT_FIT, INFEASIBLE, OK, compare
from tests.conftest import ROOT

SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
SERVING_70B = ROOT / "scenarios" / "llama3.1-70b-h100-serving.yaml"
TRAINING = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
SMALL = ["workload.arrivals.requests=120", "cluster.accelerators=8"]


def xpusim(capsys, *args: str) -> tuple[int, str, str]:
    """The real `xpusim` entry point, in process."""
    code = cli_main.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def serving():
    return compare(SERVING, ["h100-sxm", "mi300x", "gaudi3"], overrides=SMALL, fixed_load=True)


# ---- ratios ---------------------------------------------------------------------------------
def test_baseline_row_is_one_and_ratios_are_value_over_baseline(serving):
    base = serving.rows[0]
    assert base.hardware == "h100-sxm" and base.status == OK
    for key, value in base.metrics.items():
        if value:
            assert base.ratios[key] == pytest.approx(1.0)
    for row in serving.rows[1:]:
        assert row.status == OK
        for key, value in row.metrics.items():
            if value is not None and base.metrics[key]:
                assert row.ratios[key] == pytest.approx(value / base.metrics[key])
    assert {m.key for m in serving.metrics} == set(base.metrics)


def test_serving_rows_carry_the_headline_figures(serving):
    row = serving.rows[1]
    for key in ("output_tokens_per_s", "ttft_p50_s", "ttft_p99_s", "tpot_p50_s",
                "tpot_p99_s", "utilization", "cost_per_million_tokens_usd",
                "energy_per_token_j", "cost_usd"):
        assert row.metrics[key] is not None and row.metrics[key] > 0, key
    result = row.result
    assert result is not None and result.steady is not None
    # the steady window's figures (warm-up and drain left out), not the whole run's
    steady = result.steady
    assert row.metrics["energy_per_token_j"] == pytest.approx(3.6e6 / steady.tokens_per_kwh)
    assert row.metrics["output_tokens_per_s_per_accelerator"] == pytest.approx(
        steady.output_tokens_per_s / row.accelerators)
    assert row.metrics["cost_per_million_tokens_usd"] == steady.cost_per_million_tokens_usd


def test_compare_is_deterministic(serving):
    again = compare(SERVING, ["h100-sxm", "mi300x", "gaudi3"], overrides=SMALL, fixed_load=True)
    assert again.as_dict() == serving.as_dict()


def test_same_count_and_smallest_fitting_layout(serving):
    assert all(r.accelerators == 8 for r in serving.rows)
    # An 8B model fits one device of each: one replica per accelerator.
    assert all(r.parallelism["tp"] == 1 and r.parallelism["replicas"] == 8
               for r in serving.rows)


def test_layout_grows_until_a_full_batch_fits():
    c = compare(SERVING_70B, ["h100-sxm", "mi300x"], overrides=SMALL, fixed_load=True)
    h100, mi300x = c.rows
    assert (h100.parallelism["tp"], h100.parallelism["replicas"]) == (4, 2)
    assert (mi300x.parallelism["tp"], mi300x.parallelism["replicas"]) == (2, 4)
    assert "scenario has tp8" in h100.notes[0]


# ---- rows that cannot run ------------------------------------------------------------------
def test_a_profile_that_cannot_fit_is_a_reasoned_row():
    c = compare(SERVING_70B, ["h100-sxm", "tpu-v5e"], overrides=SMALL, fixed_load=True)
    row = c.rows[1]
    assert row.status == DOES_NOT_FIT
    assert "tpu-v5e" in row.reason and "GB" in row.reason
    assert all(v is None for v in row.metrics.values()) or not row.metrics
    assert all(v is None for v in row.ratios.values())
    assert c.rows[0].status == OK


def test_training_keeps_the_layout_and_reports_what_does_not_fit():
    c = compare(ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml",
                ["h100-sxm", "tpu-v5e", "a100-sxm"])
    h100, tpu, a100 = c.rows
    assert tpu.status == DOES_NOT_FIT and "needs" in tpu.reason
    assert h100.layout == a100.layout == "tp8 pp2 dp4"
    assert a100.metrics["step_time_s"] > h100.metrics["step_time_s"]
    assert a100.ratios["mfu"] == pytest.approx(a100.metrics["mfu"] / h100.metrics["mfu"])


def test_an_unsupported_precision_is_an_infeasible_row():
    c = compare(SERVING, ["h100-sxm", "a100-sxm"], overrides=[*SMALL, "workload.precision=fp8"],
                fixed_load=True)
    assert c.rows[1].status == INFEASIBLE
    assert "fp8" in c.rows[1].reason


def test_a_failed_baseline_leaves_no_ratios():
    c = compare(SERVING_70B, ["tpu-v5e", "h100-sxm"], overrides=SMALL, fixed_load=True)
    assert c.rows[0].status == DOES_NOT_FIT
    assert c.rows[1].status == OK and c.rows[1].metrics
    assert all(v is None for v in c.rows[1].ratios.values())
    assert c.notes and "no ratios" in c.notes[0]


def test_unknown_profile_and_bad_match_are_input_errors():
    with pytest.raises(InputError, match="unknown hardware profile"):
        compare(SERVING, ["h100-sxm", "h999"])
    with pytest.raises(InputError, match="--match"):
        compare(SERVING, ["h100-sxm"], match="weight")
    with pytest.raises(InputError):
        hardware_list([" , "])


# ---- sizing by power and by cost ------------------------------------------------------------
def _facility_w(hw_id: str) -> float:
    return power_model(load_hardware(hw_id), 1.2).facility_w(Activity(1.0, 1.0, 0.0))


def test_power_match_stays_within_the_baselines_budget():
    c = compare(TRAINING, ["h100-sxm", "a100-sxm", "b200"], match="power")
    budget = 8 * _facility_w("h100-sxm")
    assert c.rows[0].accelerators == 8
    for row in c.rows[1:]:
        assert row.status == OK
        each = _facility_w(row.hardware)
        assert row.accelerators * each <= budget * (1 + 1e-9)
        assert (row.accelerators + row.parallelism["tp"]) * each > budget or \
            row.accelerators % 8 == 0  # rounded down by less than one group or domain
    assert c.rows[1].accelerators >= 8  # A100s draw less: as many (whole 8-GPU domains)
    assert c.rows[2].accelerators < 8  # B200s draw more: fewer


def test_power_match_rounds_training_to_groups_and_keeps_the_batch_divisible():
    c = compare(ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml",
                ["h100-sxm", "mi300x"], match="power")
    mi300x = c.rows[1]
    par = mi300x.parallelism
    assert mi300x.accelerators % (par["tp"] * par["pp"]) == 0
    assert par["global_batch_size"] % par["dp"] == 0
    if par["global_batch_size"] != 512:
        assert any("global_batch_size 512 ->" in n for n in mi300x.notes)


def test_cost_match_stays_within_the_spend_per_hour():
    c = compare(SERVING, ["h100-sxm", "mi300x", "a100-sxm"], match="cost", overrides=SMALL,
                fixed_load=True)
    price = {r.hardware: load_hardware(r.hardware).price.cloud_per_device_hour.value
             for r in c.rows}
    budget = 8 * price["h100-sxm"]
    for row in c.rows:
        assert row.status == OK
        assert row.accelerators * price[row.hardware] <= budget * (1 + 1e-9)
    assert c.rows[1].accelerators >= 8


def test_a_scenario_price_applies_to_its_own_hardware_only():
    c = compare(SERVING, ["h100-sxm", "mi300x"],
                overrides=[*SMALL, "cost.cloud_usd_per_hour=10"], fixed_load=True)
    h100, mi300x = c.rows
    assert h100.result.cost.usd_per_accelerator_hour == pytest.approx(10.0)
    assert mi300x.result.cost.usd_per_accelerator_hour == pytest.approx(
        load_hardware("mi300x").price.cloud_per_device_hour.value)
    assert any("cloud_usd_per_hour" in n for n in mi300x.notes)


def test_compare_takes_a_mapping_and_reports_progress():
    seen = []
    data = {"name": "tiny", "hardware": "h100-sxm", "cluster": {"accelerators": 8},
            "model": "llama3.1-8b",
            "workload": {"kind": "training", "seq_len": 4096, "global_batch_size": 64,
                         "steps": 10, "recompute": "full",
                         "parallelism": {"tp": 2, "zero": 3}}}
    c = compare(data, ["h100-sxm", "h200-sxm"], progress=lambda d, t: seen.append((d, t)))
    assert (1, 2) in seen and seen[-1] == (2, 2)
    assert all(t == 2 and 0 <= d <= 2 for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert c.kind == "training" and c.rows[1].ratios["tokens_per_s"] > 1.0


# ---- the command ----------------------------------------------------------------------------
def test_table_puts_profiles_side_by_side(capsys):
    code, out, _ = xpusim(capsys, "compare", str(SERVING_70B), "--hardware",
                          "h100-sxm,mi300x,tpu-v5e", "--set", "workload.arrivals.requests=80",
                          "--quiet")
    assert code == 0
    assert "h100-sxm (baseline)" in out and "mi300x" in out
    assert "1.00x" in out
    assert "TTFT p99" in out and "cost per million tokens" in out
    # by default each profile is at its best: v5e serves the 70B model on more chips
    assert "goodput per accelerator within the SLO" in out and "(does not fit)" not in out
    code, out, _ = xpusim(capsys, "compare", str(SERVING_70B), "--hardware",
                          "h100-sxm,mi300x,tpu-v5e", "--set", "workload.arrivals.requests=80",
                          "--quiet", "--fixed-load")
    assert code == 0 and "fixed-load view" in out
    assert "tpu-v5e (does not fit)" in out  # not on the scenario's 8 chips


def test_json_format_parses_and_holds_ratios(capsys):
    code, out, _ = xpusim(capsys, "compare", str(SERVING), "--hardware", "h100-sxm",
                          "--hardware", "mi300x", "--format", "json", "--fixed-load",
                          "--set", "workload.arrivals.requests=80",
                          "--set", "cluster.accelerators=2")
    assert code == 0
    data = json.loads(out)
    assert data["baseline"] == "h100-sxm" and data["match"] == "count"
    assert [r["hardware"] for r in data["rows"]] == ["h100-sxm", "mi300x"]
    base, other = data["rows"]
    key = "output_tokens_per_s"
    assert base["ratios"][key] == 1.0
    assert other["ratios"][key] == pytest.approx(other["metrics"][key] / base["metrics"][key])
    assert "result" not in base


def test_csv_format_parses(capsys):
    code, out, _ = xpusim(capsys, "compare", str(TRAINING), "--hardware", "h100-sxm,b200",
                          "--format", "csv", "--match", "power")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["hardware"] for r in rows] == ["h100-sxm", "b200"]
    assert float(rows[0]["tokens_per_s_ratio"]) == 1.0
    ratio = float(rows[1]["step_time_s"]) / float(rows[0]["step_time_s"])
    assert float(rows[1]["step_time_s_ratio"]) == pytest.approx(ratio)
    assert rows[1]["status"] == "ok" and rows[1]["reason"] == ""


def test_bad_input_exits_2_with_one_line(capsys):
    code, _, err = xpusim(capsys, "compare", str(SERVING), "--hardware", "h100-sxm,nope")
    assert code == 2
    assert "unknown hardware profile 'nope'" in err
    code, _, err = xpusim(capsys, "compare", str(SERVING), "--hardware", "h100-sxm",
                          "--set", "workload.nothing=1")
    assert code == 2 and "nothing" in err  # the scenario itself is wrong: not a row
    code, _, err = xpusim(capsys, "compare", "missing.yaml", "--hardware", "h100-sxm")
    assert code == 2 and "missing.yaml" in err


# ---- progress ---------------------------------------------------------------------------------
def test_progress_bar_shows_only_on_terminals_and_after_its_delay():
    from rich.console import Console

    out = io.StringIO()
    bar = ProgressBar("work", delay_s=0.0, console=Console(file=out, force_terminal=True))
    with bar:
        for i in range(5):
            bar(i + 1, 5)
    assert bar.shown
    late = ProgressBar("work", delay_s=3600.0, console=Console(file=io.StringIO()))
    with late:
        late(1, 2)
    assert not late.shown
    quiet = progress_bar("work", quiet=True)
    with quiet:
        quiet(1, 1)
    assert not quiet.enabled and not quiet.shown
    assert not progress_bar("work").enabled  # pytest's stdout is not a terminal


# ---- the claim scenarios ------------------------------------------------------------------
def test_claim_scenarios_validate_and_use_the_estimated_model():
    files = sorted((ROOT / "scenarios" / "claims").glob("*.yaml"))
    assert len(files) == 5
    for path in files:
        scenario = load_scenario(path)
        assert scenario.model.id == "gpt-moe-1.8t"
        assert scenario.hardware.id in ("h100-sxm", "gb200-nvl72")
    model = load_model("gpt-moe-1.8t")
    assert math.isclose(model.params_total, 1.8e12, rel_tol=0.02)
    assert model.published_params.total.estimate
