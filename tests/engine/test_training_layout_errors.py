"""Every impossible training layout is one clear error naming the fields, through the real
`xpusim` entry point (tests/test_cli.py covers tp not dividing the heads and a global batch
that does not split over dp*micro_batch_size)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.conftest import assert_clean_error, run_cli

# 48 query heads in 16 K/V groups: tp=24 divides the heads but not the K/V heads
GQA_MODEL = """\
id: gqa-test
name: GQA test model
source: a test
layers: 24
hidden_size: 6144
attention: gqa
attention_heads: 48
kv_heads: 16
ffn_size: 16384
activation: swiglu
vocab_size: 32000
max_seq_len: 8192
"""


def scenario(tmp_path: Path, workload: str, *, model: str = "llama3.1-8b",
             accelerators: int = 8, hardware: str = "h100-sxm", seq_len: int = 4096) -> Path:
    path = tmp_path / "s.yaml"
    (tmp_path / "gqa.yaml").write_text(GQA_MODEL)
    body = textwrap.indent(textwrap.dedent(workload).strip(), "  ")
    path.write_text(f"name: t\nhardware: {hardware}\ncluster: {{accelerators: {accelerators}}}\n"
                    f"model: {model}\nworkload:\n  kind: training\n  seq_len: {seq_len}\n"
                    f"  recompute: full\n{body}\n")
    return path


CASES = {
    "explicit dp that does not multiply out": (
        "global_batch_size: 64\nparallelism: {tp: 2, dp: 2}", {},
        ["workload.parallelism.dp", "tp*pp*dp*cp = 2*1*2*1 = 4 must equal "
                                    "cluster.accelerators (8)"]),
    "dp that cannot be derived": (
        "global_batch_size: 64\nparallelism: {tp: 4, pp: 4}", {"accelerators": 8},
        ["workload.parallelism", "tp*pp*cp = 4*4*1 = 16 does not divide cluster.accelerators "
                                 "(8)"]),
    "layers that do not split over pp": (
        "global_batch_size: 64\nparallelism: {pp: 3}", {"accelerators": 6},
        ["workload.parallelism.pp", "32 layers", "pp*vpp = 3*1 = 3"]),
    "layers that do not split over pp*vpp": (
        "global_batch_size: 64\nparallelism: {pp: 2, vpp: 3}\npipeline_schedule: interleaved",
        {}, ["workload.parallelism.pp", "pp*vpp = 2*3 = 6"]),
    "uneven end stages": (
        "global_batch_size: 64\nparallelism: {pp: 4, first_stage_layers: 6}", {},
        ["workload.parallelism.pp", "first_stage_layers/last_stage_layers"]),
    "kv heads neither divided nor multiplied": (
        "global_batch_size: 64\nparallelism: {tp: 24}",
        {"accelerators": 24, "model": "./gqa.yaml"},
        ["workload.parallelism.tp", "tp=24 is neither a divisor nor a multiple of kv_heads "
                                    "(16)"]),
    "ep on a dense model": (
        "global_batch_size: 64\nparallelism: {ep: 2}", {},
        ["workload.parallelism.ep", "dense model"]),
    "ep that does not divide the experts": (
        "global_batch_size: 64\nparallelism: {ep: 3, pp: 2}",
        {"accelerators": 6, "model": "mixtral-8x7b"},
        ["workload.parallelism.ep", "ep=3 does not divide the model's 8 experts"]),
    "ep that does not divide dp*cp": (
        "global_batch_size: 64\nparallelism: {ep: 8, pp: 2}",
        {"accelerators": 8, "model": "mixtral-8x7b"},
        ["workload.parallelism.ep", "ep*etp = 8*1 = 8 must divide tp*cp*dp = 1*1*4 = 4"]),
    "ep*etp that does not fold into tp*cp*dp": (
        "global_batch_size: 64\nparallelism: {tp: 2, etp: 2, ep: 8}",
        {"accelerators": 8, "model": "mixtral-8x7b"},
        ["workload.parallelism.ep", "ep*etp = 8*2 = 16 must divide tp*cp*dp = 2*1*4 = 8"]),
    "etp on a dense model": (
        "global_batch_size: 64\nparallelism: {tp: 2, etp: 2}", {},
        ["workload.parallelism.etp", "dense model"]),
    "etp that does not divide the expert FFN": (
        "global_batch_size: 66\nparallelism: {etp: 3}",
        {"accelerators": 6, "model": "mixtral-8x7b"},
        ["workload.parallelism.etp", "etp=3 does not divide the experts' FFN size (14336)"]),
    "etp other than tp without sequence parallelism": (
        "global_batch_size: 64\nparallelism: {tp: 2, etp: 1, ep: 8, sequence_parallel: false}",
        {"accelerators": 8, "model": "mixtral-8x7b"},
        ["workload.parallelism.etp", "etp=1 different from tp=2 needs sequence_parallel"]),
    "cp that does not split the sequence": (
        "global_batch_size: 64\nparallelism: {cp: 4}", {"seq_len": 4098},
        ["workload.parallelism.cp", "2*cp = 8 equal chunks"]),
    "a precision the chip lacks": (
        "global_batch_size: 64\nprecision: fp4", {},
        ["workload.precision", "h100-sxm has no peak for fp4"]),
    "vpp without the interleaved schedule": (
        "global_batch_size: 64\nparallelism: {pp: 2, vpp: 2}", {},
        ["workload", "vpp > 1 needs pipeline_schedule: interleaved"]),
    "interleaved without vpp": (
        "global_batch_size: 64\nparallelism: {pp: 2}\npipeline_schedule: interleaved", {},
        ["workload", "interleaved needs parallelism.vpp >= 2"]),
    "interleaved vpp on one pipeline stage": (
        "global_batch_size: 64\nparallelism: {vpp: 2}\npipeline_schedule: interleaved", {},
        ["workload.parallelism.vpp", "vpp 2 needs pp >= 2"]),
    "interleaved microbatches not in groups of pp": (
        "global_batch_size: 12\nparallelism: {pp: 4, vpp: 2}\npipeline_schedule: interleaved",
        {}, ["workload.global_batch_size", "6 microbatches must be a multiple of pp (4)"]),
    "tokens and steps both": (
        "global_batch_size: 64\ntokens: 1.0e9\nsteps: 10", {},
        ["workload", "either tokens or steps"]),
}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.replace(" ", "_"))
def test_layout_error(tmp_path, case):
    workload, options, fragments = CASES[case]
    path = scenario(tmp_path, workload, **options)
    assert_clean_error(run_cli("validate", str(path)), *fragments)


def test_a_valid_layout_passes(tmp_path):
    path = scenario(tmp_path, "global_batch_size: 64\nparallelism: {tp: 2, pp: 2}")
    result = run_cli("validate", str(path))
    assert result.code == 0, result.err


def test_ep_may_span_the_attention_tp_ranks(tmp_path):
    # Megatron Core MoE parallel folding: tp=2, etp=1, ep=8 on 8 GPUs (dp=4 < ep)
    path = scenario(tmp_path, "global_batch_size: 64\nparallelism: {tp: 2, etp: 1, ep: 8}",
                    model="mixtral-8x7b")
    result = run_cli("validate", str(path))
    assert result.code == 0, result.err
