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
    assert any(r.bound == "network" and "dp.gradients" in r.name for r in view.rows)
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
