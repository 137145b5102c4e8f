"""A step's fixed work around the optimizer on an eager framework: the distributed
optimizer's launches after the gradient norm's host sync, and the gradient buffer zeroed."""

from __future__ import annotations

import math

import pytest

from simulator.engine.training import optimizer_host, planner
from simulator.engine.training.optimizer_host import (
    exposed_host_s,
    multi_tensor_launches,
    optimizer_launches,
    shard_fragments,
)
from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.profiles.catalog import load_hardware
from simulator.profiles.params import count_params
from tests.conftest import ROOT

T = "scenarios/llama3.1-8b-h100-training.yaml"
# 128 GB200s, data parallel 128, one microbatch each: a shard of 1/128 of the model
WIDE = ("hardware=gb200-nvl72", "cluster.accelerators=128", "workload.precision=fp8",
        "workload.fp8_param_gather=true", "workload.grad_reduce_dtype=bf16")


def test_a_shard_spans_at_least_one_fragment_per_bucket():
    assert shard_fragments(8.03e9, 128e6) == 63  # 62.7 buckets, rounded up
    assert shard_fragments(40e6, 40e6) == 1
    assert shard_fragments(0.0, 40e6) == 0
    with pytest.raises(ValueError, match="bucket_params must be positive"):
        shard_fragments(1e9, 0.0)


def test_multi_tensor_kernels_launch_per_320_chunks_or_per_full_tensor_list():
    # 62.7M elements: 958 chunks of 65,536, 3 launches of 320 blocks
    assert multi_tensor_launches(62_736_416, 63, 36) == 3
    # 200 small tensors: the list of 36 fills first, 6 launches
    assert multi_tensor_launches(200 * 4096, 200, 36) == 6
    assert multi_tensor_launches(1e6, 0, 36) == 0


def test_launches_per_fragment_follow_the_code():
    # bf16: clip 3 + Adam 3, then one copy_ per fragment
    assert optimizer_launches(63, elements=62_736_416, fp8_params=False) == 6 + 63
    # fp8 params: also the amax all-reduce and the scale update, amax and cast per fragment
    assert optimizer_launches(63, elements=62_736_416, fp8_params=True) == 6 + 2 + 2 * 63
    assert optimizer_launches(0, elements=0.0, fp8_params=True) == 0


def test_only_launches_longer_than_the_device_work_are_exposed():
    # 130 launches of 9.8 us = 1.274 ms against 0.5 ms of kernels: 0.774 ms exposed
    assert exposed_host_s(launches=130, host_launch_s=9.8e-6,
                          device_after_sync_s=0.5e-3) == pytest.approx(0.774e-3)
    assert exposed_host_s(launches=130, host_launch_s=9.8e-6, device_after_sync_s=2e-3) == 0.0


def _optimizer_s(monkeypatch, *overrides: str, host: bool = True) -> float:
    if not host:
        monkeypatch.setattr(planner, "exposed_host_s", lambda **_: 0.0)
    stage = build_plan(load_scenario(ROOT / T, list(overrides))).step.stages[0]
    monkeypatch.undo()
    return stage.optimizer_s


def test_a_small_shard_waits_for_its_launches(monkeypatch):
    """DP 128 on GB200: bucket max(40M, 128M) = 128M parameters, 63 fragments, 134
    launches (6 multi-tensor, 2 for the scales, 2 per fragment) at the profile's eager
    9.8 us; the device's work after the norm is the Adam
    and clip passes and the shard's quantization, well under 1.27 ms."""
    scenario = load_scenario(ROOT / T, list(WIDE))
    gb200 = load_hardware("gb200-nvl72")
    shard = count_params(scenario.model).total / 128
    bandwidth = gb200.hbm_bandwidth * gb200.efficiency.hbm.value
    # the bf16 shard copied to fp32 (2 + 4 B) and the norm's read (4 B), then its all-reduce
    before_sync = shard * (2.0 + 4.0 + 4.0) / bandwidth + planner._grad_norm_s(scenario)
    zeroing = count_params(scenario.model).total * 2.0 / bandwidth  # the bf16 buffer
    device = _optimizer_s(monkeypatch, *WIDE, host=False) - zeroing
    host = 134 * 9.8e-6
    assert host > device - before_sync
    assert _optimizer_s(monkeypatch, *WIDE) == pytest.approx(before_sync + host + zeroing,
                                                             rel=1e-9)


