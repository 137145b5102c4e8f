"""``workload.attention_block``: a fused attention kernel that skips only whole blocks above the
causal diagonal (Splash attention on TPUs) computes s(s+B)/2 pairs a sequence, not s(s+1)/2.

Hand arithmetic for MaxText's Llama 3.1 70B recipe (T53): s = 8,192, B = 2,048, so n = 4
blocks a side; the kernel runs the 4·5/2 = 10 blocks on or below the diagonal of the 16, each
2,048² pairs: 10 x 4,194,304 = 41,943,040 pairs a sequence, against 8,192 x 8,193 / 2 =
33,558,528 exact, a ratio of 1.24985.
"""

from __future__ import annotations

import pytest
import yaml

from simulator import load_model
from simulator.perf.ops import ComputeOp, Layout
from simulator.perf.transformer import training_batch, training_ops
from tests.conftest import ROOT, assert_clean_error, run_cli

T53 = ROOT / "validation" / "cases" / "T53-maxtext-llama31-70b-tpu-v6e-256.yaml"


def _flops(ops: list, prefix: str) -> float:
    return sum(op.flops for op in ops if isinstance(op, ComputeOp) and op.name.startswith(prefix))


def test_pairs_count_the_whole_diagonal_blocks():
    batch = training_batch(Layout(), 8192, 5, attention_block=2048)
    assert batch.pairs == 5 * 10 * 2048 ** 2 == 209_715_200
    exact = training_batch(Layout(), 8192, 5)
    assert exact.pairs == 5 * 8192 * 8193 / 2


def test_a_block_of_one_is_the_exact_causal_half():
    assert (training_batch(Layout(), 4096, 2, attention_block=1).pairs
            == training_batch(Layout(), 4096, 2).pairs)


def test_a_block_as_long_as_the_sequence_computes_the_whole_square():
    # one block a side: the diagonal block is the whole s x s square, as without flash
    assert training_batch(Layout(), 2048, 1, attention_block=2048).pairs == 2048 ** 2


def test_only_the_attention_core_grows_forward_and_backward():
    model = load_model("llama3.1-70b")
    plain = training_ops(model, Layout(), 8192, 5, "bf16", "full")
    blocked = training_ops(model, Layout(), 8192, 5, "bf16", "full", attention_block=2048)
    ratio = 41_943_040 / 33_558_528
    for part in ("forward", "backward"):
        before, after = getattr(plain, part), getattr(blocked, part)
        core_before = _flops(before, "attn.core") + _flops(before, "recompute.attn.core")
        core_after = _flops(after, "attn.core") + _flops(after, "recompute.attn.core")
        assert core_after == pytest.approx(core_before * ratio, rel=1e-12)
        rest = sum(op.flops for op in before if isinstance(op, ComputeOp)) - core_before
        rest_after = sum(op.flops for op in after if isinstance(op, ComputeOp)) - core_after
        assert rest_after == pytest.approx(rest, rel=1e-12)


def _t53_with(tmp_path, **workload) -> str:
    """T53's scenario with ``workload`` fields replaced, written to a file."""
    scenario = yaml.safe_load(T53.read_text())["scenario"]
    scenario["workload"].update(workload)
    path = tmp_path / "t53.yaml"
    path.write_text(yaml.safe_dump(scenario))
    return str(path)


@pytest.mark.parametrize(("edits", "fragments"), [
    ({"attention_block": 3000}, ("attention_block 3000 must divide seq_len 8192",)),
    ({"attention_block": 2048, "flash_attention": False}, ("needs flash_attention",)),
    ({"attention_block": 0}, ("greater than 0",)),
    ({"attention_block": "2k"}, ("must be a whole number",)),
    ({"attention_block": 2048, "parallelism": {"tp": 1, "cp": 2, "zero": 3}},
     ("without context parallelism",)),
])
def test_bad_attention_block_is_one_clean_line(tmp_path, edits, fragments):
    path = _t53_with(tmp_path, **edits)
    assert_clean_error(run_cli("validate", path), path, "workload.attention_block", *fragments)


def test_t53_with_its_recipe_block_validates(tmp_path):
    result = run_cli("validate", _t53_with(tmp_path, attention_block=2048))
    assert result.code == 0, result.err
