"""Expert load imbalance: the busiest EP rank against hand arithmetic, and the scenario
fields that set it (physics_facts sec. 3: TensorRT-LLM's EP32 study, Megatron-Bridge's
forced-balanced benchmark routing)."""

from __future__ import annotations

import math
import textwrap
from statistics import NormalDist

import pytest

from simulator import load_model
from simulator.perf.moe_balance import (
    expected_max_normal,
    load_spread,
    moe_imbalance,
    rank_imbalance,
)
from simulator.profiles.moe_routing import LoadBalancer, MoeRouting
from tests.conftest import assert_clean_error, run_cli

_DS = load_model("deepseek-v3").moe
assert _DS is not None
# the spreads the model profile carries, per balancer (rho; forced routing: 0)
NONE, EPLB, FORCED = (load_spread(_DS, b) for b in LoadBalancer)


def test_the_spreads_come_from_the_model_profile_with_sources():
    assert _DS is not None
    assert NONE == _DS.load_spread.value == pytest.approx(0.38443)
    assert EPLB == _DS.eplb_load_spread.value == pytest.approx(0.026792)
    assert FORCED == 0.0
    assert "TensorRT-LLM" in _DS.load_spread.source and _DS.load_spread.estimate
    # a model without its own measurement carries DeepSeek-R1's over
    mixtral = load_model("mixtral-8x7b").moe
    assert mixtral is not None and mixtral.load_spread.value == NONE
    assert "carried over" in mixtral.load_spread.source


def test_the_study_point_is_reproduced():
    # DeepSeek-R1 (256 experts, top-8) at EP32: (max - mean)/mean = 1.564 without a balancer,
    # 0.109 with EPLB
    assert rank_imbalance(NONE, 256, 8, 32) == pytest.approx(2.564)
    assert rank_imbalance(EPLB, 256, 8, 32) == pytest.approx(1.109)


def test_imbalance_grows_with_ep_as_ranks_pool_fewer_experts():
    # EP8: z(8) = Phi^-1(7.625/8.25) = 1.433; rho = 1.564/(z(32)·sqrt(31)·sqrt(1/8))
    z8 = NormalDist().inv_cdf(7.625 / 8.25)
    z32 = NormalDist().inv_cdf(31.625 / 32.25)
    rho = 1.564 / (z32 * math.sqrt(31) * math.sqrt(32 / 256))
    assert expected_max_normal(8) == pytest.approx(z8)
    assert rank_imbalance(NONE, 256, 8, 8) == pytest.approx(1 + z8 * rho * math.sqrt(31)
                                                            * math.sqrt(8 / 256))  # 1.54
    assert rank_imbalance(NONE, 256, 8, 1) == 1.0  # one rank holds every expert
    assert rank_imbalance(FORCED, 256, 8, 64) == 1.0


def test_imbalance_is_capped_by_all_copies_on_one_rank():
    # 8 experts top-2: at most every token's 2 copies on one rank of... E/k = 4 times the mean
    assert rank_imbalance(NONE, 8, 2, 8) <= 4.0
    assert rank_imbalance(NONE, 4, 1, 2) <= 2.0  # at most everything on one of 2 ranks


def test_an_explicit_imbalance_wins_and_dense_models_have_none():
    ds = load_model("deepseek-v3")
    none, forced = LoadBalancer.NONE, LoadBalancer.FORCED
    assert moe_imbalance(MoeRouting(imbalance=1.3), ds, 32, none) == 1.3
    assert moe_imbalance(MoeRouting(), ds, 32, forced) == 1.0
    assert moe_imbalance(MoeRouting(load_balancer=LoadBalancer.EPLB), ds, 32,
                         forced) == pytest.approx(1.109)
    assert moe_imbalance(MoeRouting(imbalance=2.0), load_model("llama3.1-8b"), 8, none) == 1.0


def _training(tmp_path, moe: str):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: t
        hardware: h100-sxm
        cluster: {{accelerators: 16}}
        model: mixtral-8x7b
        workload:
          kind: training
          seq_len: 4096
          global_batch_size: 64
          recompute: full
          parallelism: {{tp: 2, ep: 8}}
          moe: {moe}
        """))
    return path


@pytest.mark.parametrize(("moe", "fragments"), [
    ("{imbalance: 0.5}", ["workload.moe.imbalance", "must be at least 1.0 (got 0.5)"]),
    ("{load_balancer: round_robin}", ["workload.moe.load_balancer", "none", "eplb", "forced"]),
])
def test_bad_moe_fields_are_one_clear_error(tmp_path, moe, fragments):
    assert_clean_error(run_cli("validate", str(_training(tmp_path, moe))), *fragments)


def test_training_imbalance_slows_the_step(tmp_path):
    import json
    times = []
    for moe in ("{load_balancer: forced}", "{imbalance: 1.5}"):
        result = run_cli("run", "--quiet", "--format", "json", str(_training(tmp_path, moe)))
        assert result.code == 0, result.err
        times.append(json.loads(result.out)["training"]["step_time_s"])
    assert times[1] > times[0] * 1.05


def test_serving_defaults_to_the_routers_own_imbalance(tmp_path):
    import json
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: t
        hardware: gb200-nvl72
        cluster: {accelerators: 8}
        model: deepseek-v3
        workload:
          kind: inference
          precision: fp8
          parallelism: {tp: 8, ep: 8}
          arrivals: {process: offline, requests: 16}
          prompt_tokens: 1024
          output_tokens: 16
        """))
    durations = {}
    for balancer in ("forced", "none", None):
        extra = ["--set", f"workload.moe.load_balancer={balancer}"] if balancer else []
        result = run_cli("run", "--quiet", "--format", "json", *extra, str(path))
        assert result.code == 0, result.err
        durations[balancer] = json.loads(result.out)["inference"]["duration_s"]
    assert durations[None] == durations["none"]  # the default
    assert durations["none"] > durations["forced"] * 1.02  # the busiest rank: 1.54x rows


def test_a_domain_limit_needs_the_deepep_dispatcher(tmp_path):
    path = _training(tmp_path, "{max_domains_per_token: 4}")
    assert_clean_error(run_cli("validate", str(path)), "workload.moe",
                       "max_domains_per_token needs dispatcher: deepep")


def test_a_load_spread_outside_zero_to_one_is_one_clear_error(tmp_path):
    from tests.conftest import ROOT
    text = (ROOT / "model_profiles" / "deepseek-v3.yaml").read_text()
    bad = text.replace("load_spread: {value: 0.38443,", "load_spread: {value: 1.5,", 1)
    assert bad != text
    (tmp_path / "m.yaml").write_text(bad)
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent("""\
        name: t
        hardware: gb200-nvl72
        cluster: {accelerators: 8}
        model: m.yaml
        workload:
          kind: inference
          precision: fp8
          parallelism: {tp: 8, ep: 8}
          arrivals: {process: offline, requests: 4}
          prompt_tokens: 100
          output_tokens: 10
        """))
    assert_clean_error(run_cli("validate", str(path)), "moe.load_spread.value", "1")
