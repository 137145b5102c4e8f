"""The run-scale failure model against closed forms, the Poisson process it samples, and
the shipped 405B scenario."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from simulator.engine.training import run_training
from simulator.engine.training.failures import (
    NoProgress,
    RunSpec,
    expected_wall_time,
    resolve_interval,
    simulate_run,
    young_daly_interval,
)
from simulator.loading import load_scenario
from simulator.profiles.catalog import load_hardware
from tests.conftest import ROOT

DAY, HOUR = 86400.0, 3600.0
H100_RELIABILITY = load_hardware("h100-sxm").reliability
H100_MTBF = H100_RELIABILITY.mtbf_per_accelerator.value
H100_NODE_MTBF = H100_RELIABILITY.mtbf_per_node.value  # type: ignore[union-attr]


def llama3_run(work_days: float = 48.0, interval: float | None = None,
               blocking: bool = True) -> RunSpec:
    """16,384 H100s in 2,048 hosts at the profile's MTBFs, 15-minute restarts, 5.7 TB
    checkpoints at 2 TB/s."""
    write = 5.68e12 / 2e12
    fleet = 1 / (16384 / H100_MTBF + 2048 / H100_NODE_MTBF)
    chosen = interval or young_daly_interval(write, fleet)
    return RunSpec(work_s=work_days * DAY, accelerators=16384, mtbf_per_accelerator_s=H100_MTBF,
                   nodes=2048, mtbf_per_node_s=H100_NODE_MTBF,
                   restart_s=900.0, checkpoint_write_s=write, interval_s=chosen,
                   blocking=blocking)


def samples(spec: RunSpec, seeds: range):
    return [simulate_run(spec, np.random.default_rng(seed)) for seed in seeds]


def test_a_scenarios_expected_interruptions_are_its_gpu_and_node_hours_over_the_mtbfs():
    """The shipped 405B run: expected interruptions = GPU-hours of its expected wall time /
    the H100 profile's MTBF per accelerator + node-hours / its MTBF per node, worked out here
    from the profile and the scenario, not from the run's spec: 16,384 GPUs in 16,384 / 8 =
    2,048 hosts, so the fleet fails 16,384 / 58,000 + 2,048 / 50,100 = 0.32335 times an
    hour (MTBF 3.0925 h)."""
    scenario = load_scenario(ROOT / "scenarios" / "llama3.1-405b-h100-training.yaml")
    assert scenario.cluster.accelerators == 16384
    failures = run_training(scenario).failures
    hours = failures.expected_wall_time_s / HOUR
    assert failures.mtbf_per_accelerator_hours == pytest.approx(58000)
    assert failures.mtbf_per_node_hours == pytest.approx(50100)
    assert failures.nodes == 2048
    assert failures.fleet_mtbf_hours == pytest.approx(1 / (16384 / 58000 + 2048 / 50100))
    assert failures.fleet_mtbf_hours == pytest.approx(3.0925, abs=1e-4)
    assert failures.expected_interruptions == pytest.approx(
        16384 * hours / 58000 + 2048 * hours / 50100)
    # one sample of a Poisson count: within 5 standard deviations of its mean
    assert abs(failures.sampled_interruptions - failures.expected_interruptions) < 5 * math.sqrt(
        failures.expected_interruptions)


def poisson_spec(accelerators: int) -> RunSpec:
    """300 hours of work on a fleet whose MTBF is 10,000 h / accelerators, restarts free
    and checkpoints free every 10 minutes: the wall time, so the failure count, barely
    depends on the failures themselves."""
    return RunSpec(work_s=300 * HOUR, accelerators=accelerators,
                   mtbf_per_accelerator_s=10_000 * HOUR, restart_s=0.0,
                   checkpoint_write_s=0.0, interval_s=600.0)


def test_failures_arrive_as_a_poisson_process():
    """Over 200 seeds, interruptions per run have the mean of the closed form (within 4
    standard errors) and a variance equal to the mean (a Poisson count: within 4 standard
    deviations of the sample variance's), and twice the fleet fails twice as often."""
    n = 200
    counts = {}
    for accelerators in (1000, 2000):
        runs = samples(poisson_spec(accelerators), range(n))
        expected = runs[0].expected_interruptions
        got = [r.interruptions for r in runs]
        mean = statistics.fmean(got)
        assert abs(mean - expected) < 4 * math.sqrt(expected / n)
        assert statistics.variance(got) / mean == pytest.approx(1.0, abs=4 * math.sqrt(2 / n))
        counts[accelerators] = mean
    assert counts[2000] / counts[1000] == pytest.approx(2.0, rel=0.05)


def test_expected_interruptions_are_n_t_over_mtbf():
    out = simulate_run(llama3_run(), np.random.default_rng(0))
    assert out.expected_interruptions == pytest.approx(
        16384 * out.expected_wall_time_s / H100_MTBF
        + 2048 * out.expected_wall_time_s / H100_NODE_MTBF)
    # a span of this size covers about the 54-day window in which Llama 3's interruptions
    # were counted (a snapshot of pre-training, not its length), and is interrupted about as
    # often
    assert 45 * DAY < out.expected_wall_time_s < 60 * DAY
    assert 300 < out.expected_interruptions < 500


def test_sampled_runs_scatter_around_the_closed_forms():
    """Mean interruptions within 4 standard errors of N·E[T]/MTBF (a Poisson count), and the
    mean wall time within 1% of Daly's E[T] = (W/I)·M·e^{R/M}·(e^{(I+δ)/M} - 1)."""
    spec = llama3_run()
    runs = samples(spec, range(24))
    expected = runs[0].expected_interruptions
    mean = statistics.fmean(r.interruptions for r in runs)
    assert abs(mean - expected) < 4 * math.sqrt(expected / len(runs))
    wall = statistics.fmean(r.wall_time_s for r in runs)
    assert wall == pytest.approx(expected_wall_time(spec), rel=0.01)


def test_the_young_daly_interval_wastes_least():
    """Sampled: checkpointing 3x more or 3x less often than sqrt(2·δ·M) costs more time."""
    base = llama3_run(work_days=20)
    optimum = base.interval_s
    assert optimum == pytest.approx(math.sqrt(2 * base.checkpoint_write_s * base.fleet_mtbf_s))

    def mean_wall(interval: float) -> float:
        spec = llama3_run(work_days=20, interval=interval)
        return statistics.fmean(r.wall_time_s for r in samples(spec, range(16)))

    best = mean_wall(optimum)
    assert best < mean_wall(optimum / 3)
    assert best < mean_wall(optimum * 3)


def test_wall_time_is_work_plus_losses():
    out = simulate_run(llama3_run(), np.random.default_rng(7))
    spec = llama3_run()
    assert out.wall_time_s == pytest.approx(
        spec.work_s + out.lost_work_s + out.restart_s + out.checkpoint_stall_s, rel=1e-12)
    assert 0 < out.restart_s <= out.interruptions * spec.restart_s  # some cut short
    assert out.checkpoints >= spec.work_s // spec.interval_s


def test_determinism_by_seed():
    spec = llama3_run()
    a, b = samples(spec, range(3)), samples(spec, range(3))
    assert a == b
    assert len({r.interruptions for r in a} | {r.wall_time_s for r in a}) > 2


def test_without_failures_only_checkpoints_cost_time():
    spec = RunSpec(work_s=10 * DAY, accelerators=1024, mtbf_per_accelerator_s=H100_MTBF,
                   restart_s=600.0, checkpoint_write_s=2.0, interval_s=1000.0, enabled=False)
    out = simulate_run(spec, np.random.default_rng(1))
    assert out.interruptions == 0
    assert out.wall_time_s == pytest.approx(10 * DAY + (10 * DAY // 1000) * 2.0)
    assert out.expected_wall_time_s == pytest.approx(out.wall_time_s)


def test_asynchronous_checkpoints_do_not_stall():
    spec = llama3_run(blocking=False)
    runs = samples(spec, range(12))
    assert all(r.checkpoint_stall_s == 0 for r in runs)
    mean = statistics.fmean(r.interruptions for r in runs)
    assert mean == pytest.approx(runs[0].expected_interruptions, rel=0.08)


def test_interval_resolution():
    assert resolve_interval("auto", 2.0, 10000.0, 1.0, enabled=True, blocking=True) == \
        pytest.approx(200.0)
    assert resolve_interval("auto", 2.0, 10000.0, 1.0, enabled=False, blocking=True) is None
    assert resolve_interval(0.5, 2.0, 10000.0, 1.0, enabled=True, blocking=True) == 1.0
    assert resolve_interval(1.5, 2.0, 10000.0, 1.0, enabled=True, blocking=False) == 2.0


def test_a_run_that_cannot_finish_says_so():
    spec = RunSpec(work_s=365 * DAY, accelerators=100_000, mtbf_per_accelerator_s=1000 * HOUR,
                   restart_s=3600.0, checkpoint_write_s=60.0, interval_s=None)
    with pytest.raises(NoProgress, match="checkpoint more often"):
        simulate_run(spec, np.random.default_rng(0))
