"""Attention with and without FlashAttention: the score matrix either stays on chip or not."""

from __future__ import annotations

import pytest

from simulator import load_model
from simulator.perf.ops import Layout
from simulator.perf.transformer import training_ops


def _ops(flash: bool):
    m = load_model("gpt3-175b")
    return training_ops(m, Layout(tp=8), 2048, 1, "fp16", "none", flash_attention=flash)


def test_materialized_scores_add_their_traffic():
    flash, unfused = _ops(True), _ops(False)
    assert not [op for op in flash.forward if op.name == "attn.scores"]
    scores = [op for op in unfused.forward if op.name == "attn.scores"]
    assert len(scores) == 1
    s, heads, layers = 2048, 96 / 8, 96
    # 4 passes of 2 bytes, plus dropout (2 more passes and a 1-byte mask) for a GPT model
    assert scores[0].bytes == pytest.approx(s * s * heads * (4 * 2 + 2 * 2 + 1) * layers)
    backward = [op for op in unfused.backward if op.name == "attn.scores.backward"]
    assert backward[0].bytes == pytest.approx(2 * scores[0].bytes)


def test_unfused_score_gemms_compute_the_whole_square():
    core = {flash: next(op for op in _ops(flash).forward if op.name == "attn.core")
            for flash in (True, False)}
    assert core[False].flops / core[True].flops == pytest.approx(2 * 2048 / 2049)
