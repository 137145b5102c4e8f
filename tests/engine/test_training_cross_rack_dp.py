"""Data-parallel buckets: their size (``workload.ddp_bucket_params``, else megatron-core's
rule) and their price across several NVL72 racks, by hand.

MLPerf Training v5.1's Llama 3.1 8B on 512 GB200 (validation case T41-512: TP2 x CP4 x DP64,
distributed optimizer) reduces its gradients and gathers its parameters over the 256 ranks
of a DP x CP group at stride 2 (Megatron's rank order tp-cp-dp). xpusim fills 72-GPU NVLink
domains, so a group has 36 ranks in each of 8 domains and NCCL runs one flat ring over
InfiniBand and NVLink (docs/modelling_collectives.md). These tests write the bucket sizes
and the ring's terms out from the bucket rules and the profiles' numbers.
"""

from __future__ import annotations

import math

import pytest
import yaml

from simulator.engine.training.planner import bucket_params, build_plan
from simulator.loading import scenario_from_dict
from simulator.perf.training_chunks import chunk_params, chunk_shapes
from tests.conftest import ROOT, assert_clean_error, run_cli

CASES = ROOT / "validation/cases/T41-mlperf-llama31-8b-72xgb200.yaml"

# Llama 3.1 8B on one TP2 rank: half of every layer GEMM weight (32 x (4096 x 10240 +
# 3 x 4096 x 14336)), of the vocabulary-parallel embedding and LM head (2 x 128,256 x
# 4,096) and of the 65 norms of 4,096 (Megatron keeps these whole on each rank; the engine
# splits them too, 0.003% of the parameters).
LOCAL_PARAMS = (6_979_321_856 + 2 * 128256 * 4096 + 65 * 4096) // 2
RANKS = 256  # DP64 x CP4
NEMO_BUCKET = 128 * 1024 * 1024  # NeMo's MegatronCommOverlapCallback, the case's setting


def _case(case_id: str, **workload):
    for case in yaml.safe_load(CASES.read_text()):
        if case["id"] == case_id:
            scenario = case["scenario"]
            scenario["workload"] = {**scenario["workload"], **workload}
            return scenario_from_dict(scenario)
    raise KeyError(case_id)


def _ring_s(nbytes: float, *, nic_bps: float) -> float:
    """One reduce-scatter (or all-gather) of ``nbytes`` over 256 ranks, 36 in each of 8
    NVL72 domains: k = 36 rings, each leaving a domain through its own NIC."""
    factor = 0.20 + 0.80 * nbytes / (nbytes + 16e6)  # NCCL's size curve on NVLink
    nvlink = 900e9 * 0.76 * factor  # one-way NVLink 5 x the ring's measured fraction
    nic = nic_bps / 8 * 0.74  # one-way NIC x the measured scale-out fraction
    ring = (RANKS - 1) / RANKS * nbytes
    beta = max(ring / 36 / nic, ring * 35 / 36 / nvlink)
    alpha = (RANKS - 8) * 3e-6 + 7 * 10e-6  # 248 NVLink steps and 7 InfiniBand steps
    return beta + alpha


def test_megatron_sizes_buckets_by_data_parallelism_without_context_parallelism():
    """megatron-core 0.14: max(40M, 1M x get_data_parallel_world_size()), whose
    with_context_parallel is False: 64M at DP64 x CP4 (not 256M), 40M at DP36 x CP2."""
    assert bucket_params(_case("T41-512", ddp_bucket_params=None).workload) == 64e6
    assert bucket_params(_case("T41", ddp_bucket_params=None).workload) == 40e6
    assert bucket_params(_case("T41-512").workload) == NEMO_BUCKET


def test_the_local_parameters_fill_thirty_nemo_buckets():
    scenario = _case("T41-512")
    (shape,), = chunk_shapes(scenario.workload, [32])
    assert chunk_params(scenario.model, scenario.workload, shape).dense == LOCAL_PARAMS
    (chunk,) = build_plan(scenario).step.stages[0].chunks
    n = math.ceil(LOCAL_PARAMS / NEMO_BUCKET)  # 29.9
    assert n == 30 and len(chunk.grad_buckets) == n and len(chunk.param_buckets) == n


