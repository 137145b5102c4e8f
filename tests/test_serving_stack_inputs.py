"""workload.engine and serving-stack files: the built-ins load, bad input is one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.profiles.catalog import load_stack, stack_dir, stack_ids
from tests.conftest import ROOT, assert_clean_error, run_cli

SCENARIO = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
IDS = ["ideal", "jetstream", "neuron", "optimum-habana", "sglang", "tgi", "trtllm", "vllm-0.5",
       "vllm-0.6", "vllm-v1"]


def test_the_built_in_stacks_load_and_carry_a_source_for_every_number():
    assert stack_ids() == IDS

    def sourced(value: object) -> None:
        if isinstance(value, dict) and "value" in value:
            assert len(value["source"]) >= 3
        elif isinstance(value, dict):
            for item in value.values():
                sourced(item)

    for i in IDS:
        stack = load_stack(i)
        assert stack.id == i == Path(stack_dir() / f"{i}.yaml").stem
        sourced(stack.model_dump(mode="json", exclude={"sources", "id", "name",
                                                       "description"}))


def _scenario_with(tmp_path: Path, engine: str) -> Path:
    text = SCENARIO.read_text().replace("kind: inference",
                                        f"kind: inference\n  engine: {engine}", 1)
    assert f"engine: {engine}" in text
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


def test_an_unknown_engine_lists_the_known_ones(tmp_path):
    result = run_cli("run", str(_scenario_with(tmp_path, "vllm-0.4")))
    assert_clean_error(result, "workload.engine", "unknown serving stack 'vllm-0.4'",
                       "known: " + ", ".join(IDS))
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("edit", "field"), [
    (("fixed: {value: 1 ms", "fixed: {value: -1 ms"), "host.schedule.fixed.value"),
    (("scheduler_steps: {value: 1", "scheduler_steps: {value: 0"),
     "host.scheduler_steps.value"),
    (("admission: {value: continuous", "admission: {value: sometimes"), "admission.value"),
    (("kv_reservation: {value: full_sequence", "kv_reservation: {value: always"),
     "kv_reservation.value"),
    (("scaled_fused: {value: true", "scaled_fused: {value: maybe"),
     "activation_quant.scaled_fused.value"),
    (("quantized_head: {value: false", "quantized_head: {value: sometimes"),
     "quantized_head.value"),
    (("moe_exchange: {value: all_to_all_on_mnnvl", "moe_exchange: {value: broadcast"),
     "moe_exchange.value"),
    (("capped_at_max_batch: {value: true", "capped_at_max_batch: {value: sometimes"),
     "graphs.capped_at_max_batch.value"),
])
def test_a_bad_stack_file_names_the_file_and_the_field(tmp_path, edit, field):
    text = (stack_dir() / "trtllm.yaml").read_text()
    assert edit[0] in text
    stack = tmp_path / "my-stack.yaml"
    stack.write_text(text.replace(edit[0], edit[1], 1))
    result = run_cli("run", str(_scenario_with(tmp_path, "my-stack.yaml")))
    assert_clean_error(result, "my-stack.yaml", field)
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize(("edit", "message"), [
    (("[1, 2, 4, 8, 16,", "[2, 1, 4, 8, 16,"), "distinct and ascending"),
    (("  batch_sizes:", "  full_batch: {value: true, source: slots}\n  batch_sizes:"),
     "give batch_sizes (captured sizes) or full_batch: true, not both"),
])
def test_graphs_need_sizes_or_a_full_batch(tmp_path, edit, message):
    text = (stack_dir() / "trtllm.yaml").read_text()
    assert edit[0] in text
    stack = tmp_path / "s.yaml"
    stack.write_text(text.replace(edit[0], edit[1], 1))
    result = run_cli("stacks", "show", str(stack))
    assert_clean_error(result, "s.yaml", "graphs", message)


def test_a_user_stack_file_is_read_relative_to_the_scenario(tmp_path):
    (tmp_path / "mine.yaml").write_text((stack_dir() / "vllm-0.5.yaml").read_text())
    result = run_cli("run", str(_scenario_with(tmp_path, "mine.yaml")), "--format", "json")
    assert result.code == 0, result.err
    assert result.json()["inference"]["cpu_overhead_fraction"] > 0.1


def test_stacks_list_shows_every_stack():
    result = run_cli("stacks", "list", "--format", "json")
    assert result.code == 0, result.err
    assert [s["id"] for s in result.json()] == IDS


def test_an_unknown_frontend_names_the_field_and_the_choices(tmp_path):
    text = SCENARIO.read_text().replace("kind: inference",
                                        "kind: inference\n  frontend: grpc", 1)
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run_cli("run", str(path))
    assert_clean_error(result, "workload.frontend", "http", "in_process",
                       "in_process_streaming")
    assert len(result.err.strip().splitlines()) == 1


def test_a_bad_frontend_part_in_a_stack_names_its_field(tmp_path):
    text = (stack_dir() / "vllm-0.5.yaml").read_text()
    edit = ("fixed: {value: 4.2 ms", "fixed: {value: -4.2 ms")
    assert edit[0] in text.split("  frontend:")[1]
    stack = tmp_path / "my-stack.yaml"
    stack.write_text(text.replace(edit[0], edit[1], 1))
    result = run_cli("run", str(_scenario_with(tmp_path, "my-stack.yaml")))
    assert_clean_error(result, "my-stack.yaml", "host.frontend.fixed.value")
    assert len(result.err.strip().splitlines()) == 1


@pytest.mark.parametrize("field", ["prompt_buckets", "decode_buckets"])
def test_buckets_must_ascend(tmp_path, field):
    text = (stack_dir() / "neuron.yaml").read_text().replace(
        "activation_quant:", f"{field}: {{value: [4096, 2048], source: test}}\n"
        "activation_quant:", 1)
    stack = tmp_path / "s.yaml"
    stack.write_text(text)
    result = run_cli("stacks", "show", str(stack))
    assert_clean_error(result, "s.yaml", f"{field} must be distinct and ascending")


@pytest.mark.parametrize(("stack", "value", "message"), [
    ("neuron.yaml", 1, "prompts_per_prefill needs admission: continuous"),
    ("jetstream.yaml", 0, "prompts_per_prefill.value"),
])
def test_a_bad_prompts_per_prefill_is_one_line(tmp_path, stack, value, message):
    text = (stack_dir() / stack).read_text()
    if "prompts_per_prefill:" in text:
        text = text.replace("prompts_per_prefill: {value: 1,",
                            f"prompts_per_prefill: {{value: {value},", 1)
    else:
        text = text.replace("activation_quant:", f"prompts_per_prefill: {{value: {value}, "
                            "source: test}\nactivation_quant:", 1)
    assert f"prompts_per_prefill: {{value: {value}," in text
    path = tmp_path / "s.yaml"
    path.write_text(text)
    result = run_cli("stacks", "show", str(path))
    assert_clean_error(result, "s.yaml", message)
    assert len(result.err.strip().splitlines()) == 1
