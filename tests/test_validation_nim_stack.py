"""I16's stack (validation/stacks/nim-trtllm.yaml): the shipped trtllm stack with its host
work in series, as TensorRT-LLM's C++ executor (NIM 1.8's TensorRT engines) runs it."""

from __future__ import annotations

import pytest

from simulator.profiles.catalog import load_stack
from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.scenario import Scenario
from simulator.profiles.serving_stack import ServingStack
from simulator.simulate import simulate
from simulator.validation import load_cases
from tests.conftest import ROOT

NIM_STACK = ROOT / "validation" / "stacks" / "nim-trtllm.yaml"


def _host_figures(stack: ServingStack) -> dict:
    """The stack's host parts as plain data, without the overlap flags or sources."""
    host = stack.host.model_dump(mode="python")
    for part in ("schedule", "output"):
        host[part] = {k: v["value"] for k, v in host[part].items() if k != "overlapped"}
    host["scheduler_steps"] = host["scheduler_steps"]["value"]
    host["launch"] = host["launch"]["value"]
    return host


def test_the_nim_stack_is_trtllm_with_its_host_work_in_series():
    """A copy of the shipped stack: only the two overlap flags differ, so a change to the
    trtllm stack's assumed host figures must be carried into the copy (or this fails)."""
    nim, trtllm = load_stack(str(NIM_STACK)), load_stack("trtllm")
    assert nim.id == "nim-trtllm"
    assert not nim.host.schedule.overlapped.value and not nim.host.output.overlapped.value
    assert trtllm.host.schedule.overlapped.value and trtllm.host.output.overlapped.value
    assert _host_figures(nim) == _host_figures(trtllm)
    for field in ("admission", "kv_reservation", "activation_quant", "quantized_head",
                  "moe_exchange"):
        assert getattr(nim, field) == getattr(trtllm, field), field
    # the same capture list without padding; the cap at the max batch is the PyTorch
    # backend's filter (moot without padding), which NIM's C++ runtime does not run
    assert nim.graphs.batch_sizes == trtllm.graphs.batch_sizes
    assert nim.graphs.padding == trtllm.graphs.padding and not nim.graphs.padding.value
    assert nim.graphs.capped_at_max_batch is None and trtllm.graphs.capped_at_max_batch.value


def test_one_client_pays_the_host_work_of_every_decode_step():
    """At one client every decode step has one sequence and one new token, so each gains
    the stack's host work in series: schedule 1 ms + 5 us + 0.01 us, output 1 ms + 10 us,
    2.01501 ms in all; ITL ((e2e - TTFT) / 499 steps) rises by exactly that."""
    case = next(c for c in load_cases(ROOT / "validation") if c.case.id == "I16-c1-itl")
    scenario = case.scenario
    assert isinstance(scenario.workload, InferenceWorkload)
    assert scenario.workload.engine.id == "nim-trtllm"
    overlapped = scenario.model_copy(update={"workload": scenario.workload.model_copy(
        update={"engine": load_stack("trtllm")})})
    in_series, hidden = (_mean_itl(s) for s in (scenario, overlapped))
    assert in_series - hidden == pytest.approx(1e-3 + 5e-6 + 0.01e-6 + 1e-3 + 10e-6, rel=1e-3)


def _mean_itl(scenario: Scenario) -> float:
    """The run's mean TPOT (AIPerf's ITL), seconds."""
    inference = simulate(scenario).inference
    assert inference is not None and inference.tpot_s.mean is not None
    return inference.tpot_s.mean
