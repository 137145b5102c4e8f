"""Full recomputation of only some layers (``workload.recompute_layers``, Megatron-LM's
``--recompute-method block --recompute-num-layers``): the backward's recomputed work, the
saved activations, and the checks."""

from __future__ import annotations

import pytest

from simulator.engine.training.planner import build_plan
from simulator.loading import load_scenario
from simulator.perf.footprint import (
    resolved_memory_options,
    saved_activation_bytes,
    training_footprint,
    with_count,
)
from simulator.perf.layouts import training_layout
from simulator.perf.memory import activation_bytes_per_layer
from simulator.perf.roofline_view import roofline
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
    (["workload.recompute_layers=some"], "workload.recompute_layers"),
    (["workload.recompute=selective", "workload.recompute_layers=fit"],
     "recompute_layers needs recompute: full"),
])
def test_bad_recompute_layers_is_one_clean_error(assignments, fragment):
    args = [a for assignment in ["workload.recompute=full", *assignments]
            for a in ("--set", assignment)]
    assert_clean_error(run_cli("run", T, "--quiet", *args), fragment)


def _fits(scenario, workload) -> bool:
    return training_footprint(scenario.model_copy(update={"workload": workload})).fits


def _fitted(*overrides: str):
    return resolved_memory_options(_scenario("workload.recompute_layers=fit", *overrides))


def test_fit_recomputes_the_fewest_layers_that_fit():
    """Llama 3.1 8B at 8,192 tokens on one H100's share: the chosen count fits and one
    layer fewer per chunk does not (memory falls as more layers are recomputed)."""
    scenario = _fitted()
    w = scenario.workload
    count = w.recomputed_layers
    assert w.recompute.value == "full" and count is not None and 0 < count < 32
    assert _fits(scenario, w)
    assert not _fits(scenario, with_count(w, count - 1, 32))


def test_fit_is_what_the_step_and_the_memory_price():
    """A scenario saying ``fit`` is priced (step, memory, roofline view) as the same
    scenario with the chosen count."""
    fit = _scenario("workload.recompute_layers=fit")
    count = resolved_memory_options(fit).workload.recomputed_layers
    explicit = _scenario(f"workload.recompute_layers={count}")
    assert training_footprint(fit).total == training_footprint(explicit).total
    assert any(f"first {count} layers" in note for note in training_footprint(fit).notes)
    assert build_plan(fit).step.stages[0].chunks[0].backward.flops == \
        build_plan(explicit).step.stages[0].chunks[0].backward.flops
    view, explicit_view = roofline(fit), roofline(explicit)
    assert [(r.name, r.time_s) for r in view.rows] == \
        [(r.name, r.time_s) for r in explicit_view.rows]
    backward = "backward (one microbatch)"  # fewer layers recomputed than every one
    assert view.total(backward) < roofline(_scenario()).total(backward)
    with pytest.raises(ValueError, match="resolved against the device memory"):
        _ = fit.workload.recomputed_layers


def test_fit_recomputes_nothing_when_everything_fits():
    """1,024-token sequences keep every activation: no recomputation at all."""
    w = _fitted("workload.seq_len=1024").workload
    assert (w.recompute.value, w.recomputed_layers) == ("none", None)


def test_fit_falls_back_to_every_layer_and_the_run_says_it_does_not_fit():
    """Micro-batch 16 does not fit even recomputing all 32 layers: full recomputation of
    every layer, and the run is refused with the memory verdict."""
    scenario = _fitted("workload.micro_batch_size=16")
    w = scenario.workload
    assert (w.recompute.value, w.recomputed_layers) == ("full", None)
    assert not training_footprint(scenario).fits
    result = run_cli("run", T, "--quiet", "--set", "workload.recompute=full", "--set",
                     "workload.recompute_layers=fit", "--set", "workload.micro_batch_size=16")
    assert_clean_error(result, "does not fit")


def test_with_count_spells_none_some_and_every_layer():
    w = _scenario().workload
    assert (with_count(w, 0, 32).recompute.value, with_count(w, 0, 32).recompute_layers) == \
        ("none", None)
    assert with_count(w, 5, 32).recompute_layers == 5
    assert with_count(w, 32, 32).recompute_layers is None
    assert with_count(w, 32, 32).recompute.value == "full"
