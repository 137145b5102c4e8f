"""A job's failure rate from its parts: device causes scale with its accelerators, host causes
with the hosts it occupies; the scenario's own MTBFs replace the profile's; the H100 figures
against the Llama 3 snapshot they come from and the RSC clusters they do not."""

from __future__ import annotations

import math

import pytest

from simulator.engine.training.failures import fleet_mtbf
from simulator.engine.training.run import run_spec
from simulator.loading import load_scenario
from simulator.profiles.catalog import load_hardware
from tests.conftest import ROOT, assert_clean_error, edited_h100_profile, run_cli

HOUR, DAY_S = 3600.0, 86400.0
T = ROOT / "scenarios" / "llama3.1-8b-h100-training.yaml"  # data parallel: any power of two


def job_mtbf_hours(accelerators: int, *overrides: str) -> tuple[float, int]:
    """(the job's MTBF in hours, the hosts it occupies) for the 8B training scenario."""
    scenario = load_scenario(T, [f"cluster.accelerators={accelerators}", *overrides])
    spec = run_spec(scenario, work_s=DAY_S, step_s=1.0)
    return spec.fleet_mtbf_s / HOUR, spec.nodes


@pytest.mark.parametrize(("accelerators", "nodes"), [(4, 1), (8, 1), (16, 2), (32, 4)])
def test_a_jobs_mtbf_adds_its_devices_and_its_hosts(accelerators, nodes):
    """H100: 58,000 h per GPU, 50,100 h per 8-GPU host. 4 GPUs: 1 / (4/58,000 + 1/50,100)
    = 11,245 h; 8 GPUs: 1 / (8/58,000 + 1/50,100) = 6,333 h (the host is whole either way)."""
    hours, got_nodes = job_mtbf_hours(accelerators)
    assert got_nodes == nodes
    assert hours == pytest.approx(1 / (accelerators / 58000 + nodes / 50100))
    by_hand = {4: 11245.3, 8: 6333.5}
    if accelerators in by_hand:
        assert hours == pytest.approx(by_hand[accelerators], abs=0.1)


def test_device_causes_scale_with_accelerators():
    """With only device causes (the scenario's per-accelerator MTBF alone), twice the GPUs
    fail twice as often, also within one host: 4 and 8 GPUs at 10,000 h: 2,500 h and 1,250 h."""
    only_device = "workload.failures.mtbf_per_accelerator_hours=10000"
    four, _ = job_mtbf_hours(4, only_device)
    eight, _ = job_mtbf_hours(8, only_device)
    sixteen, _ = job_mtbf_hours(16, only_device)
    assert (four, eight, sixteen) == pytest.approx((2500.0, 1250.0, 625.0))


def test_host_causes_scale_with_hosts():
    """With only host causes, 4 and 8 GPUs share one host and fail alike (1,000 h); 16 GPUs
    hold two hosts and fail twice as often (500 h)."""
    only_host = "workload.failures.mtbf_per_node_hours=1000"
    assert job_mtbf_hours(4, only_host)[0] == pytest.approx(1000.0)
    assert job_mtbf_hours(8, only_host)[0] == pytest.approx(1000.0)
    assert job_mtbf_hours(16, only_host)[0] == pytest.approx(500.0)


def test_the_scenarios_mtbfs_replace_the_profiles_together():
    """Both given: 1 / (16/10,000 + 2/1,000) = 277.8 h; the profile's rates play no part."""
    hours, _ = job_mtbf_hours(16, "workload.failures.mtbf_per_accelerator_hours=10000",
                              "workload.failures.mtbf_per_node_hours=1000")
    assert hours == pytest.approx(1 / (16 / 10000 + 2 / 1000))
    assert hours == pytest.approx(277.78, abs=0.01)


def test_a_host_of_four_gpus_counts_as_a_node():
    """GB200 NVL72: 4 GPUs per compute tray, so 8 GPUs hold 2 hosts:
    1 / (8/58,000 + 2/50,100) = 5,622 h, less than an 8-GPU H100 host's 6,333 h."""
    scenario = load_scenario(T, ["hardware=gb200-nvl72"])
    spec = run_spec(scenario, work_s=DAY_S, step_s=1.0)
    assert spec.nodes == 2
    assert spec.fleet_mtbf_s / HOUR == pytest.approx(1 / (8 / 58000 + 2 / 50100))
    assert spec.fleet_mtbf_s / HOUR == pytest.approx(5622.0, abs=1.0)