def test_a_gradient_bucket_is_a_flat_ring_that_its_steps_decide():
    """A 268 MB bf16 bucket: 0.40 ms of NVLink (the NICs carry 1/36 of the ring: 0.20 ms)
    and 0.81 ms of steps, 248 on NVLink and 7 across racks."""
    (chunk,) = build_plan(_case("T41-512")).step.stages[0].chunks
    nbytes = LOCAL_PARAMS / 30 * 2
    expected = _ring_s(nbytes, nic_bps=400e9)
    assert chunk.grad_buckets[0].time_s == pytest.approx(expected, rel=1e-9)
    assert chunk.grad_buckets[0].fabrics == ("scale_up", "scale_out")
    assert expected == pytest.approx(1.211e-3, abs=1e-6)
    steps = 248 * 3e-6 + 7 * 10e-6
    assert steps / expected > 0.65  # two thirds of it is the ring's latency


def test_gb300s_faster_nic_does_not_change_the_bucket():
    """The ConnectX-8 (800 Gb/s) halves the NIC term, which did not bind: NVLink 5 and the
    ring's steps, equal on both racks, price GB300's buckets the same as GB200's."""
    gb200 = build_plan(_case("T41-512")).step.stages[0].chunks[0]
    gb300 = build_plan(_case("T41-512-gb300")).step.stages[0].chunks[0]
    nbytes = LOCAL_PARAMS / 30 * 2
    assert _ring_s(nbytes, nic_bps=800e9) == _ring_s(nbytes, nic_bps=400e9)
    assert [b.time_s for b in gb300.grad_buckets] == pytest.approx(
        [b.time_s for b in gb200.grad_buckets], rel=1e-12)
    assert [b.time_s for b in gb300.param_buckets] == pytest.approx(
        [b.time_s for b in gb200.param_buckets], rel=1e-12)


def test_megatrons_default_buckets_are_capped_at_32():
    """Without the setting, T41-512's 64M buckets are 63 (62.7); the engine simulates at
    most 32 a chunk, each of LOCAL_PARAMS / 32 (docs/training.md says what that leaves
    out)."""
    (chunk,) = build_plan(_case("T41-512", ddp_bucket_params=None)).step.stages[0].chunks
    assert math.ceil(LOCAL_PARAMS / 64e6) == 63 and len(chunk.grad_buckets) == 32
    expected = _ring_s(LOCAL_PARAMS / 32 * 2, nic_bps=400e9)
    assert chunk.grad_buckets[0].time_s == pytest.approx(expected, rel=1e-9)


def test_one_rack_prices_its_buckets_with_a_quarter_of_the_steps():
    """T41 (one rack, CP2 x DP36): the 72-rank group stays on NVLink; 128 Mi buckets of the
    8.03B parameters are 60, simulated as 32 of 1/32 each, 71 steps of 3 us instead of 255."""
    scenario = _case("T41")
    (shape,), = chunk_shapes(scenario.workload, [32])
    total = chunk_params(scenario.model, scenario.workload, shape).dense
    assert math.ceil(total / NEMO_BUCKET) == 60
    (chunk,) = build_plan(scenario).step.stages[0].chunks
    assert len(chunk.grad_buckets) == 32
    nbytes = total / 32 * 2
    factor = 0.20 + 0.80 * nbytes / (nbytes + 16e6)
    expected = 71 / 72 * nbytes / (900e9 * 0.76 * factor) + 71 * 3e-6
    assert chunk.grad_buckets[0].time_s == pytest.approx(expected, rel=1e-9)
    assert chunk.grad_buckets[0].fabrics == ("scale_up",)


@pytest.mark.parametrize("value", ["0", "-5", "1.5", "many"])
def test_a_bad_bucket_size_is_one_clean_error(value):
    result = run_cli("run", "scenarios/llama3.1-8b-h100-training.yaml", "--quiet",
                     "--set", f"workload.ddp_bucket_params={value}")
    assert_clean_error(result, "workload.ddp_bucket_params")
