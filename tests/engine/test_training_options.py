"""Fixed per-step costs and the memory options of a training workload: optimizer passes,
gradient precision, fp8 saved activations, activation offload, host-launch bound."""

from __future__ import annotations

import pytest

from simulator.engine.training.costs import (
    host_launch,
    offload_copy_s,
    pass_cost,
    with_offload,
)
from simulator.engine.training.plan import PassCost
from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.perf.footprint import training_footprint
from simulator.perf.memory import activation_bytes_per_layer
from simulator.perf.ops import ComputeOp, OpKind
from simulator.profiles.catalog import load_hardware, load_model
from tests.conftest import ROOT, assert_clean_error, run_cli

T = "scenarios/llama3.1-8b-h100-training.yaml"
H100 = load_hardware("h100-sxm")


def _scenario(*overrides: str):
    return load_scenario(ROOT / T, list(overrides))


def _optimizer_shard(scenario) -> float:
    """Llama 3.1 8B's parameters over the 8 ZeRO-1 ranks (tp = pp = 1: one stage)."""
    from simulator.profiles.params import count_params
    return count_params(scenario.model).total / 8


@pytest.mark.parametrize(("dtype", "grad_bytes", "bytes_per_param"), [
    ("fp32", 4, 26 + 4 * 4),  # Adam 12 + 4 read, 14 written; norm 4; clip 8 -> 42
    ("bf16", 2, 26 + 4 * 4 + 2 + 4),  # and the copy to fp32 main grads, 2 read 4 written: 48
])
def test_the_optimizer_moves_its_state_and_the_gradient_passes(dtype, grad_bytes,
                                                               bytes_per_param):
    scenario = _scenario(f"workload.grad_reduce_dtype={dtype}")
    stage = build_plan(scenario).step.stages[0]
    shard = _optimizer_shard(scenario)
    # and the whole gradient buffer (8 shards of grad_bytes) zeroed for the next step
    zeroed = 8 * shard * grad_bytes
    assert stage.optimizer_bytes == pytest.approx(shard * bytes_per_param + zeroed, rel=1e-6)
    memory_s = (shard * bytes_per_param + zeroed) / (H100.hbm_bandwidth
                                                     * H100.efficiency.hbm.value)
    # plus the gradient norm's all-reduce over the 8 ranks: latency, a few microseconds
    assert memory_s < stage.optimizer_s < memory_s + 100e-6


def test_bf16_gradients_halve_their_buffers_and_shrink_their_buckets():
    fp32, bf16 = _scenario(), _scenario("workload.grad_reduce_dtype=bf16")
    assert (training_footprint(bf16).parts["gradients"]
            == pytest.approx(training_footprint(fp32).parts["gradients"] / 2))
    bucket = [build_plan(s).step.stages[0].chunks[0].grad_buckets[0].time_s
              for s in (fp32, bf16)]
    assert bucket[1] < 0.6 * bucket[0]


def test_fp8_step_quantizes_the_weights_once_per_step():
    bf16 = build_plan(_scenario()).step.stages[0]
    fp8 = build_plan(_scenario("workload.precision=fp8")).step.stages[0]
    # delayed scaling on Hopper: each weight read (2 B), written in fp8 twice (row- and
    # columnwise): 4 B per weight of the 32 layers' GEMMs
    model = load_model("llama3.1-8b")
    h, q, kv, f = 4096, 32 * 128, 8 * 128, model.ffn_size
    gemm_weights = 32 * (h * (q + 2 * kv) + q * h + h * 2 * f + f * h)
    assert fp8.optimizer_bytes - bf16.optimizer_bytes == pytest.approx(4.0 * gemm_weights)


def test_fp8_saved_activations_halve_the_gemm_inputs():
    """One byte instead of two for the QKV, output-projection, FC1 and FC2 inputs: for a
    gated layer at tp = 1 that saves s·b·(h + a·d + h + f) bytes."""
    model = load_model("llama3.1-8b")
    s, b = 8192, 1
    args = (model, s, b, 1, False, "selective")
    bf16 = activation_bytes_per_layer(*args)
    fp8 = activation_bytes_per_layer(*args, gemm_input_bytes=1.0)
    h, ad, f = 4096, 32 * 128, model.ffn_size
    assert bf16 - fp8 == pytest.approx(s * b * (h + ad + h + f))


def test_offload_moves_a_share_of_the_activations_to_host_memory():
    base = training_footprint(_scenario())
    half = training_footprint(_scenario("workload.offload.activations=0.5"))
    assert half.parts["activations"] == pytest.approx(base.parts["activations"] / 2)
    assert any("offloaded to host memory" in note for note in half.notes)


