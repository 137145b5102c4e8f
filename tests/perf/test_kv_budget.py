"""A serving stack's KV-cache memory rule (``kv_cache_memory``), against hand arithmetic."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from simulator import load_hardware, scenario_from_dict
from simulator.engine.serving.kv_cache import kv_capacity
from simulator.perf.footprint import inference_footprint
from simulator.perf.kv_budget import kv_reserve
from simulator.perf.memory import runtime_reserve
from simulator.profiles.catalog import stack_dir
from simulator.profiles.kv_memory import KvCacheMemory
from tests.conftest import assert_clean_error, run_cli

GIB2 = 2 * 2**30  # the runtime's context, CUDA context and communication buffers
C, W, A = 80e9, 36e9, 4e9  # capacity, weights, workspace


def memory(rule: str, fraction: float) -> KvCacheMemory:
    return KvCacheMemory.model_validate({"rule": {"value": rule, "source": "test"},
                                         "fraction": {"value": fraction, "source": "test"}})


def kv_left(parts: dict[str, float], loaded: float = W + A) -> float:
    return C - loaded - sum(parts.values())


def test_without_a_rule_the_reserve_is_two_gib_and_five_percent_as_before():
    parts = kv_reserve(None, capacity=C, loaded=W + A, weights=W)
    assert parts == {"runtime_reserve": GIB2 + 0.05 * 80e9}
    assert kv_left(parts) == pytest.approx(0.95 * 80e9 - 40e9 - GIB2)


def test_share_of_total_is_vllms_budget():
    # gpu_memory_utilization 0.9: KV = 0.9 x 80 GB - 36 - 4 - 2 GiB = 29.852516352 GB
    parts = kv_reserve(memory("share_of_total", 0.9), capacity=C, loaded=W + A, weights=W)
    assert parts == {"runtime_reserve": GIB2, "kv_budget_margin": pytest.approx(8e9)}
    assert kv_left(parts) == pytest.approx(29.852516352e9)


def test_share_of_free_is_tensorrt_llms_budget():
    # free after loading: 80 - 40 - 2.147483648 = 37.852516352 GB; 90% of it is KV
    parts = kv_reserve(memory("share_of_free", 0.9), capacity=C, loaded=W + A, weights=W)
    assert parts["kv_budget_margin"] == pytest.approx(3.7852516352e9)
    assert kv_left(parts) == pytest.approx(34.0672647168e9)


def test_static_share_of_total_is_sglangs_budget():
    # mem_fraction_static 0.88: weights + KV in 70.4 GB after the context; the 4 GB
    # workspace lives in the other 9.6 GB: KV = 70.4 - 36 - 2.147483648 = 32.252516352 GB
    parts = kv_reserve(memory("static_share_of_total", 0.88), capacity=C, loaded=W + A,
                       weights=W)
    assert parts["kv_budget_margin"] == pytest.approx(5.6e9)
    assert kv_left(parts) == pytest.approx(32.252516352e9)


def test_a_workspace_beyond_the_static_pools_rest_takes_from_the_pool():
    # 12 GB of workspace > 0.12 x 80 GB: nothing is left unused, KV = 80 - 48 - 2 GiB
    parts = kv_reserve(memory("static_share_of_total", 0.88), capacity=C, loaded=W + 12e9,
                       weights=W)
    assert parts["kv_budget_margin"] == 0.0
    assert kv_left(parts, W + 12e9) == pytest.approx(80e9 - 48e9 - GIB2)


def test_share_of_free_leaves_no_negative_margin_on_a_full_device():
    parts = kv_reserve(memory("share_of_free", 0.9), capacity=C, loaded=79e9, weights=75e9)
    assert parts["kv_budget_margin"] == 0.0


def serving(tmp_path: Path, block: str | None) -> object:
    text = (stack_dir() / "vllm-0.6.yaml").read_text()
    if block is not None:
        text = text.replace("\nsources:\n", f"\n{block}sources:\n", 1)
    path = tmp_path / "stack.yaml"
    path.write_text(text)
    return scenario_from_dict({
        "name": "t", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
        "model": "llama3.1-8b",
        "workload": {"kind": "inference", "precision": "bf16", "parallelism": {"tp": 1},
                     "arrivals": {"process": "offline", "requests": 1}, "engine": str(path),
                     "prompt_tokens": 1000, "output_tokens": 100},
    })


FREE_09 = ("kv_cache_memory:\n  rule: {value: share_of_free, source: test}\n"
           "  fraction: {value: 0.9, source: test}\n")


def test_the_stacks_rule_sizes_the_replicas_kv_blocks(tmp_path):
    scenario = serving(tmp_path, FREE_09)
    fp = inference_footprint(scenario)
    capacity = load_hardware("h100-sxm").hbm_capacity
    loaded = fp.parts["weights"] + fp.parts["activations"]
    kv_bytes = 0.9 * (capacity - loaded - GIB2)
    assert fp.headroom == pytest.approx(kv_bytes)
    cache = kv_capacity(scenario, scenario.workload.parallelism)
    # Llama 3.1 8B, bf16 KV: 2 x 8 heads x 128 dims x 32 layers x 2 bytes = 131,072 B a token
    assert cache.bytes_per_token == 131_072
    block_bytes = 131_072 * cache.block_tokens
    assert cache.blocks == math.floor(kv_bytes / block_bytes)


def test_a_stack_without_the_rule_keeps_the_earlier_footprint(tmp_path):
    fp = inference_footprint(serving(tmp_path, None))
    assert fp.parts["runtime_reserve"] == runtime_reserve(load_hardware("h100-sxm"))
    assert "kv_budget_margin" not in fp.parts


@pytest.mark.parametrize(("block", "field"), [
    (FREE_09.replace("share_of_free", "share_of_spare"), "kv_cache_memory.rule.value"),
    (FREE_09.replace("0.9,", "0,"), "kv_cache_memory.fraction.value"),
    (FREE_09.replace("0.9,", "1.5,"), "kv_cache_memory.fraction.value"),
    (FREE_09.split("  fraction")[0] + "\n", "kv_cache_memory.fraction"),
    (FREE_09.replace("source: test}\n  fraction", "}\n  fraction"),
     "kv_cache_memory.rule.source"),
])
def test_a_bad_kv_cache_memory_block_names_the_file_and_field(tmp_path, block, field):
    text = (stack_dir() / "vllm-0.6.yaml").read_text().replace(
        "\nsources:\n", f"\n{block}sources:\n", 1)
    stack = tmp_path / "my-stack.yaml"
    stack.write_text(text)
    result = run_cli("stacks", "show", str(stack))
    assert_clean_error(result, "my-stack.yaml", field)
    assert len(result.err.strip().splitlines()) == 1
