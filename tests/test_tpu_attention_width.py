"""Attention on a systolic matrix unit fills min(1, head_dim / width) of it.

A profile's ``compute.matrix_unit_width`` (Trillium's MXU 256 wide, v5e's and v5p's 128:
jax 0.10.2 ``tpu_info.py``, ``mxu_column_size``) scales an attention core's large-size
fraction by the share of the array its head-dim-wide matmuls fill. Hand-derived: gpt-oss's
head dim 64 on v6e: 0.85 x 64/256 = 0.2125; Llama's 128 on v6e: 0.85 x 128/256 = 0.425 (the
value the profile held as a constant before); Llama's 128 on v5e: 0.85 x 1; a 256-wide head
on v6e: 0.85. GPUs set no width: no scaling.
"""

from __future__ import annotations

import pytest

from simulator import load_hardware, load_model
from simulator.perf.attention_ops import attention_specs
from simulator.perf.matrix_fill import attention_fill, matmul_fill
from simulator.perf.ops import Layout, OpKind
from simulator.perf.opspec import Core, Prec
from simulator.perf.pricer import Pricer
from simulator.perf.roofline import compute_op_time, large_efficiency
from simulator.perf.transformer import training_batch
from simulator.profiles.precision import Precision
from tests.conftest import ROOT, assert_clean_error, run_cli

KINDS = (OpKind.ATTENTION, OpKind.ATTENTION_BACKWARD)


@pytest.mark.parametrize(("hw_id", "head_dim", "expected"), [
    ("tpu-v6e", 64, 0.85 * 64 / 256),     # gpt-oss: a quarter of the array, 0.2125
    ("tpu-v6e", 128, 0.85 * 128 / 256),   # Llama 3.x: half, 0.425 (T53's value kept)
    ("tpu-v6e", 256, 0.85),               # the whole array: the GEMM's fraction
    ("tpu-v5e", 128, 0.85),               # Llama on a 128-wide MXU: 0.85 x 1
    ("tpu-v5e", 64, 0.85 * 64 / 128),     # gpt-oss on v5e: half, 0.425
    ("tpu-v5p", 64, 0.85 * 64 / 128),
])
def test_attention_fraction_is_the_base_times_the_filled_width(hw_id, head_dim, expected):
    hw = load_hardware(hw_id)
    for kind in KINDS:
        got = large_efficiency(hw, "bf16", kind, (head_dim, head_dim))
        assert got == pytest.approx(expected)
    assert large_efficiency(load_hardware("tpu-v6e"), "bf16", OpKind.ATTENTION,
                            (64, 64)) == pytest.approx(0.2125)


def test_gemms_and_gpus_are_not_scaled():
    v6e, h100 = load_hardware("tpu-v6e"), load_hardware("h100-sxm")
    assert h100.compute.matrix_unit_width is None
    assert large_efficiency(v6e, "bf16", OpKind.GEMM) == 0.85
    for kind in KINDS:  # H100: head 64 and 128 run at the same measured fraction
        assert (large_efficiency(h100, "bf16", kind, (64, 64))
                == large_efficiency(h100, "bf16", kind, (128, 128))
                == large_efficiency(h100, "bf16", kind))


def test_mla_widths_combine_as_a_flop_weighted_harmonic_mean():
    # DeepSeek prefill: scores 192 wide, values 128. On 256: time 192/0.75 + 128/0.5 = 512
    # per 320 FLOP units, fill 320/512 = 0.625; on 128 both fill the array
    assert attention_fill(256, 192, 128) == pytest.approx(320 / 512)
    assert attention_fill(128, 192, 128) == 1.0
    assert attention_fill(256, 64, 64) == matmul_fill(256, 64) == 0.25


def test_a_models_attention_core_carries_its_head_dim_into_its_time():
    """gpt-oss-20b's core on v6e takes twice the compute time of the same core at head dim
    128 (a quarter of the MXU instead of half), and equals the core priced by the Pricer."""
    hw, model = load_hardware("tpu-v6e"), load_model("gpt-oss-20b")
    b = Precision.BF16
    p = Prec(weight=b, act=b, compute=b, kv=b, other=b)
    specs = attention_specs(model, Layout(), training_batch(Layout(), 4096, 1), p)
    core = next(s for s in specs if isinstance(s, Core))
    assert core.head_dims == (64, 64)
    op = core.forward(p)[0]
    wide = Core(name="wide", flops=core.flops, q_bytes=core.q_bytes, kv_bytes=core.kv_bytes,
                o_bytes=core.o_bytes, head_dims=(128, 128)).forward(p)[0]
    assert compute_op_time(hw, op).compute_s == pytest.approx(
        2 * compute_op_time(hw, wide).compute_s)
    assert Pricer(hw).compute(op).time_s == compute_op_time(hw, op).time_s


def test_sources_name_the_jax_width():
    for hw_id, width in (("tpu-v6e", 256), ("tpu-v5e", 128), ("tpu-v5p", 128)):
        field = load_hardware(hw_id).compute.matrix_unit_width
        assert field is not None and field.value == width
        assert f"mxu_column_size {width}" in field.source
    attention = load_hardware("tpu-v6e").efficiency.attention
    assert attention is not None
    for part in (attention.forward, attention.backward):
        assert part.value == 0.85 and part.estimate
        assert "informed by case T53" in part.source


@pytest.mark.parametrize("bad", ["0", "-128", "127.5", "true"])
def test_a_bad_width_is_one_clear_line(tmp_path, bad):
    profile = (ROOT / "hardware_profiles" / "tpu-v6e.yaml").read_text()
    line = "  matrix_unit_width: {value: 256,"
    assert line in profile
    (tmp_path / "hw.yaml").write_text(
        profile.replace(line, f"  matrix_unit_width: {{value: {bad},"))
    (tmp_path / "s.yaml").write_text(
        "name: t\nhardware: ./hw.yaml\ncluster: {accelerators: 8}\nmodel: llama3.1-8b\n"
        "workload:\n  kind: training\n  seq_len: 4096\n  global_batch_size: 64\n")
    result = run_cli("run", str(tmp_path / "s.yaml"))
    assert_clean_error(result, "hw.yaml", "compute.matrix_unit_width.value")
    assert len(result.err.strip().splitlines()) == 1, result.err
