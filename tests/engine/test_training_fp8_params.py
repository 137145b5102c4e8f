"""fp8 parameters gathered in fp8 (``workload.fp8_param_gather``, Megatron-LM's
``--fp8-param-gather``): the data-parallel all-gather's bytes, the weights' memory, where
the weights are quantized, and the checks."""

from __future__ import annotations

import math

import pytest

from simulator.engine.training.planner import BUCKET_PARAMS, build_plan
from simulator.loading import load_scenario
from simulator.perf.collectives import collective_time
from simulator.perf.footprint import training_footprint
from simulator.perf.ops import Collective, Group
from simulator.perf.training_chunks import chunk_params, chunk_shapes
from simulator.profiles.params import count_params
from tests.conftest import ROOT, assert_clean_error, run_cli

T = "scenarios/llama3.1-8b-h100-training.yaml"  # Llama 3.1 8B, 8 x H100, TP1 PP1, ZeRO 1
FP8 = ["workload.precision=fp8", "workload.fp8_param_gather=true"]

# Llama 3.1 8B's layer GEMM weights: 32 layers x (attention 4096 x (4096 + 1024 + 1024 +
# 4096) + gated FFN 3 x 4096 x 14336) = 32 x (41,943,040 + 176,160,768)
GEMM_WEIGHTS = 32 * (4096 * (4096 + 1024 + 1024 + 4096) + 3 * 4096 * 14336)


def _scenario(*overrides: str):
    return load_scenario(ROOT / T, list(overrides))


def test_the_layer_gemm_weights_are_counted():
    scenario = _scenario(*FP8)
    w = scenario.workload
    (shape,), = chunk_shapes(w, [32])
    p = chunk_params(scenario.model, w, shape)
    assert p.gemm_dense == GEMM_WEIGHTS == 6_979_321_856
    # the rest: embedding and LM head (2 x 128,256 x 4,096) and 65 norms of 4,096
    assert p.dense - p.gemm_dense == pytest.approx(2 * 128256 * 4096 + 65 * 4096)


def test_the_parameter_gather_moves_one_byte_per_gemm_weight():
    """Each of the 8B model's buckets (40M parameters at DP 8: ceil(8.03e9 / 40e6) > 32,
    so 32 buckets) carries 2 bytes per parameter less one per GEMM weight."""
    scenario = _scenario(*FP8)
    (chunk,) = build_plan(scenario).step.stages[0].chunks
    total = count_params(scenario.model).total
    n = min(32, math.ceil(total / BUCKET_PARAMS))
    assert len(chunk.param_buckets) == n
    bytes_per_bucket = (2 * total - GEMM_WEIGHTS) / n
    expected = collective_time(scenario.hardware, Collective.ALL_GATHER, bytes_per_bucket,
                               Group(8, 1), library=True).time_s
    assert chunk.param_buckets[0].time_s == pytest.approx(expected, rel=1e-9)
    bf16 = build_plan(_scenario("workload.precision=fp8")).step.stages[0].chunks[0]
    assert chunk.param_buckets[0].time_s < bf16.param_buckets[0].time_s
    assert chunk.grad_buckets == bf16.grad_buckets  # gradients are not touched


def test_gemm_weights_are_held_in_one_byte():
    """ZeRO 1 keeps every weight on every device: 2 bytes each, less one per GEMM weight."""
    with_fp8 = training_footprint(_scenario(*FP8)).parts["weights"]
    without = training_footprint(_scenario("workload.precision=fp8")).parts["weights"]
    assert without - with_fp8 == pytest.approx(GEMM_WEIGHTS, rel=1e-9)


def test_blackwell_quantizes_only_its_shard_hopper_still_transposes_everything():
    """With fp8 params the optimizer quantizes its updated shard before the gather, so a
    GB200's once-a-step weight quantization is 1/dp of the work (dp 8 here); Hopper still
    writes a transposed copy of all its weights, so its step work is unchanged."""
    def optimizer_s(*overrides: str) -> float:
        return build_plan(_scenario("workload.precision=fp8", *overrides)).step.stages[0] \
            .optimizer_s

    gb200 = "hardware=gb200-nvl72"
    plain, gathered = optimizer_s(gb200), optimizer_s(gb200, "workload.fp8_param_gather=true")
    shard_only = optimizer_s(gb200, "workload.precision=bf16")  # no weight quantization
    quantize = plain - shard_only
    assert quantize > 0
    assert gathered - shard_only == pytest.approx(quantize / 8, rel=1e-9)
    assert optimizer_s("workload.fp8_param_gather=true") == pytest.approx(optimizer_s())


@pytest.mark.parametrize(("assignments", "fragment"), [
    (["workload.fp8_param_gather=true"], "fp8_param_gather needs fp8 or fp4 GEMMs"),
    (["workload.precision=fp8", "workload.fp8_param_gather=true",
      "workload.parallelism.zero=0"], "fp8_param_gather needs a distributed optimizer"),
    (["workload.fp8_param_gather=maybe"], "workload.fp8_param_gather"),
])
def test_bad_fp8_param_gather_is_one_clean_error(assignments, fragment):
    args = [a for assignment in assignments for a in ("--set", assignment)]
    assert_clean_error(run_cli("run", T, "--quiet", *args), fragment)
