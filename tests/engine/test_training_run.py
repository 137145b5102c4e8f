"""Training scenarios end to end: every shipped one runs, results hang together, the trace
opens, and the invariants the issue names hold on real layouts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

import simulator.engine.training.step as step_module
from simulator.engine.training import run_training
from simulator.engine.training.planner import build_plan
from simulator.engine.training.step import simulate_step
from simulator.loading import load_scenario
from simulator.report.trace import write_trace
from simulator.results.training import TrainingResult
from tests.conftest import ROOT, SCENARIOS

TRAINING = [p for p in SCENARIOS
            if yaml.safe_load(p.read_text())["workload"]["kind"] == "training"]
LLAMA_405B = ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml"
LLAMA_70B = ROOT / "scenarios" / "llama3.1-70b-h100-training.yaml"


def test_the_issue_lists_its_scenarios():
    names = {p.stem for p in TRAINING}
    for expected in ("llama3.1-8b-h100-training", "llama3.1-70b-mi300x-training",
                     "llama3.1-405b-h100-training", "deepseek-v3-h800-training",
                     "llama2-70b-lora-mi300x", "gpt3-175b-gb200-training",
                     "llama3.1-70b-tpu-v5p-training", "llama3.1-70b-trainium2-training"):
        assert expected in names


@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_every_training_scenario_runs(path):
    scenario = load_scenario(path)
    r = run_training(scenario)
    assert r.breakdown_s.total == pytest.approx(r.step_time_s, rel=1e-9)
    assert 0 < r.mfu <= r.hfu < 1
    assert 0 <= r.bubble_fraction < 1
    assert r.tokens_per_s == pytest.approx(scenario.workload.tokens_per_step / r.step_time_s)
    assert r.time_to_train_s == pytest.approx(r.steps * r.step_time_s)
    assert r.wall_time_s >= r.time_to_train_s
    assert r.goodput == pytest.approx(r.time_to_train_s / r.wall_time_s)
    assert r.accelerator_hours == pytest.approx(
        scenario.cluster.accelerators * r.wall_time_s / 3600)
    memory = r.memory_per_accelerator_bytes.model_dump()
    assert memory["total"] == pytest.approx(sum(v for k, v in memory.items() if k != "total"))
    for value in r.utilization.model_dump().values():
        assert 0 <= value <= 1


VARIANTS = [[], ["workload.parallelism.zero=3"], ["workload.parallelism.zero=0",
                                                 "workload.overlap.dp_comm=false"]]


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda v: " ".join(v) or "as shipped")
@pytest.mark.parametrize("path", TRAINING, ids=lambda p: p.stem)
def test_stages_driven_directly_are_simpy_processes(path, overrides, monkeypatch):
    """The step drives each stage's generator from its events' callbacks (stage_process
    .drive); as SimPy processes the step comes out the same, bit for bit: times, both
    breakdowns, utilization, every stage's ledger, the SimPy event count and every record
    of the timeline."""
    plan = build_plan(load_scenario(path, overrides)).step
    direct = simulate_step(plan)
    monkeypatch.setattr(step_module, "drive", lambda env, body: env.process(body))
    as_processes = simulate_step(plan)
    assert as_processes == direct


def test_json_has_the_issue_keys_and_no_timeline():
    r = run_training(load_scenario(LLAMA_70B))
    data = json.loads(r.model_dump_json())
    assert set(data) == {
        "step_time_s", "tokens_per_s", "mfu", "hfu", "bubble_fraction", "breakdown_s",
        "memory_per_accelerator_bytes", "steps", "time_to_train_s", "goodput", "wall_time_s",
        "accelerator_hours", "failures", "utilization", "critical_stage", "busiest_stage",
        "busiest_stage_breakdown_s"}
    assert set(data["breakdown_s"]) == {
        "compute", "exposed_tp_comm", "exposed_dp_comm", "exposed_pp_comm", "exposed_ep_comm",
        "bubble", "optimizer", "other"}
    for key in ("expected_interruptions", "sampled_interruptions", "lost_hours",
                "checkpoint_interval_s", "checkpoint_write_s"):
        assert key in data["failures"]
    assert r.timeline is not None
    TrainingResult.model_validate_json(r.model_dump_json())


def test_determinism_by_seed():
    scenario = load_scenario(LLAMA_405B)
    a, b = run_training(scenario), run_training(scenario)
    assert a.model_dump() == b.model_dump()
    other = run_training(scenario, rng=np.random.default_rng(scenario.seed + 1))
    assert other.step_time_s == a.step_time_s
    assert other.failures.sampled_interruptions != a.failures.sampled_interruptions \
        or other.wall_time_s != a.wall_time_s


@pytest.mark.parametrize("dp", [1, 2, 4, 8])
def test_doubling_dp_at_fixed_batch_never_costs_more_than_the_comm_it_adds(dp):
    """Llama 3.1 70B, TP8 PP2, global batch 512: twice the replicas, half the microbatches."""
    def run(d: int):
        return run_training(load_scenario(LLAMA_70B, [f"cluster.accelerators={16 * d}",
                                                      "workload.failures.enabled=false"]))

    few, many = run(dp), run(2 * dp)
    added = max(0.0, many.breakdown_s.exposed_dp_comm - few.breakdown_s.exposed_dp_comm)
    assert many.time_to_train_s <= few.time_to_train_s + many.steps * added + 1e-6


def test_lora_reduces_only_the_adapters():
    base = ROOT / "scenarios" / "llama2-70b-lora-mi300x.yaml"
    lora = run_training(load_scenario(base))
    full = run_training(load_scenario(base, ["workload.finetune.method=full",
                                             "workload.parallelism.zero=1"]))
    assert lora.breakdown_s.exposed_dp_comm < full.breakdown_s.exposed_dp_comm
    assert lora.failures.checkpoint_bytes < full.failures.checkpoint_bytes / 100


def test_overlapping_tp_communication_helps():
    base = ROOT / "scenarios" / "gpt3-175b-gb200-training.yaml"
    hidden = run_training(load_scenario(base))
    exposed = run_training(load_scenario(base, ["workload.overlap.tp_comm=false"]))
    assert hidden.breakdown_s.exposed_tp_comm < exposed.breakdown_s.exposed_tp_comm
    assert hidden.step_time_s < exposed.step_time_s


def test_trace_opens_as_chrome_trace(tmp_path):
    r = run_training(load_scenario(LLAMA_70B))
    path = write_trace(r, tmp_path / "step.json")
    assert [p.name for p in tmp_path.iterdir()] == ["step.json"]  # no temporary left behind
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as every other output file
    data = json.loads(path.read_text())
    events = data["traceEvents"]
    names = {e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert names == {"pipeline stage 0", "pipeline stage 1"}
    slices = [e for e in events if e["ph"] == "X"]
    kinds = {e["cat"] for e in slices}
    assert {"forward", "backward", "tp_comm", "dp_comm", "optimizer"} <= kinds
    sends = [e for e in events if e["ph"] in "be"]
    assert sends and {e["cat"] for e in sends} == {"pp_comm"}
    assert len({e["id"] for e in sends}) * 2 == len(sends)
    assert all(e["dur"] > 0 and e["ts"] >= 0 for e in slices)
    end = max(e["ts"] + e["dur"] for e in slices)
    assert end == pytest.approx(r.step_time_s * 1e6, rel=1e-9)
    assert_nested(slices)


def assert_nested(slices: list[dict]) -> None:
    """Slices on one track either nest or follow each other (what the viewers require)."""
    tracks: dict[tuple, list[dict]] = {}
    for e in slices:
        tracks.setdefault((e["pid"], e["tid"]), []).append(e)
    tolerance = 1e-6  # microseconds
    for track in tracks.values():
        open_ends: list[float] = []
        for e in sorted(track, key=lambda e: (e["ts"], -e["dur"])):
            while open_ends and open_ends[-1] <= e["ts"] + tolerance:
                open_ends.pop()
            end = e["ts"] + e["dur"]
            assert not open_ends or end <= open_ends[-1] + tolerance, (e, open_ends[-1])
            open_ends.append(end)


@pytest.mark.parametrize("name", ["llama3.1-405b-h100-training.yaml",
                                  "deepseek-v3-h800-training.yaml",
                                  "llama3.1-70b-tpu-v5p-training.yaml"])
def test_traces_of_big_layouts_nest(tmp_path, name):
    r = run_training(load_scenario(ROOT / "scenarios" / name))
    data = json.loads(write_trace(r.timeline, tmp_path / "t.json").read_text())
    assert_nested([e for e in data["traceEvents"] if e["ph"] == "X"])


def test_trace_needs_a_timeline(tmp_path):
    r = run_training(load_scenario(LLAMA_70B))
    bare = TrainingResult.model_validate_json(r.model_dump_json())
    with pytest.raises(ValueError, match="no step timeline"):
        write_trace(bare, tmp_path / "x.json")


def test_utilization_means_the_same_as_everywhere_else():
    """compute is FLOP utilization (= hfu over the step); busy is the kernel-running share."""
    r = run_training(load_scenario(ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"))
    assert r.utilization.compute == pytest.approx(r.hfu)
    assert r.utilization.compute <= r.utilization.busy <= 1.0
