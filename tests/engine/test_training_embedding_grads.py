"""The shared word embedding's gradient all-reduce between the first and the last pipeline
stage (megatron-core 0.14.0, finalize_model_grads.py): when it runs, its bytes, where the
pair sits, and what it adds to the step, with hand-derived figures."""

from __future__ import annotations

import pytest

from simulator.engine.training.estimate import estimate_step_s
from simulator.engine.training.plan import Bucket, Chunk, PassCost, Stage, StepPlan
from simulator.engine.training.planner import build_plan
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step
from simulator.loading import load_scenario
from simulator.perf.embedding_grads import (
    NAME,
    embedding_grad_bytes,
    embedding_grads_cost,
    embedding_group,
    shares_word_embedding,
)
from simulator.perf.mtp_training import trained_mtp_layers
from simulator.perf.ops import Group
from simulator.profiles.scenario import Scenario
from simulator.profiles.training import FinetuneMethod, TrainingWorkload
from tests.conftest import ROOT

GPT3 = ROOT / "scenarios" / "gpt3-175b-gb200-training.yaml"
# T24's layout: GPT-3 175B on 11,616 H100s, TP4 x PP6 x DP484, fp32 gradient buffers
EOS = ("hardware=h100-sxm", "cluster.accelerators=11616", "workload.global_batch_size=2904",
       "workload.parallelism.pp=6")


def _scenario(path=GPT3, *overrides: str) -> tuple[Scenario, TrainingWorkload]:
    scenario = load_scenario(path, list(overrides))
    assert isinstance(scenario.workload, TrainingWorkload)
    return scenario, scenario.workload


def _cost(scenario: Scenario):
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    return embedding_grads_cost(scenario.hardware, scenario.model, w,
                                trained_mtp_layers(scenario.model, w))


def test_gpt3_on_h100_all_reduces_its_shard_over_the_network():
    """V = 50,257, h = 12,288, TP4, fp32: 50,257 x 12,288 / 4 x 4 B = 617,558,016 B. A
    2-rank ring all-reduce moves 2(n-1)/n x S = S per rank over the scale-out link,
    50 GB/s x 0.74 = 37 GB/s: 16.690757 ms, plus 2 steps of 10 us: 16.710757 ms."""
    scenario, w = _scenario(GPT3, *EOS)
    assert embedding_grad_bytes(scenario.model, w) == 617_558_016
    cost = _cost(scenario)
    assert cost is not None and cost.fabric == "scale_out"
    assert cost.time_s == pytest.approx(617_558_016 / 37e9 + 2 * 10e-6, rel=1e-9)
    assert cost.time_s == pytest.approx(16.710757e-3, rel=1e-6)


def test_the_buffer_dtype_and_fsdp_shard_set_the_bytes():
    scenario, w = _scenario(GPT3, *EOS, "workload.grad_reduce_dtype=bf16")
    assert embedding_grad_bytes(scenario.model, w) == 617_558_016 / 2
    # ZeRO 3 (Megatron FSDP) reduces the rank's local shard: 1/(dp·cp) = 1/484
    scenario, w = _scenario(GPT3, *EOS, "workload.parallelism.zero=3")
    assert embedding_grad_bytes(scenario.model, w) == pytest.approx(617_558_016 / 484)


def test_only_pipelined_runs_with_a_shared_trained_copy_reduce_it():
    scenario, w = _scenario(GPT3)
    assert shares_word_embedding(scenario.model, w, 0)  # tied, PP8
    scenario, w = _scenario(GPT3, "cluster.accelerators=72", "workload.parallelism.pp=1")
    assert not shares_word_embedding(scenario.model, w, 0)  # one stage holds the one copy
    assert _cost(scenario) is None
    llama = ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml"
    scenario, w = _scenario(llama)
    assert w.parallelism.pp > 1 and not scenario.model.tied_embeddings
    assert not shares_word_embedding(scenario.model, w, 0) and _cost(scenario) is None
    assert build_plan(scenario).step.embedding_grads is None
    # an untied model's MTP modules build the last stage's own embedding: it is reduced
    assert shares_word_embedding(scenario.model, w, 1)
    lora = w.model_copy(update={"finetune": w.finetune.model_copy(
        update={"method": FinetuneMethod.LORA})})
    assert not shares_word_embedding(scenario.model, lora, 1)  # a frozen embedding


def test_deepseek_v3_reduces_the_mtp_modules_embedding_copy():
    """DeepSeek-V3 on H800 (untied, one MTP module, TP1, PP16, fp32 buffers):
    129,280 x 7,168 x 4 B = 3,706,716,160 B over the scale-out link, one ring step each way."""
    scenario, w = _scenario(ROOT / "scenarios" / "deepseek-v3-h800-training.yaml")
    assert not scenario.model.tied_embeddings and trained_mtp_layers(scenario.model, w) == 1
    assert w.parallelism.tp == 1 and w.grad_bytes == 4.0
    nbytes = 3_706_716_160
    assert embedding_grad_bytes(scenario.model, w) == nbytes
    cost = _cost(scenario)
    hw = scenario.hardware
    bw = hw.scale_out.bandwidth_one_way * hw.efficiency.scale_out_collective.value
    assert cost is not None
    assert cost.time_s == pytest.approx(nbytes / bw + 2 * hw.scale_out.latency.value)
    scenario, w = _scenario(ROOT / "scenarios" / "deepseek-v3-h800-training.yaml",
                            "workload.mtp_layers=0")
    assert _cost(scenario) is None


