"""Op lists priced on one device with the hardware looked up once, and what they cost.

An engine that prices thousands of op lists should spend its time on arithmetic, not on
profile lookups. A :class:`Pricer` keeps each (precision, kind)'s :class:`~simulator.perf.
kernel.OpRates` and each collective's time by shape, and prices compute ops with the
roofline kernel (:mod:`simulator.perf.kernel`), one size or many sizes at a time
(:mod:`simulator.perf.affine_ops` builds on it). What a list of ops costs is a :class:`Cost`,
summed op by op in a :class:`CostSum`, in op order, so it equals adding
:func:`simulator.perf.roofline.op_time` one op at a time, bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from simulator.perf import collectives as model
from simulator.perf.collective_size import serving_library
from simulator.perf.kernel import KernelTime, KernelTimes, OpRates, kernel_time, kernel_times
from simulator.perf.ops import Collective, CommOp, ComputeOp, Group, OpKind
from simulator.perf.roofline import op_rates
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.precision import Precision

Op = ComputeOp | CommOp
HeadDims = tuple[float, float] | None  # an attention core's (score, value) head dims


@dataclass(frozen=True, slots=True, kw_only=True)
class Cost:
    """What ops run one after another cost on one device. Costs go into and out of numpy
    arrays as rows, columns in field order (:data:`COST_FIELDS`): :meth:`row`,
    :meth:`of_row`."""

    time_s: float
    flops: float
    hbm_bytes: float
    network_s: float  # seconds of collectives
    compute_bound_s: float  # seconds of compute ops that compute bounds
    memory_bound_s: float  # ... and that memory bounds

    def row(self) -> tuple[float, float, float, float, float, float]:
        """The fields in order, for an array row."""
        return (self.time_s, self.flops, self.hbm_bytes, self.network_s, self.compute_bound_s,
                self.memory_bound_s)

    @classmethod
    def of_row(cls, row: Sequence[float]) -> Cost:
        """The cost whose fields are ``row``, in order."""
        time_s, flops, hbm_bytes, network_s, compute_bound_s, memory_bound_s = row
        return cls(time_s=time_s, flops=flops, hbm_bytes=hbm_bytes, network_s=network_s,
                   compute_bound_s=compute_bound_s, memory_bound_s=memory_bound_s)


COST_FIELDS = tuple(f.name for f in fields(Cost))
ZERO = Cost.of_row([0.0] * len(COST_FIELDS))


def add_costs(*costs: Cost) -> Cost:
    """Field by field, left to right."""
    out = costs[0]
    for c in costs[1:]:
        out = Cost.of_row([a + b for a, b in zip(out.row(), c.row(), strict=True)])
    return out


class CostSum:
    """A :class:`Cost` being summed: compute ops by their bound, collectives as network."""

    __slots__ = COST_FIELDS

    def __init__(self) -> None:
        self.time_s = self.flops = self.hbm_bytes = 0.0
        self.network_s = self.compute_bound_s = self.memory_bound_s = 0.0

    def add_compute(self, flops: float, nbytes: float, t: KernelTime) -> None:
        """A compute op of ``flops`` FLOPs and ``nbytes`` bytes that took ``t``."""
        self.time_s += t.time_s
        self.flops += flops
        self.hbm_bytes += nbytes
        if t.compute_bound:
            self.compute_bound_s += t.time_s
        else:
            self.memory_bound_s += t.time_s

    def add_network(self, seconds: float) -> None:
        """A collective that took ``seconds``."""
        self.time_s += seconds
        self.network_s += seconds

    def add(self, c: Cost) -> None:
        """A whole cost, field by field."""
        self.time_s += c.time_s
        self.flops += c.flops
        self.hbm_bytes += c.hbm_bytes
        self.network_s += c.network_s
        self.compute_bound_s += c.compute_bound_s
        self.memory_bound_s += c.memory_bound_s

    def cost(self) -> Cost:
        """The sum so far."""
        return Cost(time_s=self.time_s, flops=self.flops, hbm_bytes=self.hbm_bytes,
                    network_s=self.network_s, compute_bound_s=self.compute_bound_s,
                    memory_bound_s=self.memory_bound_s)


class Pricer:
    """Prices ops on one device as :func:`simulator.perf.roofline.op_time` does, bit for
    bit, with the rates of each (precision, kind) looked up once and each collective
    (kind, bytes, group) priced once. It prices serving's collectives: the all-gathers and
    reduce-scatters as NCCL's (``library``), the all-reduce on the engine's own kernels."""

    def __init__(self, hw: HardwareProfile):
        self.hw = hw
        self._rates: dict[tuple[Precision, OpKind, HeadDims], OpRates] = {}
        self._collectives: dict[tuple[Collective, float, Group], float] = {}

    def rates(self, precision: Precision, kind: OpKind = OpKind.GEMM,
              head_dims: HeadDims = None) -> OpRates:
        """The rates an op of ``kind`` at ``precision`` (an attention core of
        ``head_dims``) runs at."""
        key = (precision, kind, head_dims)
        r = self._rates.get(key)
        if r is None:
            r = self._rates[key] = op_rates(self.hw, precision, kind, head_dims)
        return r

    def compute(self, op: ComputeOp) -> KernelTime:
        """Seconds of a compute op."""
        return self.compute_time(op.precision, op.kind, op.flops, op.bytes, op.count,
                                 op.gemm_flops_each, op.head_dims)

    def compute_time(self, precision: Precision, kind: OpKind, flops: float, nbytes: float,
                     count: int, each: float | None, head_dims: HeadDims = None) -> KernelTime:
        """:meth:`compute` from an op's fields."""
        return kernel_time(self.rates(precision, kind, head_dims), flops, nbytes, count, each)

    def compute_times(self, precision: Precision, kind: OpKind, flops: np.ndarray,
                      nbytes: np.ndarray, count: int, each: np.ndarray | None,
                      head_dims: HeadDims = None) -> KernelTimes:
        """:meth:`compute_time` at many sizes at once."""
        return kernel_times(self.rates(precision, kind, head_dims), flops, nbytes, count, each)

    def collective(self, op: CommOp) -> float:
        """Seconds of ``op.count`` repeats of a collective (``comm_op_time``)."""
        return self.collective_time(op.collective, op.bytes, op.group, op.count)

    def collective_time(self, collective: Collective, nbytes: float, group: Group,
                        count: int) -> float:
        """:meth:`collective` from an op's fields (one repeat priced once per shape)."""
        key = (collective, nbytes, group)
        one = self._collectives.get(key)
        if one is None:
            one = self._collectives[key] = model.collective_time(
                self.hw, collective, nbytes, group, library=serving_library(collective)).time_s
        return one * count if count else 0.0

    def collective_times(self, collective: Collective, nbytes: np.ndarray, group: Group,
                         count: int) -> np.ndarray:
        """:meth:`collective_time` at many sizes at once. Groups inside one scale-up domain
        or one per domain are priced elementwise by the collective model's own formulas
        (the fastest algorithm at each size); others one size at a time."""
        if not count:
            return np.zeros(len(nbytes))
        one = model.one_fabric_times(self.hw, collective, nbytes, group,
                                     library=serving_library(collective))
        if one is None:
            return np.array([self.collective_time(collective, float(b), group, count)
                             for b in nbytes])
        return one * count

    def cost(self, ops: list[Op]) -> Cost:
        """The cost of ``ops`` run one after another, added in op order."""
        total = CostSum()
        for op in ops:
            if isinstance(op, CommOp):
                total.add_network(self.collective(op))
            else:
                total.add_compute(op.flops, op.bytes, self.compute(op))
        return total.cost()
