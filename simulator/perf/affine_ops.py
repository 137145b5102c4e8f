"""Op lists whose numbers are affine in a few integers, priced without building them.

A serving engine needs the cost of the same group of ops (the body of an iteration, its LM
head, its prompt attention) at thousands of sizes. Building the ops (the transformer's shape
descriptions) dominates that cost. For a group whose FLOPs, bytes and GEMM sizes are exact
affine functions of its sizes, :class:`AffineOps` recovers the lines from ``1 + n`` builds,
checks them, and then gives the ops, their priced :class:`~simulator.perf.pricer.Cost` or a
whole grid of costs at once, with the same bits as building and pricing each (tests hold
them equal).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.pricer import COST_FIELDS, Cost, CostSum, Op, Pricer

_MAX_SCALE = 8  # coefficients may have at most 8 binary fraction digits (4-bit elements)


def _scale(x: float) -> int | None:
    """The least ``k <= _MAX_SCALE`` with ``x·2^k`` an integer, or None."""
    if not math.isfinite(x):
        return None
    for k in range(_MAX_SCALE + 1):
        if (x * 2.0**k).is_integer():
            return k
    return None


Coefficients = tuple[float, ...]  # a + b_1·x_1 + b_2·x_2 + ...: (a, b_1, b_2, ...)


def _op_shape(op: Op) -> tuple:
    """What must not change with the sizes for an op to be fitted: all but its numbers."""
    if isinstance(op, CommOp):
        return (CommOp, op.name, op.collective, op.group, op.count)
    return (ComputeOp, op.name, op.kind, op.precision, op.count, op.gemm_flops_each is None)


def _numbers(op: Op) -> tuple[str, ...]:
    """The fields of ``op`` that grow with the sizes."""
    if isinstance(op, CommOp):
        return ("bytes",)
    if op.gemm_flops_each is None:
        return ("flops", "bytes")
    return ("flops", "bytes", "gemm_flops_each")


def _value(line: Coefficients, x: tuple[int, ...]) -> float:
    """The line at the point ``x`` (exact: see :class:`AffineOps`)."""
    v = line[0]
    for b, xi in zip(line[1:], x, strict=True):
        v += b * xi
    return v


class _Fitted(NamedTuple):
    """One op of the group: as built at the box's low corner, and a line for each of its
    numbers, by field name."""

    template: Op
    lines: dict[str, Coefficients]


class AffineOps:
    """An op list built by ``build(*x)`` whose numbers are affine in the integers ``x`` over
    the box ``lo <= x <= hi``, recovered from ``1 + len(x)`` builds and checked to be exact.

    Each number is ``a + b·x`` with ``a`` and the ``b`` multiples of ``2^-k`` (``k <= 8``);
    while every value stays below ``2^(53-k)`` in magnitude (``hi`` is lowered until it
    does), that is computed without rounding, whatever the order of operations. The fit is
    then checked against ``build`` at the box's corners, middle and a few other points, ops
    compared field for field. ``ok`` is False when any of this fails (a size-dependent
    branch, a non-dyadic factor, a nonlinear term such as the experts an MoE batch touches):
    callers then build the ops for each size. Where ``ok`` and :meth:`covers`, :meth:`ops`
    and :meth:`cost` give exactly what ``build`` would.
    """

    def __init__(self, build, lo: int | tuple[int, ...], hi: int | tuple[int, ...]):
        self.lo = (lo,) if isinstance(lo, int) else tuple(lo)
        self.hi = (hi,) if isinstance(hi, int) else tuple(hi)
        self._build = build
        self.ok = all(h > v + 1 for v, h in zip(self.lo, self.hi, strict=True)) and self._fit()

    def covers(self, *x: int) -> bool:
        """Whether ``x`` lies in the box the lines are exact in."""
        for a, v, b in zip(self.lo, x, self.hi, strict=True):  # noqa: SIM110 (no generator)
            if v < a or v > b:
                return False
        return True

    def _fit(self) -> bool:
        """Recover the lines from the builds at the low corner and one step along each
        integer; check them (exact coefficients, values below 2^53, the builder's ops)."""
        lo, n = self.lo, len(self.lo)
        base = self._build(*lo)
        steps = [self._build(*(v + (i == k) for i, v in enumerate(lo))) for k in range(n)]
        shape = [_op_shape(o) for o in base]
        if any([_op_shape(o) for o in ops] != shape for ops in steps):
            return False
        self._ops: list[_Fitted] = []
        bound = 0.0  # the largest |value| / 2^(53-k) over the box, for the exactness check
        for j, op in enumerate(base):
            lines = {}
            for name in _numbers(op):
                u = getattr(op, name)
                slopes = [getattr(ops[j], name) - u for ops in steps]
                icept = u - sum(b * v for b, v in zip(slopes, lo, strict=True))
                scales = [_scale(c) for c in (icept, *slopes)]
                if None in scales:
                    return False
                limit = 2.0 ** (53 - max(k for k in scales if k is not None))
                bound = max(bound, (abs(icept) + sum(abs(b) * h for b, h in
                                                     zip(slopes, self.hi, strict=True))) / limit)
                lines[name] = (icept, *slopes)
            self._ops.append(_Fitted(template=op, lines=lines))
        while bound >= 1.0:  # shrink the box until every value is exact
            self.hi = tuple(max(v + 2, h // 2) for v, h in zip(lo, self.hi, strict=True))
            bound /= 2.0
            if all(h == v + 2 for v, h in zip(lo, self.hi, strict=True)):
                return False
        return all(self.ops(*x) == self._build(*x) for x in self._probes())

    def _probes(self) -> list[tuple[int, ...]]:
        lo, hi = self.lo, self.hi
        mid = tuple((a + b) // 2 for a, b in zip(lo, hi, strict=True))
        points = {hi, mid, tuple(a + 2 for a in lo), tuple(b - 1 for b in hi)}
        for k in range(len(lo)):
            points.add(tuple(hi[i] if i == k else lo[i] for i in range(len(lo))))
            points.add(tuple(lo[i] + 3 if i == k else mid[i] for i in range(len(lo))))
        rng = np.random.default_rng(0)
        for _ in range(4):
            points.add(tuple(int(rng.integers(a, b, endpoint=True)) for a, b in
                             zip(lo, hi, strict=True)))
        return sorted(points)

    def ops(self, *x: int) -> list[Op]:
        """The ops at ``x`` (inside the box), as ``build(*x)`` gives them."""
        out: list[Op] = []
        for fitted in self._ops:
            op, lines = fitted.template, fitted.lines
            if isinstance(op, CommOp):
                out.append(replace(op, bytes=_value(lines["bytes"], x)))
                continue
            each = lines.get("gemm_flops_each")
            out.append(replace(op, flops=_value(lines["flops"], x),
                               bytes=_value(lines["bytes"], x),
                               gemm_flops_each=None if each is None else _value(each, x)))
        return out

    def cost(self, pricer: Pricer, *x: int) -> Cost:
        """``pricer.cost(self.ops(*x))`` without building the ops."""
        total = CostSum()
        for fitted in self._ops:
            op, lines = fitted.template, fitted.lines
            if isinstance(op, CommOp):
                total.add_network(pricer.collective_time(op.collective, _value(lines["bytes"], x),
                                                         op.group, op.count))
                continue
            f, b = _value(lines["flops"], x), _value(lines["bytes"], x)
            each = lines.get("gemm_flops_each")
            t = pricer.compute_time(op.precision, op.kind, f, b, op.count,
                                    None if each is None else _value(each, x), op.head_dims)
            total.add_compute(f, b, t)
        return total.cost()

    def grid(self, pricer: Pricer, *xs: np.ndarray) -> np.ndarray:
        """:meth:`cost` at many points, as rows of an array (columns in
        :class:`~simulator.perf.pricer.Cost`'s order): ``xs`` holds one array per integer of
        the fit, the points' coordinates (numpy elementwise: the same operations in the same
        order as one point at a time)."""
        x = [np.asarray(v, dtype=np.int64) for v in xs]
        total = {name: np.zeros(len(x[0])) for name in COST_FIELDS}

        def value(line: Coefficients) -> np.ndarray:
            """A fitted line evaluated at every point of the grid."""
            v = line[0] + line[1] * x[0]
            for b, xi in zip(line[2:], x[1:], strict=True):
                v = v + b * xi
            return v

        for fitted in self._ops:
            op, lines = fitted.template, fitted.lines
            if isinstance(op, CommOp):
                seconds = pricer.collective_times(op.collective, value(lines["bytes"]),
                                                  op.group, op.count)
                total["time_s"] += seconds
                total["network_s"] += seconds
                continue
            f, b = value(lines["flops"]), value(lines["bytes"])
            each = lines.get("gemm_flops_each")
            t = pricer.compute_times(op.precision, op.kind, f, b, op.count,
                                     None if each is None else value(each), op.head_dims)
            total["time_s"] += t.time_s
            total["flops"] += f
            total["hbm_bytes"] += b
            total["compute_bound_s"] += np.where(t.compute_bound, t.time_s, 0.0)
            total["memory_bound_s"] += np.where(t.compute_bound, 0.0, t.time_s)
        return np.column_stack([total[name] for name in COST_FIELDS])
