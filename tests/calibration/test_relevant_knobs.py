"""Which knobs a calibration's runs can depend on (simulator.calibration.forward._relevant):
the GEMM knobs that are not a precision's large-GEMM fraction concern every run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from simulator.calibration.forward import _relevant


def _knob(name: str) -> SimpleNamespace:
    return SimpleNamespace(name=name)


def _bf16_serving_run() -> SimpleNamespace:
    return SimpleNamespace(workload=SimpleNamespace(precision=SimpleNamespace(value="bf16")),
                           kind="inference", model=SimpleNamespace(moe=None),
                           cluster=SimpleNamespace(accelerators=1),
                           hardware=SimpleNamespace(devices_per_node=SimpleNamespace(value=8)))


@pytest.mark.parametrize(("name", "relevant"), [
    ("gemm.half_size", True),   # the size curve prices every GEMM (it used to be read as a
    ("gemm.stream", True),      # precision named "half_size" and dropped)
    ("gemm.bf16", True),
    ("gemm.fp8", False),        # no run uses fp8
    ("attention.backward", False),
    ("scale_up_collective", False),  # one device
])
def test_which_knobs_a_bf16_single_device_serving_run_can_depend_on(name, relevant):
    assert _relevant(_knob(name), [_bf16_serving_run()]) is relevant
