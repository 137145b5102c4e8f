"""A serving stack's host time, fitted and written to a stack file of its own; the
calibrated profile's record loads back through the schema."""

from __future__ import annotations

import math

import pytest
import yaml

from simulator.calibration.calibrate import FITTED, calibrate
from simulator.calibration.forward import build
from simulator.calibration.measurements import Measurement
from simulator.calibration.profile_out import write_outputs
from simulator.loading import scenario_from_dict
from simulator.profiles.catalog import load_hardware
from simulator.simulate import simulate
from simulator.validation.runner import read_metric

SCENARIO = {
    "name": "stack calibration", "hardware": "h100-sxm", "cluster": {"accelerators": 1},
    "model": "llama3.1-8b", "seed": 3,
    "workload": {"kind": "inference", "precision": "bf16", "engine": "vllm-0.5",
                 "parallelism": {"tp": 1},
                 "arrivals": {"process": "closed", "concurrency": 4, "requests": 24},
                 "prompt_tokens": 500, "output_tokens": 100},
}
TRUE_FIXED = 7.4e-3  # vllm-0.5's schedule.fixed is 3.7 ms: twice that on "our" host
NAME = "stack.vllm-0.5.schedule_fixed"


def test_a_stack_host_cost_is_recovered_and_written(tmp_path):
    scenario_file = tmp_path / "serve.yaml"
    scenario_file.write_text(yaml.safe_dump(SCENARIO))
    truth = scenario_from_dict(SCENARIO, base_dir=tmp_path)
    engine = truth.workload.engine.model_dump(mode="json")
    engine["host"]["schedule"]["fixed"]["value"] = TRUE_FIXED
    measured = simulate(scenario_from_dict(
        {**SCENARIO, "workload": {**SCENARIO["workload"], "engine": engine}}, base_dir=tmp_path))
    run = Measurement(id="c4", scenario_file=scenario_file, overrides=(), settings={},
                      figures={"inference.tpot_s.mean": read_metric(measured,
                                                                    "inference.tpot_s.mean")})
    forward = build([run], None, None)
    result = calibrate(forward, names=[NAME], noise=0.02)
    (fit,) = result.parameters
    assert fit.status == FITTED
    # one figure, one parameter: the fit reproduces the figure, so the value is the truth
    # up to the figure's sensitivity to it (well inside the stated uncertainty)
    assert abs(math.log(fit.value / TRUE_FIXED)) < max(fit.relative_sd, 0.05)
    out = tmp_path / "mine.yaml"
    written = write_outputs(result, forward, out, new_id="h100-mine", command="test",
                            measurements_file=scenario_file)
    assert [p.name for p in written] == ["mine.yaml", "mine.vllm-0.5-stack.yaml"]
    stack = yaml.safe_load(written[1].read_text())
    assert stack["id"] == "vllm-0.5-calibrated"
    assert stack["host"]["schedule"]["fixed"]["estimate"] is True
    assert stack["host"]["frontend"]["fixed"]["value"] == "4.2 ms"  # untouched numbers kept
    # the outputs load as profiles and run: the stack by path, the record validated
    profile = load_hardware(out)
    assert profile.id == "h100-mine" and profile.calibration is not None
    assert profile.calibration.parameters[0].name == NAME
    assert profile.calibration.error_after.median < profile.calibration.error_before.median
    again = simulate(scenario_from_dict(
        {**SCENARIO, "hardware": str(out),
         "workload": {**SCENARIO["workload"], "engine": str(written[1])}}, base_dir=tmp_path))
    assert read_metric(again, "inference.tpot_s.mean") == pytest.approx(
        run.figures["inference.tpot_s.mean"], rel=0.03)


def test_a_stacks_fittable_host_costs_are_its_positive_ones():
    from simulator.calibration.parameters import stack_knobs
    from simulator.profiles.catalog import load_stack
    # vllm-0.5: scheduling 3.7 ms + 20 us per sequence; output zero (not fittable: no log);
    # the API server 4.2 ms + 25 us per sequence
    knobs = stack_knobs(load_stack("vllm-0.5").model_dump(mode="json"))
    assert [(k.name, k.prior) for k in knobs] == [
        ("stack.vllm-0.5.schedule_fixed", pytest.approx(3.7e-3)),
        ("stack.vllm-0.5.schedule_per_sequence", pytest.approx(20e-6)),
        ("stack.vllm-0.5.frontend_fixed", pytest.approx(4.2e-3)),
        ("stack.vllm-0.5.frontend_per_sequence", pytest.approx(25e-6))]
    # a stack without a frontend part has no API-server knobs
    assert not any("frontend" in k.name
                   for k in stack_knobs(load_stack("tgi").model_dump(mode="json")))
