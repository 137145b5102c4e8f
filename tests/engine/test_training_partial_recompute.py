"""Full recomputation of only some layers (``workload.recompute_layers``, Megatron-LM's
``--recompute-method block --recompute-num-layers``): the backward's recomputed work, the
saved activations, and the checks."""

from __future__ import annotations

import pytest

from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.perf.footprint import saved_activation_bytes, training_footprint
from simulator.perf.layouts import training_layout
from simulator.perf.memory import activation_bytes_per_layer
from simulator.perf.transformer import RECOMPUTE_PREFIX, training_ops
from tests.conftest import ROOT, assert_clean_error, run_cli

T = "scenarios/llama3.1-8b-h100-training.yaml"  # Llama 3.1 8B (32 layers), TP1 PP1


def _scenario(*overrides: str):
    return load_scenario(ROOT / T, ["workload.recompute=full", *overrides])


def _recomputed_flops(scenario) -> float:
    w = scenario.workload
    ops = training_ops(scenario.model, training_layout(w), w.seq_len,
                       w.micro_batch_size, w.precision, w.recompute.value,
                       recompute_layers=w.recompute_layers)
    return sum(op.flops for op in ops.backward  # an op's flops count all its layers
               if op.name.startswith(RECOMPUTE_PREFIX))


def test_the_first_layers_are_recomputed_and_the_rest_not():
    """8 of 32 identical layers: a quarter of full recomputation's forward work again."""
    every = _recomputed_flops(_scenario())
    quarter = _recomputed_flops(_scenario("workload.recompute_layers=8"))
    assert every > 0
    assert quarter == pytest.approx(every / 4, rel=1e-12)
    assert _recomputed_flops(_scenario("workload.recompute_layers=32")) == pytest.approx(every)
    assert _recomputed_flops(_scenario("workload.recompute_layers=99")) == pytest.approx(every)


def test_the_backward_pass_shrinks_by_the_layers_not_recomputed():
    full = build_plan(_scenario()).step.stages[0].chunks[0].backward
    part = build_plan(_scenario("workload.recompute_layers=8")).step.stages[0].chunks[0].backward
    assert part.recompute_flops == pytest.approx(full.recompute_flops / 4, rel=1e-12)
    assert part.flops == pytest.approx(full.flops - 0.75 * full.recompute_flops, rel=1e-12)


def test_the_layers_not_recomputed_keep_all_their_activations():
    """8 layers keep their input only, 24 keep everything."""
    scenario = _scenario("workload.recompute_layers=8")
    w, model = scenario.workload, scenario.model

    def per_layer(recompute: str) -> float:
        return activation_bytes_per_layer(model, w.seq_len, w.micro_batch_size, 1, False,
                                          recompute, 1, gemm_input_bytes=2.0)

    assert per_layer("full") < per_layer("none")
    assert saved_activation_bytes(model, w, 32) == pytest.approx(
        8 * per_layer("full") + 24 * per_layer("none"))
    # two chunks of a stage each recompute their own first 8 (Megatron's block method)
    assert saved_activation_bytes(model, w, 32, chunks=2) == pytest.approx(
        16 * per_layer("full") + 16 * per_layer("none"))
    footprint = training_footprint(scenario)
    assert any("first 8 layers" in note for note in footprint.notes)
    assert footprint.parts["activations"] > training_footprint(_scenario()).parts["activations"]


@pytest.mark.parametrize(("assignments", "fragment"), [
    (["workload.recompute=selective", "workload.recompute_layers=8"],
     "recompute_layers needs recompute: full"),
    (["workload.recompute_layers=0"], "workload.recompute_layers"),
])
def test_bad_recompute_layers_is_one_clean_error(assignments, fragment):
    args = [a for assignment in ["workload.recompute=full", *assignments]
            for a in ("--set", assignment)]
    assert_clean_error(run_cli("run", T, "--quiet", *args), fragment)