def test_offload_copies_cost_the_host_link_and_hide_behind_the_pass():
    scenario = _scenario("workload.offload.activations=0.5")
    w = scenario.workload
    per_layer = activation_bytes_per_layer(scenario.model, 8192, 1, 1, False, "full")
    expected = 0.5 * per_layer * 32 / 52e9  # H100 PCIe Gen5: 52 GB/s measured
    assert offload_copy_s(H100, scenario.model, w, 32) == pytest.approx(expected)
    slow = PassCost(compute_s=1e-3)
    assert with_offload(slow, 3e-3).cp_s == pytest.approx(2e-3)  # 1 ms hidden, 2 exposed
    assert with_offload(PassCost(compute_s=5e-3), 3e-3).cp_s == 0.0


def test_a_pass_cannot_outrun_its_kernel_launches():
    """Ten tiny kernels at 4.6 us of GPU time each, launched at 9.8 us of host time each:
    the pass takes the host's 98 us, not the GPU's 46."""
    tiny = ComputeOp(name="add", kind=OpKind.ELEMENTWISE, flops=0.0, bytes=0.0,
                     precision="bf16", count=10)
    gpu = pass_cost(H100, [tiny], overlap_tp=False, overlap_ep=False)
    hosted = pass_cost(H100, [tiny], overlap_tp=False, overlap_ep=False,
                       host_launch_s=host_launch(H100, cuda_graphs=False))
    graphed = pass_cost(H100, [tiny], overlap_tp=False, overlap_ep=False,
                        host_launch_s=host_launch(H100, cuda_graphs=True))
    assert gpu.compute_s == pytest.approx(10 * 4.6e-6)
    assert hosted.compute_s == pytest.approx(10 * 9.8e-6)
    assert graphed.compute_s == pytest.approx(10 * 4.6e-6)  # 1.0 us per replayed kernel
    assert host_launch(load_hardware("tpu-v5p"), cuda_graphs=False) == 0.0


@pytest.mark.parametrize(("assignment", "fragment"), [
    ("workload.activation_dtype=fp8", "activation_dtype fp8 needs fp8 or fp4 GEMMs"),
    ("workload.activation_dtype=fp4", "activation_dtype fp4 is not supported"),
    ("workload.offload.activations=1.5", "workload.offload.activations"),
    ("workload.fp8_recipe=tensorwise", "workload.fp8_recipe"),
    ("workload.grad_reduce_dtype=fp16", "workload.grad_reduce_dtype"),
])
def test_bad_training_options_are_one_clean_error(assignment, fragment):
    assert_clean_error(run_cli("run", T, "--quiet", "--set", assignment), fragment)


def test_offload_needs_a_host_link():
    result = run_cli("run", T, "--quiet", "--set", "hardware=a100-sxm", "--set",
                     "workload.offload.activations=0.5")
    assert_clean_error(result, "a100-sxm has no host_link")


def _resolved(*overrides: str):
    from simulator.perf.footprint import resolved_memory_options
    return resolved_memory_options(_scenario(*overrides))


def test_offload_fit_keeps_the_smallest_share_in_hundredths_that_fits():
    """Llama 3.1 8B with selective recomputation needs 107 GB of an 80 GB H100, 36.5 GB of
    it activations: offloading 75% of them fits, 74% does not."""
    scenario = _resolved("workload.recompute=selective", "workload.offload.activations=fit")
    assert scenario.workload.offload.share == pytest.approx(0.75)
    assert training_footprint(scenario).fits
    assert not training_footprint(_scenario("workload.recompute=selective",
                                            "workload.offload.activations=0.74")).fits
    # what prices the step reads the resolved share: the same plan as the explicit one
    explicit = _scenario("workload.recompute=selective", "workload.offload.activations=0.75")
    fit = _scenario("workload.recompute=selective", "workload.offload.activations=fit")
    assert build_plan(fit).step == build_plan(explicit).step
    with pytest.raises(ValueError, match="resolved against the device memory"):
        _ = fit.workload.offload.share


def test_offload_fit_comes_after_recompute_fit_and_offloads_nothing_it_need_not():
    """With both options fit, recomputation is chosen first (offload counted as none) and
    fits here, so nothing is offloaded."""
    w = _resolved("workload.recompute=full", "workload.recompute_layers=fit",
                  "workload.offload.activations=fit").workload
    assert w.recomputed_layers is not None and w.offload.share == 0.0


def test_offload_fit_falls_back_to_everything_and_the_run_says_it_does_not_fit():
    """Micro-batch 16 with selective recomputation: even all activations offloaded leave
    the optimizer state and weights of an 8B model too big; the run is refused."""
    scenario = _resolved("workload.recompute=selective", "workload.micro_batch_size=16",
                         "workload.offload.activations=fit")
    assert scenario.workload.offload.share == 1.0 and not training_footprint(scenario).fits
    result = run_cli("run", T, "--quiet", "--set", "workload.recompute=selective", "--set",
                     "workload.micro_batch_size=16", "--set",
                     "workload.offload.activations=fit")
    assert_clean_error(result, "does not fit")


def test_offload_fit_needs_a_host_link_too():
    result = run_cli("run", T, "--quiet", "--set", "hardware=a100-sxm", "--set",
                     "workload.offload.activations=fit")
    assert_clean_error(result, "a100-sxm has no host_link")
