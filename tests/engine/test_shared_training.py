"""A training job on the accelerators an autoscaled serving pool leaves
(`workload.shared_training`): its checkpoint cadence, its stretches under a scripted
billed count (arithmetic by hand), the whole run on the serving engine (the split never
exceeds the fleet, serving never waits, the figures add up, deterministic), and every
error path through the CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import simpy
from simpy.events import Timeout

from simulator.engine.serving.shared_training import Phase, TrainingTenant
from simulator.engine.serving.shared_training_summary import summarize_tenant
from simulator.engine.serving.training_widths import Cadence, TrainingWidths
from simulator.engine.training import run_training
from simulator.loading import load_scenario
from simulator.results.utilization import Utilization
from simulator.simulate import simulate
from tests.conftest import ROOT, assert_clean_error, run_cli

SERVING_FILE = ROOT / "scenarios" / "llama3.1-8b-h100-serving.yaml"

# ---- the checkpoint cadence -------------------------------------------------------------
# 10 s steps, a checkpoint every ceil(35 / 10) = 4 steps, each stalling 2 s: a 42 s cycle
IDLE = Utilization(compute=0.0, memory_bandwidth=0.0, network=0.0, busy=0.0)
CADENCE = Cadence(step_s=10.0, every=4, write_s=2.0, use=IDLE)
# a step of the scripted job keeps its accelerators this busy
STEP_USE = Utilization(compute=0.4, memory_bandwidth=0.2, network=0.1, busy=0.5)


def test_steps_count_whole_steps_and_stall_for_each_checkpoint():
    assert CADENCE.cycle_s == 42.0
    assert [CADENCE.steps(t) for t in (0, 9.99, 10, 40, 41, 42, 52)] == [0, 0, 1, 4, 4, 4, 5]


def test_a_killed_job_keeps_its_last_durable_checkpoint_and_loses_the_time_since():
    assert CADENCE.checkpointed(41.0) == (0, 41.0)  # the write had not finished
    assert CADENCE.checkpointed(42.0) == (4, 0.0)
    steps, since = CADENCE.checkpointed(55.0)
    assert steps == 4 and since == pytest.approx(13.0)


def test_a_job_stopped_at_a_step_boundary_loses_only_the_step_in_progress():
    assert CADENCE.partial_step_s(55.0) == pytest.approx(3.0)  # 13 s in: 1 step + 3 s
    assert CADENCE.partial_step_s(41.0) == 0.0  # all 4 steps done, writing


# ---- the tenant under a scripted billed count ---------------------------------------------
class Widths:
    """Blocks of 2 accelerators, widths 1, 2 and 4; a step takes 8 / dp seconds and a
    checkpoint (no stall) is due every 30 s of training."""

    block = 2
    widths = (1, 2, 4)

    def width_for(self, free: int) -> int:
        fitting = [w for w in self.widths if w * self.block <= free]
        return max(fitting, default=0)

    def cadence(self, dp: int) -> Cadence:
        step = 8.0 / dp
        return Cadence(step_s=step, every=-(-30 // int(step)), write_s=0.0, use=STEP_USE)

    name, global_batch, tokens_per_step = "job", 16, 16 * 1024


FLEET, DEVICES, RESTART_S = 11, 2, 10.0  # one accelerator never fits a block


def scripted(billed: list[tuple[float, int]], grow_delay_s: float = 0.0) -> TrainingTenant:
    """A tenant told ``billed`` replicas of 2 accelerators at each time, run to t = 500."""
    env = simpy.Environment()
    tenant = TrainingTenant(env=env, widths=Widths(), fleet=FLEET,  # type: ignore[arg-type]
                            replica_devices=DEVICES, restart_s=RESTART_S,
                            grow_delay_s=grow_delay_s)
    for t, count in billed:
        Timeout(env, t).callbacks.append(lambda _e, t=t, count=count: tenant.on_billed(t, count))
    env.run(until=500.0)
    return tenant


STEPPED = [(0.0, 1), (100.0, 3), (300.0, 1)]  # serving takes 2 more replicas for 200 s


@pytest.fixture(scope="module")
def stepped():
    tenant = scripted(STEPPED)
    return tenant, summarize_tenant(tenant, t_end=500.0, serving_max_devices=10)


def test_the_job_shrinks_at_once_and_grows_back_after_its_restarts(stepped):
    tenant, m = stepped
    # 11 - 2 = 9 free: dp 4 (8 acc.); 11 - 6 = 5: dp 2; back to dp 4; restarts of 10 s
    assert [(s.start, s.width, s.phase) for s in tenant.stretches] == [
        (0.0, 4, Phase.RUNNING), (100.0, 2, Phase.RESTARTING), (110.0, 2, Phase.RUNNING),
        (300.0, 4, Phase.RESTARTING), (310.0, 4, Phase.RUNNING)]
    assert list(zip(m.t_s, m.serving_accelerators, m.training_accelerators,
                    m.training_running, strict=True)) == [
        (0.0, 2, 8, True), (100.0, 6, 4, False), (110.0, 6, 4, True), (300.0, 2, 8, False),
        (310.0, 2, 8, True)]
    assert m.resizes == 2 and m.preemptions == 1


def test_progress_lost_work_and_restarts_by_hand(stepped):
    _, m = stepped
    # dp 4: 2 s steps, a checkpoint every 15 steps (30 s); dp 2: 4 s steps, every 8 (32 s)
    # [0, 100) preempted: 3 checkpoints = 45 steps kept; 50 done, 5 lost, 10 s lost
    # [110, 300) grown: 190 s = 5 cycles (160 s) + 7 steps (28 s) = 47 kept, 2 s lost
    # [310, 500] the window ends: 190 s / 2 s = 95 steps
    assert m.steps == 45 + 47 + 95
    assert m.lost_steps == 5
    assert m.lost_work_s == pytest.approx(10.0 + 2.0)
    assert m.lost_accelerator_seconds == pytest.approx(10.0 * 8 + 2.0 * 4)
    assert m.restart_s == pytest.approx(2 * RESTART_S)
    assert m.restart_accelerator_seconds == pytest.approx(10.0 * 4 + 10.0 * 8)
    assert m.samples == m.steps * 16 and m.tokens == m.steps * 16 * 1024


def test_accelerator_seconds_split_the_fleet_by_hand(stepped):
    _, m = stepped
    held = 100 * 8 + 10 * 4 + 190 * 4 + 10 * 8 + 190 * 8  # 3,200
    serving = 100 * 2 + 200 * 6 + 200 * 2  # 1,800
    assert m.accelerator_seconds == pytest.approx(held)
    assert m.serving_accelerator_seconds == pytest.approx(serving)
    assert m.idle_accelerator_seconds == pytest.approx(FLEET * 500 - serving - held)
    assert m.mean_data_parallel == pytest.approx((100 * 4 + 200 * 2 + 200 * 4) / 500)


def test_baselines_a_static_split_and_the_whole_fleet(stepped):
    _, m = stepped
    # static: serving at its max (10 accelerators) leaves 1, no block fits
    assert (m.static.data_parallel, m.static.steps) == (0, 0)
    # the whole fleet: dp 4 for 500 s = 16 cycles (480 s, 240 steps) + 10 steps
    assert (m.whole_fleet.data_parallel, m.whole_fleet.steps) == (4, 250)
    assert m.gained_vs_static_steps == m.steps
    assert m.lost_vs_whole_fleet_steps == 250 - m.steps


def test_the_jobs_activity_is_its_running_stretches_over_the_fleet(stepped):
    tenant, m = stepped
    # running: [0, 100) x 8, [110, 300) x 4, [310, 500] x 8 accelerators; restarts idle
    running = 100 * 8 + 190 * 4 + 190 * 8  # 3,080 accelerator-seconds
    assert m.fleet_activity.busy == pytest.approx(running * 0.5 / (FLEET * 500))
    assert m.fleet_activity.memory_bandwidth == pytest.approx(running * 0.2 / (FLEET * 500))
    # over the serving run's span [t0, t_end] = [50, 500]: 50 s fewer at 8 accelerators
    later = summarize_tenant(tenant, t0=50.0, t_end=500.0, serving_max_devices=10)
    assert later.fleet_activity.busy == pytest.approx((running - 50 * 8) * 0.5 / (FLEET * 450))
    serving = Utilization(compute=0.3, memory_bandwidth=0.9, network=0.0, busy=0.6)
    fleet = m.fleet_utilization(serving)
    assert fleet.busy == pytest.approx(0.6 + m.fleet_activity.busy)
    assert fleet.memory_bandwidth == 1.0  # 0.9 + 0.11, capped


def test_the_cost_split_adds_up_to_the_fleet_cost(stepped):
    _, m = stepped
    priced = m.priced(110.0)  # 11 accelerators x 500 s: 0.02 USD per accelerator-second
    assert priced.serving_cost_usd == pytest.approx(1800 * 0.02)
    assert priced.training_cost_usd == pytest.approx(3200 * 0.02)
    assert (priced.serving_cost_usd + priced.training_cost_usd
            + priced.idle_cost_usd) == pytest.approx(110.0)


def test_a_grow_waits_for_the_accelerators_to_stay_free():
    tenant = scripted(STEPPED, grow_delay_s=50.0)
    assert [(s.start, s.width) for s in tenant.stretches][-2:] == [(350.0, 4), (360.0, 4)]
    # freed at 300, taken back at 320: the grow is cancelled, the job stays at dp 2
    tenant = scripted([*STEPPED, (320.0, 3)], grow_delay_s=50.0)
    assert [(s.start, s.width) for s in tenant.stretches][-1] == (110.0, 2)


def test_a_change_during_a_restart_starts_it_over_and_loses_no_work():
    tenant = scripted([(0.0, 1), (100.0, 3), (105.0, 4)])  # 3 free at 105: dp 1
    m = summarize_tenant(tenant, t_end=500.0, serving_max_devices=10)
    assert [(s.start, s.width, s.phase) for s in tenant.stretches][1:] == [
        (100.0, 2, Phase.RESTARTING), (105.0, 1, Phase.RESTARTING), (115.0, 1, Phase.RUNNING)]
    assert m.restart_s == pytest.approx(5.0 + 10.0) and m.preemptions == 1
    assert m.lost_steps == 5  # only the preemption at 100 lost work


def test_the_job_stops_when_no_block_fits_and_restarts_when_one_does():
    tenant = scripted([(0.0, 1), (100.0, 5), (200.0, 1)])  # 11 - 10 = 1 free: stopped
    assert [(s.start, s.width, s.phase) for s in tenant.stretches][1:3] == [
        (100.0, 0, Phase.STOPPED), (200.0, 4, Phase.RESTARTING)]


@pytest.mark.parametrize("seed", range(5))
def test_random_pools_never_overfill_the_fleet_and_the_books_balance(seed):
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 480, 30))
    billed = [(0.0, 1), *((float(t), int(b)) for t, b in zip(times, rng.integers(1, 6, 30),
                                                             strict=True))]
    tenant = scripted(billed, grow_delay_s=float(rng.choice([0.0, 25.0])))
    m = summarize_tenant(tenant, t_end=500.0, serving_max_devices=10)
    for serving_now, training_now in zip(m.serving_accelerators, m.training_accelerators,
                                         strict=True):
        assert serving_now + training_now <= FLEET
    assert m.serving_accelerator_seconds + m.accelerator_seconds \
        + m.idle_accelerator_seconds == pytest.approx(FLEET * 500)
    assert m.restart_accelerator_seconds + m.lost_accelerator_seconds <= m.accelerator_seconds
    assert 0 <= m.steps <= m.whole_fleet.steps  # never beats the job alone at its widest
    assert m.preemptions <= m.resizes


# ---- the whole run on the serving engine --------------------------------------------------
TRAINING = """\
name: a small job
hardware: h100-sxm
cluster: {accelerators: 8}
model: megatron-1.7b
workload:
  kind: training
  seq_len: 2048
  global_batch_size: 8
  steps: 1000
  parallelism: {tp: 1, pp: 1, zero: 1}
  checkpoint: {interval_s: 300}