def test_a_large_shard_hides_its_launches(monkeypatch):
    """DP 8 on H100 (the shipped scenario): 201 fragments and 1e9 parameters, 48 + 48
    multi-tensor launches and 201 copies, 2.9 ms of host time under about 10 ms of
    optimizer passes."""
    launches = optimizer_launches(math.ceil(8.03e9 / 40e6), elements=8.03e9 / 8,
                                  fp8_params=False)
    assert launches == 48 + 48 + 201
    assert _optimizer_s(monkeypatch) == _optimizer_s(monkeypatch, host=False)


def _tail_with_idle_device(*overrides: str) -> float:
    """The optimizer's host tail of the WIDE layout (bf16 parameters) were its device
    work after the norm nothing: 6 + 63 launches wherever a tail is priced."""
    scenario = load_scenario(ROOT / T, [*WIDE[:3], *overrides])
    w = scenario.workload
    dp = planner._DataParallel(scenario.hardware, w)
    params = [planner.chunk_params(scenario.model, w, shape)
              for row in planner.chunk_shapes(w, [scenario.model.layers]) for shape in row]
    return dp.host_tail_s(params, device_after_sync_s=0.0)


@pytest.mark.parametrize(("overrides", "launches"), [
    ((), 6 + 63),  # ZeRO 1: clip 3 + Adam 3, a copy_ per fragment
    (("workload.parallelism.zero=2",), 6 + 63),
    (("workload.parallelism.zero=0",), 0),  # one multi-tensor copy, not priced
    (("workload.parallelism.zero=3",), 0),  # FSDP gathers on its own schedule
    (("hardware=tpu-v5p", "workload.precision=bf16"), 0),  # no eager launch figure
])
def test_the_tail_needs_a_distributed_optimizer_and_an_eager_host(overrides, launches):
    assert _tail_with_idle_device(*overrides) == pytest.approx(launches * 9.8e-6, rel=1e-9)


def _zeroed(*overrides: str) -> float:
    scenario = load_scenario(ROOT / T, [*WIDE[:3], *overrides])
    w = scenario.workload
    dp = planner._DataParallel(scenario.hardware, w)
    params = [planner.chunk_params(scenario.model, w, shape)
              for row in planner.chunk_shapes(w, [scenario.model.layers]) for shape in row]
    return dp.grad_buffer_bytes(params)


@pytest.mark.parametrize(("overrides", "bytes_per_param", "shard"), [
    ((), 4.0, 1),  # ZeRO 1 keeps the whole fp32 buffer on every rank
    (("workload.grad_reduce_dtype=bf16",), 2.0, 1),
    (("workload.parallelism.zero=0",), 4.0, 1),
    (("workload.parallelism.zero=3",), 4.0, 128),  # its shard of the gradients
    (("hardware=tpu-v5p", "workload.precision=bf16"), 0.0, 1),  # XLA: fresh gradients
])
def test_every_step_zeroes_the_gradient_buffer_the_wgrads_accumulate_into(
        overrides, bytes_per_param, shard):
    total = count_params(load_scenario(ROOT / T, []).model).total
    assert _zeroed(*overrides) == pytest.approx(total * bytes_per_param / shard, rel=1e-9)


def test_the_module_names_its_sources():
    doc = optimizer_host.__doc__ or ""
    assert "total_norm.item()" in doc and "_copy_main_params_to_model_params" in doc
