"""The user-facing roofline: one step or iteration, op by op, with a verdict."""

from __future__ import annotations

import pytest

from simulator import load_scenario
from simulator.perf.roofline_view import roofline
from tests.conftest import ROOT, run_cli

SERVING = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
TRAINING = ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"


def test_decode_at_batch_one_is_memory_bound_and_prefill_compute_bound():
    view = roofline(load_scenario(SERVING, ["workload.batching.max_batch_size=1"]))
    phases = list(dict.fromkeys(r.phase for r in view.rows))
    prefill, decode = phases
    assert max(view.by_bound(decode), key=view.by_bound(decode).get) == "memory"
    assert max(view.by_bound(prefill), key=view.by_bound(prefill).get) == "compute"


def test_every_row_is_consistent():
    view = roofline(load_scenario(TRAINING))
    assert view.rows
    for row in view.rows:
        assert row.time_s > 0
        assert row.bound in ("compute", "memory", "network")
        if row.flops:
            assert row.intensity == pytest.approx(row.flops / row.bytes)
    assert any(r.bound == "network" and "grads reduce_scatter" in r.name for r in view.rows)
    assert view.total() == pytest.approx(sum(r.time_s for r in view.rows))


def test_training_backward_costs_about_twice_forward():
    view = roofline(load_scenario(TRAINING, ["workload.recompute=none"]))
    fwd = sum(r.flops for r in view.rows if r.phase.startswith("forward"))
    bwd = sum(r.flops for r in view.rows if r.phase.startswith("backward"))
    assert 1.9 < bwd / fwd < 2.3


def test_roofline_cli_table_and_json():
    table = run_cli("roofline", str(SERVING))
    assert table.code == 0, table.err
    assert "ridge point" in table.out and "decode" in table.out
    data = run_cli("roofline", str(TRAINING), "--format", "json").json()
    assert data["hardware"] == "h100-sxm"
    assert data["roofline"]["rows"] and data["roofline"]["verdicts"]


def test_a_pipeline_without_sequence_parallelism_shows_the_gather_of_its_sends():
    """The step's rows carry the send of one TP shard (S/8 of S = 8192 x 8192 x 2 B) and,
    without SP only, the all-gather of the whole S over the 8 TP ranks that rebuilds it,
    priced as the step prices it (the plan's p2p_gather_s)."""
    from simulator.engine.training.planner import build_plan

    whole = 8192 * 8192 * 2
    with_sp = roofline(load_scenario(TRAINING))
    assert [r.bytes for r in with_sp.rows if r.name.startswith("pp.")] == [whole / 8]
    plain = load_scenario(TRAINING, ["workload.parallelism.sequence_parallel=false"])
    rows = {r.name.split(" ")[0]: r for r in roofline(plain).rows if r.name.startswith("pp.")}
    assert rows["pp.activations"].bytes == whole / 8
    assert rows["pp.activations_all_gather"].bytes == whole
    assert rows["pp.activations_all_gather"].time_s == pytest.approx(
        build_plan(plain).step.p2p_gather_s)


# Llama 3.1 70B's first stage of two (40 layers and the embedding) on one TP8 rank, by hand:
# attention 8192 x (64 + 8 + 8) x 128 + 64 x 128 x 8192 = 150,994,944; gated FFN
# 3 x 8192 x 28672 = 704,643,072; two norms 2 x 8192; embedding 128,256 x 8192.
_LAYER = 150_994_944 + 704_643_072 + 2 * 8192
_STAGE0_PER_RANK = (40 * _LAYER + 128_256 * 8192) / 8


def _step_rows(*sets: str) -> dict[str, float]:
    view = roofline(load_scenario(TRAINING, list(sets)))
    return {r.name.split(" (")[0]: r.bytes for r in view.rows if r.phase == "per step"}


def test_the_step_rows_carry_what_the_engine_reduces_and_gathers():
    """The busiest stage's gradients in the buffer's dtype (fp32 by default, bf16 with
    grad_reduce_dtype), its bf16 parameters gathered once under ZeRO 1, and under ZeRO 0
    an all-reduce with nothing gathered."""
    rows = _step_rows()
    assert rows["grads reduce_scatter"] == pytest.approx(4 * _STAGE0_PER_RANK)
    assert rows["params all_gather"] == pytest.approx(2 * _STAGE0_PER_RANK)
    assert _step_rows("workload.grad_reduce_dtype=bf16")["grads reduce_scatter"] == \
        pytest.approx(2 * _STAGE0_PER_RANK)
    plain = _step_rows("workload.parallelism.zero=0")
    assert plain["grads all_reduce"] == pytest.approx(4 * _STAGE0_PER_RANK)
    assert "params all_gather" not in plain and "grads reduce_scatter" not in plain
    assert "embedding grads all_reduce" not in rows  # Llama's output layer is its own


def test_zero3_gathers_before_every_pass_and_reduces_after_every_backward():
    """512 sequences over DP4 at one a microbatch: 128 microbatches, each with a forward
    and a backward on the stage."""
    view = roofline(load_scenario(TRAINING, ["workload.parallelism.zero=3"]))
    counts = {r.name.split(" (")[0]: r.count for r in view.rows if r.phase == "per step"}
    assert counts["params all_gather"] == 2 * 128
    assert counts["grads reduce_scatter"] == 128


def test_a_tied_embedding_adds_its_all_reduce_between_the_end_stages():
    """GPT-3 (tied embeddings) at TP4 PP8: the first stage's V/tp x h gradient shard in
    fp32, 50,257 x 12,288 / 4 x 4 bytes, over the pair of end stages."""
    view = roofline(load_scenario(ROOT / "scenarios" / "gpt3-175b-gb200-training.yaml"))
    row = next(r for r in view.rows if r.name.startswith("embedding grads all_reduce"))
    assert row.bytes == pytest.approx(50_257 * 12_288 / 4 * 4)
    assert "2 ranks" in row.name
