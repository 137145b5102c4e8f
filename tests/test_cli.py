"""The `xpusim` command through its real entry point: outputs, and one clear line per bad input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCENARIOS, assert_clean_error, run_cli

GOOD = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def scenario_text(**changes: str) -> str:
    """A small valid training scenario, with lines replaced by key."""
    lines = {
        "name": "name: t",
        "hardware": "hardware: h100-sxm",
        "cluster": "cluster: {accelerators: 8}",
        "model": "model: llama3.1-8b",
        "workload": "workload:\n  kind: training\n  seq_len: 4096\n  global_batch_size: 64\n"
                    "  recompute: full",
    }
    lines.update(changes)
    return "\n".join(lines.values()) + "\n"


# ---- happy paths --------------------------------------------------------------------------
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda p: p.stem)
def test_every_shipped_scenario_runs_as_json(scenario):
    result = run_cli("run", str(scenario), "--format", "json")
    assert result.code == 0, result.err
    data = result.json()
    for key in ("scenario", "hardware", "model", "accelerators", "kind"):
        assert key in data
    assert data["memory"]["fits"] is True
    assert data["time_s"] > 0
    assert data[data["kind"]] is not None, "the engine's own section is present"
    for key in ("cost_usd", "energy_kwh", "average_power_w", "carbon_kg",
                "cost_per_million_tokens_usd", "tokens_per_kwh"):
        assert data[key] >= 0
    for value in data["utilization"].values():
        assert 0.0 <= value <= 1.0


def test_run_table_output_names_the_verdict():
    result = run_cli("run", str(GOOD))
    assert result.code == 0, result.err
    assert "Memory per device" in result.out
    assert "fits:" in result.out
    assert "TTFT" in result.out and "SLO" in result.out


def test_out_dir_and_trace(tmp_path):
    serving = run_cli("run", str(GOOD), "--out", str(tmp_path / "s"))
    assert serving.code == 0, serving.err
    data = json.loads((tmp_path / "s" / "result.json").read_text())
    lines = (tmp_path / "s" / "requests.csv").read_text().splitlines()
    assert len(lines) == data["inference"]["arrived"] + 1
    assert lines[0].startswith("request,")
    training = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
    trace = tmp_path / "t" / "trace.json"
    result = run_cli("run", str(training), "--out", str(tmp_path / "t"), "--trace", str(trace))
    assert result.code == 0, result.err
    events = json.loads(trace.read_text())["traceEvents"]
    assert any(e.get("ph") == "X" for e in events)
    assert (tmp_path / "t" / "step_breakdown.csv").exists()
    assert not list((tmp_path / "t").glob(".*")), "no temporary files left behind"


def test_trace_is_for_training_only(tmp_path):
    result = run_cli("run", str(GOOD), "--trace", str(tmp_path / "x.json"))
    assert_clean_error(result, "--trace is for training scenarios")
    assert not (tmp_path / "x.json").exists()


def test_set_overrides_before_validation():
    result = run_cli("run", str(GOOD), "--set", "cluster.accelerators=2",
                     "--set", "workload.parallelism.tp=2", "--format", "json")
    assert result.code == 0, result.err
    assert result.json()["accelerators"] == 2


def test_show_prints_the_resolved_scenario():
    result = run_cli("show", str(ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"))
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["workload"]["parallelism"]["dp"] == 4  # derived: 64 / (8*2)
    assert data["workload"]["parallelism"]["sequence_parallel"] is True
    assert data["hardware"] == "h100-sxm"


def test_profiles_list_shows_every_id_untruncated():
    result = run_cli("profiles", "list")
    assert result.code == 0, result.err
    for hw_id in ("custom-asic-example", "gb200-nvl72", "gb300-nvl72", "trainium2", "tpu-v5e"):
        assert hw_id in result.out
    assert "…" not in result.out


def test_profiles_and_models_as_json():
    profiles = run_cli("profiles", "list", "--format", "json").json()
    assert {p["id"] for p in profiles} >= {"h100-sxm", "mi355x", "tpu-v6e"}
    models = run_cli("models", "list", "--format", "json").json()
    deepseek = next(m for m in models if m["id"] == "deepseek-v3")
    assert deepseek["params_total"] == pytest.approx(671e9, rel=0.02)
    one = run_cli("profiles", "show", "h100-sxm", "--format", "json").json()
    assert one["memory"]["bandwidth"]["value"] == pytest.approx(3.35e12)


def test_show_tables_carry_sources():
    result = run_cli("profiles", "show", "mi300x")
    assert result.code == 0, result.err
    assert "memory.bandwidth" in result.out and "5.3e+12" in result.out.replace(",", "")
    model = run_cli("models", "show", "deepseek-v3")
    assert "kv_lora_rank" in model.out and "params_total (computed)" in model.out


def test_validate_accepts_profiles_and_scenarios():
    files = [str(GOOD), str(ROOT / "hardware_profiles" / "gaudi3.yaml"),
             str(ROOT / "model_profiles" / "mixtral-8x7b.yaml")]
    result = run_cli("validate", *files)
    assert result.code == 0, result.err
    assert result.out.count("ok:") == 3


# ---- bad input: one clear line, exit 2, no traceback ------------------------------------
def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    assert_clean_error(run_cli("run", str(missing)), str(missing), "file not found")


def test_yaml_syntax_error_has_line_and_column(tmp_path):
    path = write(tmp_path, "name: t\nworkload: {kind: training\nseed: 1\n")
    assert_clean_error(run_cli("run", str(path)), str(path), "YAML syntax error at line",
                       "column")


def test_unknown_hardware_lists_close_matches(tmp_path):
    path = write(tmp_path, scenario_text(hardware="hardware: h100"))
    assert_clean_error(run_cli("run", str(path)), f"{path}:2: hardware:",
                       "unknown hardware profile 'h100'", "h100-sxm")


def test_unknown_model_lists_close_matches(tmp_path):
    path = write(tmp_path, scenario_text(model="model: llama3-8b"))
    assert_clean_error(run_cli("run", str(path)), "model:", "unknown model 'llama3-8b'",
                       "llama3.1-8b")


def test_unknown_field_lists_allowed_fields(tmp_path):
    path = write(tmp_path, scenario_text(cluster="cluster: {accelerators: 8, gpus: 8}"))
    assert_clean_error(run_cli("run", str(path)), f"{path}:3: cluster.gpus:",
                       "unknown field 'gpus'", "allowed: accelerators")


def test_wrong_type(tmp_path):
    path = write(tmp_path, scenario_text(cluster="cluster: {accelerators: many}"))
    assert_clean_error(run_cli("run", str(path)), "cluster.accelerators:", "whole number",
                       "'many'")


def test_zero_or_negative_quantity(tmp_path):
    path = write(tmp_path, scenario_text(cluster="cluster: {accelerators: 0}"))
    assert_clean_error(run_cli("run", str(path)), "cluster.accelerators:", "greater than 0")
    profile = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    bad = write(tmp_path, profile.replace("value: 3.35 TB/s", "value: -3.35 TB/s"), "hw.yaml")
    assert_clean_error(run_cli("validate", str(bad)), "memory.bandwidth.value",
                       "greater than 0")


def test_unknown_unit_names_the_field(tmp_path):
    profile = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    bad = write(tmp_path, profile.replace("value: 80 GB,", "value: 80 GQ,"), "hw.yaml")
    assert_clean_error(run_cli("validate", str(bad)), "memory.capacity.value",
                       "unknown unit 'GQ'", "GiB")


def test_mismatched_unit_names_the_dimension(tmp_path):
    profile = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    bad = write(tmp_path, profile.replace("value: 3.35 TB/s", "value: 3.35 TB"), "hw.yaml")
    assert_clean_error(run_cli("validate", str(bad)), "memory.bandwidth.value",
                       "measures bytes, not bandwidth")


def test_scenario_referencing_a_broken_profile_names_that_file(tmp_path):
    profile = (ROOT / "hardware_profiles" / "h100-sxm.yaml").read_text()
    write(tmp_path, profile.replace("value: 700 W", "value: 700 V"), "mine.yaml")
    path = write(tmp_path, scenario_text(hardware="hardware: ./mine.yaml"))
    assert_clean_error(run_cli("run", str(path)), "mine.yaml", "power.tdp.value", "'V'")


def test_set_on_a_path_that_does_not_exist():
    result = run_cli("run", str(GOOD), "--set", "workload.batching.max_batch=8")
    assert_clean_error(result, "--set workload.batching.max_batch=8",
                       "unknown field 'max_batch'", "max_batch_size")


def test_set_without_equals():
    assert_clean_error(run_cli("run", str(GOOD), "--set", "seed"), "--set expects PATH=VALUE")


def test_impossible_parallelism_names_the_fields(tmp_path):
    path = write(tmp_path, scenario_text(
        workload="workload:\n  kind: training\n  seq_len: 4096\n  global_batch_size: 64\n"
                 "  parallelism: {tp: 3}"))
    assert_clean_error(run_cli("run", str(path)), "workload.parallelism.tp",
                       "tp=3 does not divide the model's attention_heads (32)")


def test_global_batch_must_split_over_dp(tmp_path):
    path = write(tmp_path, scenario_text(
        workload="workload:\n  kind: training\n  seq_len: 4096\n  global_batch_size: 12\n"
                 "  micro_batch_size: 1\n  recompute: full"))
    assert_clean_error(run_cli("run", str(path)), "workload.global_batch_size",
                       "dp*micro_batch_size = 8*1 = 8")


def test_model_that_does_not_fit(tmp_path):
    path = write(tmp_path, scenario_text(
        cluster="cluster: {accelerators: 1}", model="model: llama3.1-405b",
        workload="workload:\n  kind: inference\n  arrivals: {process: offline, requests: 10}\n"
                 "  prompt_tokens: 100\n  output_tokens: 10"))
    assert_clean_error(run_cli("run", str(path)), "does not fit", "biggest consumer: weights")


def test_wrong_enum_lists_allowed_values(tmp_path):
    path = write(tmp_path, scenario_text(
        workload="workload:\n  kind: serving\n  seq_len: 4096"))
    assert_clean_error(run_cli("run", str(path)), "workload", "'training'", "'inference'")


def test_top_level_must_be_a_mapping(tmp_path):
    path = write(tmp_path, "- just\n- a list\n")
    assert_clean_error(run_cli("run", str(path)), str(path), "mapping")


def test_unknown_id_on_profiles_show():
    assert_clean_error(run_cli("profiles", "show", "mi300"), "unknown hardware profile 'mi300'",
                       "mi300x")