def test_without_per_node_figure_the_device_mtbf_is_every_cause():
    """A profile without mtbf_per_node: the fleet fails accelerators / MTBF times an hour."""
    assert fleet_mtbf(accelerators=1000, mtbf_per_accelerator_s=50_000.0) == pytest.approx(50.0)
    assert fleet_mtbf(accelerators=1000, mtbf_per_accelerator_s=math.inf,
                      nodes=10, mtbf_per_node_s=100.0) == pytest.approx(10.0)


def test_the_h100_figures_reproduce_the_llama3_snapshot_they_come_from():
    """Llama 3 Table 5: 366 device, network and software causes and 53 host causes in 54
    days (1,296 h) on 16,384 GPUs in 2,048 hosts. 16,384 x 1,296 / 366 = 58,015 GPU-hours,
    2,048 x 1,296 / 53 = 50,079 node-hours; the profile rounds to 58,000 and 50,100, and
    the job's MTBF is the measured 1,296 h / 419 = 3.093 h within 0.05%."""
    rel = load_hardware("h100-sxm").reliability
    assert rel.mtbf_per_node is not None
    assert rel.mtbf_per_accelerator.value / HOUR == pytest.approx(16384 * 1296 / 366, rel=1e-3)
    assert rel.mtbf_per_node.value / HOUR == pytest.approx(2048 * 1296 / 53, rel=1e-3)
    job = fleet_mtbf(accelerators=16384, mtbf_per_accelerator_s=rel.mtbf_per_accelerator.value,
                     nodes=2048, mtbf_per_node_s=rel.mtbf_per_node.value)
    assert job / HOUR == pytest.approx(1296 / 419, rel=5e-4)


def test_a_1024_gpu_job_lies_between_the_rsc_clusters():
    """Cross-check on data the figures were not taken from (Kokolis et al. 2024, "Revisiting
    Reliability in Large-Scale ML Research Clusters", A100 clusters of 8-GPU hosts; the rates
    recalled, not re-read): RSC-1 fails 6.50 and RSC-2 2.34 times per 1,000 node-days, so a
    1,024-GPU job (128 hosts) fails every 24 / (0.128 x 6.50) = 28.8 h and 24 / (0.128 x 2.34)
    = 80.1 h. The H100 figures give 1 / (1,024/58,000 + 128/50,100) = 49.5 h, in between:
    H100 at Llama 3's scale failed more often than RSC-2's A100s, less often than RSC-1's."""
    rel = load_hardware("h100-sxm").reliability
    assert rel.mtbf_per_node is not None
    job = fleet_mtbf(accelerators=1024, mtbf_per_accelerator_s=rel.mtbf_per_accelerator.value,
                     nodes=128, mtbf_per_node_s=rel.mtbf_per_node.value) / HOUR
    assert job == pytest.approx(49.48, abs=0.01)
    rsc1, rsc2 = 24 / (0.128 * 6.50), 24 / (0.128 * 2.34)
    assert (rsc1, rsc2) == pytest.approx((28.85, 80.13), abs=0.01)
    assert rsc1 < job < rsc2


@pytest.mark.parametrize(("assignment", "fragment"), [
    ("workload.failures.mtbf_per_node_hours=0",
     "workload.failures.mtbf_per_node_hours: must be greater than 0"),
    ("workload.failures.mtbf_per_node_hours=often",
     "workload.failures.mtbf_per_node_hours"),
    # rates beyond floating point: 1 host / 3.6e-317 s is inf, the job's MTBF 0 s
    ("workload.failures.mtbf_per_node_hours=1e-320",
     "failures would interrupt the run so often that it would never finish"),
])
def test_a_bad_scenario_node_mtbf_is_refused(assignment, fragment):
    assert_clean_error(run_cli("run", str(T), "--quiet", "--set", assignment), fragment)


@pytest.mark.parametrize(("value", "fragment"), [
    ("0 h", "reliability.mtbf_per_node.value: must be greater than 0"),
    ("50100 GB", "reliability.mtbf_per_node.value"),
])
def test_a_bad_profile_node_mtbf_is_refused(tmp_path, value, fragment):
    bad = edited_h100_profile(tmp_path, "mtbf_per_node: {value: 50100 h,",
                              f"mtbf_per_node: {{value: {value},")
    assert_clean_error(run_cli("validate", str(bad)), fragment)