"""


def serving(shared: str, autoscaling: str = "autoscaling: {min_replicas: 1, "
            "target_outstanding: 16, provision_s: 30}") -> str:
    """One-H100 replicas of Llama 3.1 8B, up to 8, through a 10x step in load from minute 5
    to minute 10 of 15."""
    return f"""\
name: shared
hardware: h100-sxm
cluster: {{accelerators: 8}}
model: llama3.1-8b
seed: 1
workload:
  kind: inference
  replicas: 8
  arrivals:
    process: poisson
    rate_per_s: 4
    duration_s: 15 min
    growth:
      kind: table
      points: [{{at_s: 299.99, factor: 1}}, {{at_s: 300, factor: 10}},
               {{at_s: 599.99, factor: 10}}, {{at_s: 600, factor: 1}}]
  prompt_tokens: 1000
  output_tokens: 250
  {autoscaling}
  {shared}
"""


def write(tmp: Path, shared: str = "shared_training: {scenario: train.yaml, restart_s: 0}",
          **kwargs: str) -> Path:
    (tmp / "train.yaml").write_text(TRAINING)
    path = tmp / "serve.yaml"
    path.write_text(serving(shared, **kwargs))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = write(tmp_path_factory.mktemp("shared"))
    return load_scenario(path), simulate(load_scenario(path))


def _power_of_two_at_most(free: int) -> int:
    """The widths of a global batch of 8 sequences: 1, 2, 4, 8 (all fit memory)."""
    return 0 if free < 1 else 1 << (free.bit_length() - 1)


def test_the_job_takes_what_the_pool_leaves_at_every_change(run):
    _, result = run
    a, m = result.inference.autoscaling, result.inference.shared_training
    assert max(a.billed) > 1  # the step made the pool grow
    at = dict(zip(m.t_s, zip(m.serving_accelerators, m.training_accelerators, strict=True),
                  strict=True))
    changes = [(t, b) for k, (t, b) in enumerate(zip(a.t_s, a.billed, strict=True))
               if k == 0 or b != a.billed[k - 1]]  # (a replica joining bills no one new)
    assert len(changes) > 2
    for t, billed in changes:  # at each change of the pool's billed count, at once
        serving_now, training_now = at[t]
        assert serving_now == billed  # one accelerator per replica
        assert training_now == _power_of_two_at_most(8 - billed)  # restart_s 0
    assert all(s + t <= 8 for s, t in zip(m.serving_accelerators, m.training_accelerators,
                                          strict=True))


def test_accelerator_seconds_and_resizes_follow_the_pools_billed_count(run):
    _, result = run
    a, m = result.inference.autoscaling, result.inference.shared_training
    end = m.window_s
    edges = [*a.t_s[1:], end]
    widths = [_power_of_two_at_most(8 - b) for b in a.billed]
    held = sum(w * (e - s) for w, s, e in zip(widths, a.t_s, edges, strict=True))
    assert m.accelerator_seconds == pytest.approx(held)
    assert m.resizes == sum(1 for x, y in itertools.pairwise(widths) if x != y)
    assert m.serving_accelerator_seconds + m.accelerator_seconds \
        + m.idle_accelerator_seconds == pytest.approx(8 * end)
    assert m.restart_s == 0.0 and m.preemptions >= 1


def test_the_fleet_is_paid_once_and_split_between_the_tenants(run):
    _, result = run
    m = result.inference.shared_training
    assert result.cost.billed_accelerators == 8
    assert m.serving_cost_usd + m.training_cost_usd + m.idle_cost_usd \
        == pytest.approx(result.cost_usd)
    assert m.training_cost_per_million_tokens_usd == pytest.approx(
        m.training_cost_usd / m.tokens * 1e6)


def test_progress_lies_between_the_baselines_and_serving_is_untouched(run, tmp_path):
    _scenario, result = run
    m = result.inference.shared_training
    assert m.static.data_parallel == 0  # 8 replicas at the peak leave nothing
    assert m.whole_fleet.data_parallel == 8
    assert 0 < m.steps < m.whole_fleet.steps
    alone = simulate(load_scenario(write(tmp_path, shared="")))
    # the pool's decisions and requests are the same; only its bins' prices differ (the
    # shared fleet's serving share is priced by accelerator-seconds, energy included)
    priced = {"cost_usd", "usd_per_million_tokens"}
    assert (alone.inference.autoscaling.model_dump(exclude={"bins"})
            == result.inference.autoscaling.model_dump(exclude={"bins"}))
    assert ([b.model_dump(exclude=priced) for b in alone.inference.autoscaling.bins]
            == [b.model_dump(exclude=priced) for b in result.inference.autoscaling.bins])
    assert sum(b.cost_usd for b in result.inference.autoscaling.bins) == pytest.approx(
        result.inference.shared_training.serving_cost_usd)
    assert alone.inference.e2e_s == result.inference.e2e_s
    # rented alone, the pool pays for its replica-seconds; sharing, the whole fleet's rent
    a = alone.inference.autoscaling
    running = a.replica_seconds / (8 * alone.inference.duration_s)
    assert running < 0.9
    assert result.cost_usd == pytest.approx(alone.cost_usd / running)
    # the fleet's activity is the serving replicas' and the job's: more energy
    assert result.utilization.busy == pytest.approx(
        alone.utilization.busy + m.fleet_activity.busy)
    assert m.fleet_activity.busy > 0.1 and result.energy_kwh > alone.energy_kwh
    assert 0 < m.fleet_activity.compute <= m.fleet_activity.busy
    assert result.steady.utilization == result.utilization  # no window: the whole run


@pytest.mark.parametrize("dp", [1, 4, 8])
def test_each_width_runs_at_the_training_engines_pace(run, dp):
    """A width's step is the training scenario's own at that cluster size (the global
    batch kept): same step time, same hardware FLOP utilization."""
    scenario, _ = run
    shared = scenario.workload.shared_training
    cadence = TrainingWidths(shared, 8).cadence(dp)
    alone = run_training(load_scenario(shared.scenario, [f"cluster.accelerators={dp}"]))
    assert cadence.step_s == pytest.approx(alone.step_time_s, rel=1e-12)
    assert cadence.use.compute == pytest.approx(alone.utilization.compute, rel=1e-12)
    assert cadence.use.busy == pytest.approx(alone.utilization.busy, rel=1e-12)
    assert cadence.every == math.ceil(300 / alone.step_time_s)  # interval_s: 300


def test_a_shared_run_is_deterministic(run):
    scenario, result = run
    assert simulate(scenario).inference.shared_training == result.inference.shared_training


def test_the_cli_reports_the_job_and_writes_the_split(run, tmp_path):
    path = write(tmp_path)
    shown = run_cli("run", str(path))
    assert shown.code == 0, shown.err
    assert "Training in the troughs" in shown.out and "vs a static split" in shown.out
    out = tmp_path / "out"
    assert run_cli("run", str(path), "--out", str(out)).code == 0
    rows = (out / "fleet_split.csv").read_text().splitlines()
    assert rows[0] == "t_s,serving_accelerators,training_accelerators,training_running"
    assert rows[1] == "0.0,1,4,True"  # 8 - 1 = 7 free: dp 4
    assert (out / "fleet_split.png").stat().st_size > 0
    saved = json.loads((out / "result.json").read_text())
    assert saved["inference"]["shared_training"]["steps"] \
        == run[1].inference.shared_training.steps


# ---- errors --------------------------------------------------------------------------------
@pytest.mark.parametrize(("shared", "autoscaling", "fragments"), [
    ("shared_training: {scenario: train.yaml}", "",
     ("workload.shared_training", "needs workload.autoscaling")),
    (f"shared_training: {{scenario: {SERVING_FILE}}}", None,
     ("workload.shared_training", "has workload.kind inference")),
    ("shared_training: {scenario: serve.yaml}", None,
     ("serve.yaml", "workload.shared_training", "itself named as another's")),
    ("shared_training: {scenario: missing.yaml}", None,
     ("workload.shared_training.scenario", "no such file")),
    ("shared_training: {scenario: train.yaml, set: [hardware=h200-sxm]}", None,
     ("workload.shared_training.scenario", "h200-sxm", "must be the same")),
    ("shared_training: {scenario: train.yaml, set: [workload.parallelism.tp=8, "
     "workload.parallelism.pp=2, cluster.accelerators=16]}", None,
     ("workload.shared_training.scenario", "block tp*pp*cp = 8*2*1 = 16", "larger than")),
    ("shared_training: {scenario: train.yaml, min_data_parallel: 9}", None,
     ("workload.shared_training.min_data_parallel", "more than the fleet")),
    ("shared_training: {scenario: train.yaml, set: [workload.checkpoint.interval_s=auto]}",
     None, ("workload.shared_training", "checkpoint_interval_s: needed")),
    ("shared_training: {scenario: train.yaml, restart_s: -5}", None,
     ("workload.shared_training.restart_s",)),
    ("shared_training: {scenario: train.yaml, set: [workload.global_batch_size=7, "
     "cluster.accelerators=7], min_data_parallel: 8}", None,
     ("workload.shared_training.scenario", "no data-parallel width")),
])
def test_bad_shared_training_is_one_clear_error(tmp_path, shared, autoscaling, fragments):
    kwargs = {} if autoscaling is None else {"autoscaling": autoscaling}
    result = run_cli("run", str(write(tmp_path, shared=shared, **kwargs)))
    assert_clean_error(result, *fragments)
    assert len(result.err.strip().splitlines()) == 1, result.err


def test_an_error_in_the_training_file_names_that_file(tmp_path):
    path = write(tmp_path)
    (tmp_path / "train.yaml").write_text(TRAINING.replace("seq_len: 2048", "seq_len: -1"))
    assert_clean_error(run_cli("run", str(path)), "train.yaml", "workload.seq_len")
