"""The attention-DP MoE exchange without all-to-all kernels (a stack's ``moe_exchange``):
every device all-gathers the replica's tokens and reduce-scatters its expert outputs,
against hand arithmetic; and which hardware gets it under TensorRT-LLM's rule."""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model
from simulator.engine.serving.pools import gathers_moe_tokens
from simulator.loading import scenario_from_dict
from simulator.perf.layouts import inference_layout
from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.opspec import forward_ops
from simulator.perf.serving_iteration import iteration_model
from simulator.perf.wide_ep import wide_ep_moe_specs
from simulator.profiles.catalog import load_stack
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.quantities import Sourced
from simulator.profiles.serving_stack import MoeExchange

MAVERICK = load_model("llama4-maverick")
H = 5120  # Llama 4 Maverick's hidden size; one expert per token (k = 1)


def _ops(gather: bool, rank: int = 320, total: int = 2560) -> dict[str, object]:
    par = InferenceParallelism(tp=1, attention_dp=8, ep=8)
    model = iteration_model(MAVERICK, inference_layout(par), "fp8", "fp8", slots=128)
    batch = model._prefill_batch(rank, 0, float(rank), 1)
    specs = wide_ep_moe_specs(MAVERICK, model.layout, batch, total_tokens=float(total),
                              p=model.prec, imbalance=1.0, slots=128, low_latency=True,
                              gather=gather)
    return {op.name: op for op in forward_ops(specs, model.prec)}


def test_the_gathered_exchange_moves_every_token_to_every_device():
    ops = _ops(gather=True)
    gather, scatter = ops["moe.gather_tokens"], ops["moe.reduce_scatter"]
    assert isinstance(gather, CommOp) and isinstance(scatter, CommOp)
    # 2,560 tokens x (5,120 fp8 bytes + one int32 expert id and one fp32 weight)
    assert gather.bytes == 2560 * (5120 * 1 + 8 * 1)
    # the 2,560-row output in bf16, summed over the 8 devices and scattered back
    assert scatter.bytes == 2560 * 5120 * 2
    assert gather.group.size == scatter.group.size == 8
    finalize = ops["moe.finalize"]
    assert isinstance(finalize, ComputeOp) and finalize.bytes == 2560 * 5120 * 2
    assert "moe.dispatch" not in ops and "moe.combine" not in ops


def test_padded_rows_widen_the_collectives_but_add_no_expert_rows():
    from simulator.perf.wide_ep import exchange_specs
    par = InferenceParallelism(tp=1, attention_dp=8, ep=8)
    model = iteration_model(MAVERICK, inference_layout(par), "fp8", "fp8", slots=128)

    def ops(gathered: float | None) -> dict[str, object]:
        specs = exchange_specs(MAVERICK, model.layout, 384.0, total_tokens=2555.0,
                               p=model.prec, imbalance=1.0, slots=128, low_latency=True,
                               gather=True, gathered_tokens=gathered)
        return {op.name: op for op in forward_ops(specs, model.prec)}
    real, padded = ops(None), ops(8 * 384.0)
    # 2,555 sequences over 8 ranks: 320 on the busiest, replayed in the 384 graph by all 8
    assert padded["moe.gather_tokens"].bytes == 3072 * (5120 + 8)  # type: ignore[attr-defined]
    assert real["moe.gather_tokens"].bytes == 2555 * (5120 + 8)  # type: ignore[attr-defined]
    assert padded["moe.reduce_scatter"].bytes == 3072 * 5120 * 2  # type: ignore[attr-defined]
    assert padded["moe.finalize"].bytes == 3072 * 5120 * 2  # type: ignore[attr-defined]
    for name in (n for n in real if n.startswith("moe.experts")):
        assert padded[name] == real[name]  # the padding's copies of one request: no expert
    with pytest.raises(ValueError, match="at least the iteration's 2555 tokens"):
        ops(2000.0)


def test_the_experts_run_the_same_rows_either_way():
    gathered, a2a = _ops(gather=True), _ops(gather=False)
    experts = sorted(n for n in a2a if n.startswith("moe.experts"))
    assert experts and experts == sorted(n for n in gathered if n.startswith("moe.experts"))
    for name in experts:
        assert gathered[name] == a2a[name]
    # an all-to-all moves what a device sends or receives: 320 tokens x k = 1 here, 2,560/8
    assert a2a["moe.dispatch"].bytes == 320 * 5120 * 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("mode", "multinode", "gathers"), [
    (None, False, False), (None, True, False),
    ("all_to_all", False, False), ("all_gather", True, True),
    ("all_to_all_on_mnnvl", False, True), ("all_to_all_on_mnnvl", True, False),
])
def test_the_exchange_rule(mode, multinode, gathers):
    stack = load_stack("ideal")
    if mode is not None:
        stack = stack.model_copy(update={"moe_exchange": Sourced[MoeExchange](
            value=MoeExchange(mode), source="test")})
    # GB200 NVL72: 72 GPUs per NVLink domain, 4 per node; HGX H200: 8 and 8
    hardware = load_hardware("gb200-nvl72" if multinode else "h200-sxm")
    assert stack.gathers_moe_tokens(hardware) is gathers


@pytest.mark.parametrize(("hardware", "gathers"), [
    ("h200-sxm", True),  # 8 GPUs per node and per NVLink domain
    ("b200", True),
    ("gb200-nvl72", False),  # 72 GPUs per NVLink domain, 4 per node: MNNVL
])
def test_trtllm_gathers_outside_multinode_nvlink(hardware, gathers):
    scenario = scenario_from_dict({
        "name": "x", "hardware": hardware, "cluster": {"accelerators": 8},
        "model": "llama4-maverick", "seed": 0,
        "workload": {"kind": "inference", "engine": "trtllm", "precision": "fp8",
                     "kv_cache_precision": "fp8",
                     "parallelism": {"tp": 1, "attention_dp": 8, "ep": 8},
                     "arrivals": {"process": "offline", "requests": 10},
                     "prompt_tokens": 128, "output_tokens": 128}})
    assert gathers_moe_tokens(scenario) is gathers
