"""The fleet's peak figures: a training run's model FLOPs per token are the MFU's, so the
ideal tokens/s times the MFU is the run's tokens/s; serving's are 2·N_active."""

from __future__ import annotations

import pytest

from simulator.loading import load_scenario
from simulator.profiles.training import TrainingWorkload
from simulator.simulate import peak_report, simulate
from tests.conftest import ROOT

SCENARIOS = ROOT / "scenarios"


def test_gpt3_training_counts_megatrons_model_flops():
    """Korthikanti et al.'s 72·l·h²·(1 + s/6h + V/12lh) per token, l = 96, h = 12,288,
    s = 2,048, V = 50,257: 72 x 96 x 12,288² x (1 + 0.027778 + 0.003551) = 1.0776e12
    (the profile's biases, norms and learned positions add under 0.1%)."""
    scenario = load_scenario(SCENARIOS / "gpt3-175b-gb200-training.yaml")
    layers, h, s, v = 96, 12_288, 2_048, 50_257
    megatron = 72 * layers * h**2 * (1 + s / (6 * h) + v / (12 * layers * h))
    peak = peak_report(scenario)
    assert peak.model_flops_per_token == pytest.approx(megatron, rel=1e-3)
    assert peak.model_flops_per_token > 6 * scenario.model.params_active  # the scores
    gb200 = scenario.hardware.peak(scenario.workload.precision)
    assert peak.ideal_tokens_per_s == pytest.approx(576 * gb200 / peak.model_flops_per_token)


def test_deepseek_v3_training_counts_its_mtp_module():
    """The module adds 10.7 GFLOP to the model's 281.2 GFLOP a token at 4k (+3.8%); turning
    it off takes them out of the peak too."""
    path = SCENARIOS / "deepseek-v3-h800-training.yaml"
    with_mtp = peak_report(load_scenario(path)).model_flops_per_token
    without = peak_report(load_scenario(path, ["workload.mtp_layers=0"])).model_flops_per_token
    assert without == pytest.approx(281.2e9, rel=1e-3)
    assert with_mtp - without == pytest.approx(10.7e9, rel=5e-3)


def test_serving_counts_two_flops_per_active_parameter():
    scenario = load_scenario(SCENARIOS / "llama3.1-8b-h100-serving.yaml")
    assert peak_report(scenario).model_flops_per_token == 2.0 * scenario.model.params_active


def test_ideal_tokens_times_mfu_is_the_runs_tokens_per_second():
    scenario = load_scenario(SCENARIOS / "llama3.1-8b-h100-training.yaml")
    w = scenario.workload
    assert isinstance(w, TrainingWorkload)
    result = simulate(scenario)
    assert result.training is not None
    tokens_per_s = w.tokens_per_step / result.training.step_time_s
    assert result.peak.ideal_tokens_per_s * result.training.mfu == pytest.approx(
        tokens_per_s, rel=1e-9)