@pytest.mark.parametrize("tp,pp,dp,group,fabric", [
    (2, 4, 1, Group(2, 2), "scale_up"),  # ranks 0-7: the whole pipeline in one node
    (1, 2, 4, Group(2, 4), "scale_up"),  # stages 4 ranks apart, 8 in all
    (2, 8, 1, Group(2, 14), "scale_out"),  # 16 ranks: rank 0 and rank 14 on two nodes
    (2, 3, 2, Group(2, 8), "scale_out"),  # 12 ranks: ranks 2 and 10 straddle a node
])
def test_the_pair_shares_a_node_only_when_the_whole_pipeline_does(tp, pp, dp, group, fabric):
    n = tp * pp * dp
    scenario, w = _scenario(GPT3, f"cluster.accelerators={n}", "hardware=h100-sxm",
                            f"workload.parallelism.tp={tp}", f"workload.parallelism.pp={pp}",
                            f"workload.global_batch_size={8 * dp}")
    assert w.parallelism.dp == dp
    assert embedding_group(w, 8) == group
    cost = _cost(scenario)
    assert cost is not None and cost.fabric == fabric


def _chunk() -> Chunk:
    return Chunk(forward=PassCost(compute_s=1.0), backward=PassCost(compute_s=2.0))


def _plan(optimizers: list[float], shared: float | None, m: int = 2) -> StepPlan:
    order = tuple(tuple(o) for o in schedule("1f1b", len(optimizers), m))
    bucket = None if shared is None else Bucket(NAME, shared, ("scale_out",))
    return StepPlan(stages=tuple(Stage((_chunk(),), o) for o in optimizers), order=order,
                    embedding_grads=bucket)


def test_the_ends_reduce_after_the_barrier_and_before_their_optimizer():
    """Three stages, m = 2, f = 1, b = 2: the last backward ends at (m + pp - 1) x 3 = 12 s.
    The ends then all-reduce for 0.5 s and run a 0.3 s optimizer: 12.8 s. The middle
    stage's 0.3 s optimizer ends earlier and waits for them."""
    out = simulate_step(_plan([0.3, 0.3, 0.3], 0.5))
    assert out.step_time_s == pytest.approx(12.0 + 0.5 + 0.3)
    assert out.breakdown.exposed_dp_comm == pytest.approx(0.5)
    assert out.breakdown.optimizer == pytest.approx(0.3)
    assert out.breakdown.total == pytest.approx(out.step_time_s)
    slices = [s for s in out.timeline.slices() if s.name == NAME]
    assert sorted(s.stage for s in slices) == [0, 2]
    assert all(s.start_s == pytest.approx(12.0) and s.duration_s == pytest.approx(0.5)
               for s in slices)
    optimizer = [s for s in out.timeline.slices() if s.kind == "optimizer" and s.stage == 0]
    assert optimizer[0].start_s == pytest.approx(12.5)
    assert simulate_step(_plan([0.3, 0.3, 0.3], None)).step_time_s == pytest.approx(12.3)


def test_a_longer_middle_optimizer_can_hide_it():
    """The middle stage's 1.0 s optimizer outlasts the ends' 0.5 + 0.3 s: the step is 13 s."""
    out = simulate_step(_plan([0.3, 1.0, 0.3], 0.5))
    assert out.step_time_s == pytest.approx(13.0)
    assert out.breakdown.exposed_dp_comm == pytest.approx(0.0)
    assert out.breakdown.optimizer == pytest.approx(1.0)


def test_it_counts_as_network_time_of_the_ends():
    with_it = simulate_step(_plan([0.3, 0.3, 0.3], 0.5)).utilization.network
    without = simulate_step(_plan([0.3, 0.3, 0.3], None)).utilization.network
    # stages 0 and 2 each spend 0.5 s of a 12.8 s step on it, averaged over three stages
    assert with_it == pytest.approx(2 * 0.5 / 12.8 / 3, rel=1e-9)
    assert without == 0.0


def test_the_estimate_adds_it_to_the_ends_tails():
    with_it, without = (estimate_step_s(_plan([0.3, 0.3, 0.3], s)) for s in (0.5, None))
    assert with_it - without == pytest.approx(0.5)
    assert estimate_step_s(_plan([0.3, 1.0, 0.3], 0.5)) == pytest.approx(
        estimate_step_s(_plan([0.3, 1.0, 0.3], None)))


def test_one_stage_cannot_share_an_embedding():
    with pytest.raises(ValueError, match="embedding_grads needs two pipeline stages"):
        _plan([0.3], 0.5)


def test_the_plan_carries_it_for_a_tied_pipelined_model():
    scenario, _ = _scenario(GPT3, *EOS)
    step = build_plan(scenario).step
    assert step.embedding_grads is not None
    assert step.embedding_grads.time_s == pytest.approx(16.710757e-3, rel=1e-6)
    assert step.embedding_grads.fabrics == ("scale_out",)
    assert [step.embedding_grads_s(s) for s in range(step.pp)] == pytest.approx(
        [16.710757e-3, 0, 0, 0, 0, 16.710757e-3], rel=1e-6)
