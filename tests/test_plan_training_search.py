"""The training plan searches its dimensions: end-stage splits worked out by hand, the analytic
step estimate against closed forms and the simulation, the bound on simulations, --fix,
and the pruning summary through the CLI on the Llama 3.1 405B scenario."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.engine.training.estimate import estimate_step_s
from simulator.engine.training.plan import (
    Bucket,
    Chunk,
    GatherMode,
    PassCost,
    Stage,
    StepPlan,
)
from simulator.engine.training.schedule import schedule
from simulator.engine.training.step import simulate_step
from simulator.errors import InputError
from simulator.perf.stage_split import (
    EndStageWeights,
    PipelineOption,
    end_stage_weights,
    full_stage_layers,
    pipeline_options,
)
from simulator.profiles.catalog import load_model
from simulator.profiles.overrides import apply_overrides
from simulator.studies.plan_training import plan_training
from simulator.studies.rows import Base
from simulator.studies.training_screen import PRUNE_REASONS

ROOT = Path(__file__).resolve().parent.parent
LLAMA_405B = ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml"
LLAMA_8B = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"
SMALL_RUN = ["workload.tokens=2.0e10", "workload.failures.enabled=false"]


def _base(path: Path, overrides: list[str]) -> Base:
    base = Base.from_file(path)
    return Base(apply_overrides(base.data, overrides), base.base_dir, base.file)


def _run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "simulator.cli.main", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


# ---- end-stage splits, by hand ------------------------------------------------------------
def test_llama_405b_end_stages_weigh_two_thirds_of_a_layer():
    # V*h = 128256*16384 = 2,101,346,304 (the table; the head has as many weights).
    # A layer: attention 16384*128*128*2 + 2*16384*8*128 = 570,425,344, FFN 3*16384*53248
    # = 2,617,245,696, norms (2*126+1)*16384/126 = 32,898.03: 3,187,703,938.03 in all.
    weights = end_stage_weights(load_model("llama3.1-405b"), 8192)
    layer = 570_425_344 + 2_617_245_696 + (2 * 126 + 1) * 16384 / 126
    assert weights.first == pytest.approx(2_101_346_304 / layer)  # 0.659
    # the head's GEMM per token, 2*V*h, against a layer's 2*active + heads*(d_qk+d_v)*seq
    # (= 6,375,407,876 + 128*256*8192): smaller than its weight ratio, so the weight counts
    assert weights.last == pytest.approx(weights.first)
    assert [list(r) for r in weights.lighter_by()] == [[0, 1], [0, 1]]


def test_llama_405b_on_16_stages_is_llama_3s_published_split():
    # 126 + a + b for a, b in {0, 1}: only 128 divides by 16, so 8 layers a stage and one
    # fewer on each end (7 + 14x8 + 7); vpp divides 8: 1, 2, 4, 8.
    weights = end_stage_weights(load_model("llama3.1-405b"), 8192)
    assert pipeline_options(126, 16, weights) == [PipelineOption(7, 7, v) for v in (1, 2, 4, 8)]
    # 4 stages: 128 / 4 = 32, so 31 + 32 + 32 + 31, any divisor of 32 (31 >= 32 - 1 keeps one
    # chunk of each end stage empty at most)
    assert pipeline_options(126, 4, weights) == [PipelineOption(31, 31, v)
                                                 for v in (1, 2, 4, 8, 16, 32)]
    assert pipeline_options(126, 1, weights) == [PipelineOption(126, 126, 1)]


def test_uneven_options_from_the_weights_worked_by_hand():
    # first lighter by 0..1, last by 0..2: 30 + a + b in 30..33; only 32 divides by 4 (a+b=2):
    # (a, b) = (0, 2) -> 8 + 8 + 8 + 6; (1, 1) -> 7 + 8 + 8 + 7. vpp divides 8, and an end
    # stage of 6 layers cannot spread over 8 chunks with at most one empty.
    weights = EndStageWeights(first=0.2, last=1.5)
    assert pipeline_options(30, 4, weights) == [
        PipelineOption(7, 7, 1), PipelineOption(7, 7, 2), PipelineOption(7, 7, 4),
        PipelineOption(7, 7, 8), PipelineOption(8, 6, 1), PipelineOption(8, 6, 2),
        PipelineOption(8, 6, 4)]
    assert pipeline_options(30, 4, weights, vpps=[2, 3]) == [PipelineOption(7, 7, 2),
                                                               PipelineOption(8, 6, 2)]
    assert pipeline_options(31, 4, EndStageWeights(0.0, 0.0)) == []  # 31 does not split by 4


def test_a_fixed_split_is_the_scenarios_and_nothing_else():
    weights = EndStageWeights(first=0.66, last=0.66)
    # 7 + 14 x 8 + 7 = 126; on 8 stages 126 - 14 = 112 does not split over 6 stages
    assert pipeline_options(126, 16, weights, fixed_split=(7, 7), vpps=[8]) == [
        PipelineOption(7, 7, 8)]
    assert pipeline_options(126, 8, weights, fixed_split=(7, 7)) == []
    # no split given (None): full end stages, so 126 / 16 is not whole and 126 / 2 = 63 is
    assert pipeline_options(126, 16, weights, fixed_split=(None, None)) == []
    assert pipeline_options(126, 2, weights, fixed_split=(None, None), vpps=[1, 3, 4]) == [
        PipelineOption(63, 63, 1), PipelineOption(63, 63, 3)]
    # only the first given: (126 - 6) / 15 = 8 for the rest
    assert pipeline_options(126, 16, weights, fixed_split=(6, None), vpps=[1]) == [
        PipelineOption(6, 8, 1)]
    assert pipeline_options(126, 1, weights, fixed_split=(7, 7)) == []


def test_full_stage_layers():
    assert full_stage_layers(126, 16, 7, 7) == 8
    assert full_stage_layers(126, 16, 8, 8) is None  # 110 over 14 stages
    assert full_stage_layers(126, 2, 62, 64) == 64  # two stages: the heavier one
    assert full_stage_layers(126, 2, 62, 62) is None
    assert full_stage_layers(10, 8, 2, 8) is None  # nothing left for the middle


# ---- the analytic step estimate -----------------------------------------------------------
def _plan(pp: int, m: int, *, vpp: int = 1, f: float = 1.0, b: float = 2.0) -> StepPlan:
    stages = tuple(Stage((Chunk(forward=PassCost(compute_s=f / vpp),
                                backward=PassCost(compute_s=b / vpp)),) * vpp)
                   for _ in range(pp))
    kind = "interleaved" if vpp > 1 else "1f1b"
    return StepPlan(stages=stages, order=tuple(tuple(o) for o in schedule(kind, pp, m, vpp)))


@pytest.mark.parametrize("pp,m,vpp,expected", [
    (4, 8, 1, 33.0),  # (m + pp - 1)(f + b) = 11 * 3
    (4, 8, 2, 28.5),  # m(f + b) + (pp - 1)(f + b)/vpp = 24 + 4.5
    (1, 5, 1, 15.0),  # no pipeline: 5 * 3
    (16, 16, 8, 48 + 15 * 3 / 8),
])
def test_estimate_is_the_closed_form_and_the_simulation_on_uniform_stages(pp, m, vpp, expected):
    plan = _plan(pp, m, vpp=vpp)
    assert estimate_step_s(plan) == pytest.approx(expected)
    assert simulate_step(plan).step_time_s == pytest.approx(expected)


def test_estimate_waits_for_the_slowest_stage_and_the_transfers():
    plan = _plan(3, 4)
    slow = Stage((Chunk(forward=PassCost(compute_s=2.0), backward=PassCost(compute_s=4.0)),))
    plan = StepPlan(stages=(plan.stages[0], slow, plan.stages[2]), order=plan.order, p2p_s=0.1)
    # 4 * 6 (slowest) + 2 * ((3 + 6 + 3) / 3 + 2 * 0.1) = 24 + 8.4
    assert estimate_step_s(plan) == pytest.approx(32.4)


@pytest.mark.parametrize(("bucket_s", "exposed"), [
    (0.1, 0.1),  # shorter than the spacing (2 s / 4): only the last bucket is left
    (1.0, 4 * 1.0 - 2.0 * 3 / 4),  # longer: all but what the first 3/4 of the pass covers
])
def test_the_last_gradient_buckets_hide_behind_the_backward_that_issues_them(bucket_s,
                                                                             exposed):
    """One stage, 5 microbatches of f = 1 s and b = 2 s (15 s), and four gradient buckets
    issued one by one as the last backward goes (after 0.5, 1, 1.5 and 2 s of it): the
    stream ends 0.1 s after the pass with 0.1 s buckets, and with 1 s buckets, started at
    13.5, 14.5, 15.5 and 16.5 s, 2.5 s after it. The estimate and the simulation agree."""
    buckets = tuple(Bucket(f"grads {k}", bucket_s, ("scale_out",)) for k in range(4))
    chunk = Chunk(forward=PassCost(compute_s=1.0), backward=PassCost(compute_s=2.0),
                  grad_buckets=buckets)
    plan = StepPlan(stages=(Stage((chunk,)),), order=_plan(1, 5).order, dp_overlap=True)
    assert estimate_step_s(plan) == pytest.approx(15.0 + exposed)
    assert simulate_step(plan).step_time_s == pytest.approx(15.0 + exposed)


def test_zero3_issues_each_backwards_buckets_as_the_pass_goes_too():
    """ZeRO 3 reduces after every backward, bucket by bucket as the pass produces them:
    with 0.1 s buckets (shorter than the 0.5 s spacing) only the last backward's last
    bucket is left after the 15 s of compute, in the estimate and the simulation."""
    buckets = tuple(Bucket(f"grads {k}", 0.1, ("scale_out",)) for k in range(4))
    chunk = Chunk(forward=PassCost(compute_s=1.0), backward=PassCost(compute_s=2.0),
                  grad_buckets=buckets)
    plan = StepPlan(stages=(Stage((chunk,)),), order=_plan(1, 5).order, dp_overlap=True,
                    gather=GatherMode.PASS)
    assert estimate_step_s(plan) == pytest.approx(15.1)
    assert simulate_step(plan).step_time_s == pytest.approx(15.1)


# ---- the search ---------------------------------------------------------------------------
def test_the_8b_plan_explores_uneven_end_stages_and_vpp():
    plan = plan_training(_base(LLAMA_8B, SMALL_RUN), sizes=[8], tps=[1], pps=[4],
                         micro_batches=[1], recomputes=["full"], zeros=[1])
    rows = plan.evaluated + plan.pruned
    splits = {(r["first_stage_layers"], r["last_stage_layers"], r["vpp"]) for r in rows}
    # Llama 3.1 8B: table 128256*4096 = 525,336,576 against a layer of 41,943,040 +
    # 176,160,768 + 65*4096/32 = 218,112,128: 2.41 layers, so each end may be lighter by 0
    # to 3. 32 + a + b divides by 4 for a + b = 0 (8 a stage) or 4 (9 a stage, 9 - a and
    # 9 - b on the ends); vpp divides 8 or 9, at most one empty chunk per end stage.
    assert {(first, last) for first, last, _ in splits} == {(8, 8), (8, 6), (7, 7), (6, 8)}
    assert {v for first, last, v in splits if (first, last) == (8, 8)} == {1, 2, 4, 8}
    # (7, 7) takes vpp 1 or 3, not 9: 7 layers over 9 chunks would leave two empty
    assert {v for first, last, v in splits if (first, last) == (7, 7)} == {1, 3}
    assert len(plan.pruned) + plan.simulations == len(rows)
    assert sum(plan.pruning.values()) == len(plan.pruned)


def test_the_bound_limits_simulations_and_says_where_each_one_ranked():
    plan = plan_training(_base(LLAMA_8B, SMALL_RUN), sizes=[8], tps=[1, 2], pps=[1, 2],
                         micro_batches=[1], recomputes=["full"], zeros=[1],
                         max_simulations=2)
    reference = [r for r in plan.evaluated if (r["tp"], r["pp"]) == (1, 1)]
    assert reference, "the scenario's own layout is always simulated"
    assert plan.simulations <= 3  # two by the estimate, and the reference
    bound = [r for r in plan.pruned if r["pruned_by"] == "bound"]
    assert bound and all(re.search(r"ranks \d+ of \d+; the plan simulates the best 2",
                                   r["reason"]) for r in bound)
    best_unsimulated = min(float(r["reason"].split()[3]) for r in bound)
    simulated = [r["estimate_step_s"] for r in plan.evaluated if r is not reference[0]]
    assert max(simulated) <= best_unsimulated * (1 + 1e-3)  # the best two by the estimate


def test_fix_keeps_the_scenarios_value_and_bad_fixes_are_refused():
    plan = plan_training(_base(LLAMA_8B, SMALL_RUN), sizes=[8], tps=[1], pps=[2],
                         micro_batches=[1], recomputes=["full"], zeros=[1],
                         fix=["workload.parallelism.vpp",
                              "workload.parallelism.last_stage_layers"])
    rows = plan.evaluated + plan.pruned
    assert {(r["vpp"], r["first_stage_layers"], r["last_stage_layers"]) for r in rows} == {
        (1, 16, 16)}
    with pytest.raises(InputError, match=r"'workload\.parallelism\.vp' is not a dimension"):
        plan_training(_base(LLAMA_8B, SMALL_RUN), fix=["workload.parallelism.vp"])
    with pytest.raises(InputError, match="--vpp gives a list for the same dimension"):
        plan_training(_base(LLAMA_8B, SMALL_RUN), vpps=[2], fix=["workload.parallelism.vpp"])
    with pytest.raises(InputError, match="--max-simulations must be 1 or more"):
        plan_training(_base(LLAMA_8B, SMALL_RUN), max_simulations=0)


# ---- the command --------------------------------------------------------------------------
_SUMMARY = re.compile(r"note: ([\d,]+) layouts: ([\d,]+) simulated, ([\d,]+) pruned \((.*)\);")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def test_cli_405b_plan_searches_and_beats_the_published_layout(tmp_path):
    out = tmp_path / "points.csv"
    proc = _run_cli("plan", str(LLAMA_405B), "--jobs", "1", "--no-plot", "--out", str(out),
                    cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    summary = _SUMMARY.search(proc.stdout)
    assert summary, proc.stdout
    total, simulated, pruned = (_number(summary.group(i)) for i in (1, 2, 3))
    reasons = {}
    for part in summary.group(4).split(", "):
        count, phrase = part.split(" ", 1)
        reasons[phrase] = _number(count)
    assert set(reasons) <= set(PRUNE_REASONS.values())
    assert sum(reasons.values()) == pruned and simulated + pruned == total
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == total
    assert sum(r["simulated"] == "true" for r in rows) == simulated > 3
    ran = [r for r in rows if r["status"] == "ok"]
    assert {r["vpp"] for r in ran} > {"8"}  # vpp is searched, not inherited
    own = [r for r in ran if (r["tp"], r["pp"], r["vpp"], r["first_stage_layers"],
                              r["last_stage_layers"], r["micro_batch_size"], r["recompute"],
                              r["zero"]) == ("8", "16", "8", "7", "7", "1", "full", "1")]
    assert len(own) == 1, "the scenario's own layout is simulated as the reference"
    best = min(float(r["time_s"]) for r in ran)
    assert best <= float(own[0]["time_s"])
    assert "the scenario's own layout (tp=8 pp=16 vpp=8" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (("--fix", "workload.parallelism.vp"),
     "--fix 'workload.parallelism.vp' is not a dimension the training plan searches; use "
     "one of: workload.parallelism.tp"),
    (("--fix", "workload.parallelism.tp", "--tp", "4,8"),
     "--fix workload.parallelism.tp keeps the scenario's value, and --tp gives a list"),
    (("--max-simulations", "0"), "argument --max-simulations: '0' is not a whole number"),
])
def test_cli_bad_fix_and_bound_exit_2_with_one_line(tmp_path, args, message):
    proc = _run_cli("plan", str(LLAMA_8B), "--no-plot", "--jobs", "1", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_fix_on_a_serving_plan_is_refused(tmp_path):
    serving = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"
    proc = _run_cli("plan", str(serving), "--no-plot", "--fix", "workload.parallelism.tp",
                    cwd=tmp_path)
    assert proc.returncode == 2
    assert "--fix pins a dimension of a training plan's layout search" in proc.stderr


def test_json_plan_carries_the_counts_by_reason(tmp_path):
    proc = _run_cli("plan", str(LLAMA_8B), "--no-plot", "--jobs", "1", "--format", "json",
                    "--set", "workload.failures.enabled=false", "--tp", "1,2", "--pp", "1,2",
                    "--micro-batch", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert sum(report["pruned_by_reason"].values()) == report["pruned"]
    assert report["pruned"] == len(report["pruned_candidates"])
    assert report["simulations"] == len(report["evaluated"])


def _shipped_training_scenarios() -> list[Path]:
    """The shipped scenarios whose workload is training (a serving file's name may mention
    the training job sharing its fleet)."""
    import yaml

    return [p for p in sorted((ROOT / "scenarios").glob("*.yaml"))
            if (yaml.safe_load(p.read_text()).get("workload") or {}).get("kind") == "training"]


@pytest.mark.parametrize("scenario", _shipped_training_scenarios(), ids=lambda p: p.stem)
def test_estimate_is_close_to_the_simulated_step_on_shipped_scenarios(scenario):
    """The plan ranks by the estimate: on the shipped layouts it is within 10% of the step
    the simulation gives (measured: within 6%)."""
    from simulator.engine.training.planner import build_plan
    from simulator.loading import load_scenario
    from simulator.simulate import estimate_step_times

    loaded = load_scenario(scenario)
    simulated = simulate_step(build_plan(loaded).step).step_time_s
    assert estimate_step_times([loaded])[0] == pytest.approx(simulated, rel=0.10)
