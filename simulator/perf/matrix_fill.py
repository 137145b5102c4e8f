"""How much of a systolic matrix unit an attention core's narrow matmuls fill.

A systolic matrix unit (a TPU MXU) holds a [contraction x width] operand tile stationary,
so a matmul whose contraction or output width is narrower than the array leaves the rest
of the array idle for the whole pass. Every matmul of a fused attention core has the head
dim as its contraction (QK^T, dO.V^T) or its output width (PV, dQ, dK, dV), so a head dim
of d on an array ``width`` wide runs at min(1, d / width) of what a full-width GEMM
reaches (a head dim of 64 fills half of a 128-wide MXU, a quarter of a 256-wide one).
Tensor cores issue small fixed tiles (an MMA is 16 or 64 wide), so GPU profiles give no
width and attention there is not scaled.
"""

from __future__ import annotations


def matmul_fill(width: int, dim: float) -> float:
    """The fraction of a ``width``-wide matrix unit a matmul of contraction or output
    width ``dim`` keeps busy."""
    return min(1.0, dim / width)


def attention_fill(width: int, score_dim: float, value_dim: float) -> float:
    """The fraction of a ``width``-wide matrix unit an attention core keeps busy.

    The core's FLOPs split between its score matmuls (width ``score_dim``: the query/key
    head dim) and its value matmuls (``value_dim``) in proportion to the two widths, and
    each runs at its own fill, so the core's fill is their FLOP-weighted harmonic mean:
    (s + v) / (s / fill(s) + v / fill(v)). With equal dims it is min(1, d / width).
    """
    time = score_dim / matmul_fill(width, score_dim) + value_dim / matmul_fill(width, value_dim)
    return (score_dim + value_dim) / time
