"""A decode step's cost, and runs of decode steps priced one step at a time, exactly.

A decode step of ``batch`` sequences costs ``const(batch) + core(batch, context)``: the ops
that do not depend on the context (body, head, the decode ops' fixed part) and the ops that
are affine in the batch's total context (the attention core), each priced by its
:class:`~simulator.perf.affine_op.AffineTimer` with the roofline kernel. A run of steps grows
the context by ``batch`` a step; a short run is priced in plain Python, a long one with
numpy, the same IEEE operations in the same order either way (a test holds them equal).

When the core is memory-bound by a wide margin from some context on (the usual case: a
decode step reads the whole KV cache for a few FLOPs per byte), its time there is its
:class:`~simulator.perf.affine_op.MemoryBound` time: the kernel's, bit for bit, without the
compute side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulator.perf.affine_op import AffineOp, AffineTimer, MemoryBound
from simulator.perf.affine_op import timer as affine_timer
from simulator.perf.ops import ComputeOp
from simulator.perf.pricer import Cost
from simulator.profiles.hardware import HardwareProfile

PYTHON_RUN = 64  # runs up to this many steps are priced in plain Python, longer ones in numpy
# ... and listed runs (speculative decoding), whose steps have several context-dependent
# ops (the verify and draft attention) and so no single memory-bound line to price from
PYTHON_LISTED = 8


class RunPrice:
    """A run of decode steps: each step's time, the compute-bound seconds of its
    context-dependent ops (None when none of them is compute-bound, the usual case), and
    each step's device time where the serving stack made a step longer than that (None
    when it did not: ``time_s`` is then the device time)."""

    __slots__ = ("compute_bound_s", "contexts", "device_s", "time_s")

    def __init__(self, time_s: list[float], compute_bound_s: list[float] | None,
                 device_s: list[float] | None = None):
        self.time_s = time_s
        self.compute_bound_s = compute_bound_s
        self.device_s = device_s
        # each step's total context where it does not grow by the batch a step (speculative
        # decoding's token clock; None: it does)
        self.contexts: list[int] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeStep:
    """A decode step of one batch size: what does not depend on the context, and timers
    for what does."""

    const: Cost  # the whole step's context-independent cost: body, head and decode ops
    own: Cost  # the decode ops' context-independent cost alone (a mixed step adds it)
    timers: tuple[AffineTimer, ...]  # the ops affine in the total context
    # the one context-dependent op where memory bounds it (None with several, or if never)
    memory: MemoryBound | None
    # the serving stack's share (:mod:`simulator.engine.serving.stack_cost`): a step takes
    # max(device time, floor) + serial
    floor: float = 0.0
    serial: float = 0.0
    # with several context-dependent ops (speculative decoding's verify and draft
    # attention), each one's memory-bound line, when all have one (for :func:`listed_run`)
    memories: tuple[MemoryBound, ...] | None = None

    @classmethod
    def of(cls, const: Cost, own: Cost, timers: list[AffineTimer], batch: int, *,
           floor: float = 0.0, serial: float = 0.0, several: bool = False) -> DecodeStep:
        """The step, with the total context from which its one context-dependent op is
        memory-bound found (from ``batch``, the least total context: one token each); with
        ``several``, each op's when there are several."""
        memory = timers[0].memory_bound(batch) if len(timers) == 1 else None
        memories = None
        if several and len(timers) > 1:
            lines = [t.memory_bound(batch) for t in timers]
            memories = None if None in lines else tuple(m for m in lines if m is not None)
        return cls(const=const, own=own, timers=tuple(timers), memory=memory, floor=floor,
                   serial=serial, memories=memories)

    def time(self, const: float, context: int) -> tuple[float, float]:
        """Seconds of one step at total context ``context``: ``const`` (the step's other
        ops) plus the context-dependent ops, added in that order; and the compute-bound
        seconds of the context-dependent ops."""
        memory = self.memory
        if memory is not None and context >= memory.start:
            return const + memory.time(context), 0.0
        total, compute_bound = const, 0.0
        for timer in self.timers:
            op = timer.time(context)
            total = total + op.time_s
            if op.compute_bound:
                compute_bound += op.time_s
        return total, compute_bound


def price_run(step: DecodeStep, const: float, context: int, batch: int,
              steps: int, contexts: list[int] | None = None) -> RunPrice:
    """:func:`device_run`, with the serving stack's share added to each step:
    ``max(device, floor) + serial`` (left as it is where that changes nothing).
    ``contexts``, if given, are the steps' total contexts (else ``context + i·batch``)."""
    run = (device_run(step, const, context, batch, steps) if contexts is None
           else listed_run(step, const, contexts))
    floor, serial = step.floor, step.serial
    device = run.time_s
    if serial or floor > device[0]:  # (device times never fall within a run)
        run.device_s = device
        run.time_s = [(t if t > floor else floor) + serial for t in device]
    return run


def device_run(step: DecodeStep, const: float, context: int, batch: int,
               steps: int) -> RunPrice:
    """``steps`` steps of ``batch`` sequences whose total context is ``context`` at the
    first step and grows by ``batch`` a step; step ``i`` costs ``const`` plus the
    context-dependent ops at ``context + i·batch``, added in that order whether the run has
    one step or many, so the times agree to the last bit.

    A run memory-bound throughout (the usual case) is priced by its :class:`MemoryBound`,
    other runs by the kernel (:func:`python_run`, :func:`numpy_run`); short runs in plain
    Python, long ones with numpy.
    """
    memory = step.memory
    if memory is None or context < memory.start:
        run = numpy_run if steps > PYTHON_RUN else python_run
        return run(step, const, context, batch, steps)
    if steps > PYTHON_RUN:
        x = context + batch * np.arange(steps, dtype=np.int64)
        return RunPrice((const + memory.time(x)).tolist(), None)
    time = memory.time
    return RunPrice([const + time(x) for x in range(context, context + batch * steps, batch)],
                    None)


def python_run(step: DecodeStep, const: float, context: int, batch: int,
               steps: int) -> RunPrice:
    """:func:`price_run` one step at a time (:meth:`DecodeStep.time`)."""
    times: list[float] = []
    bound: list[float] | None = None
    for i, x in enumerate(range(context, context + batch * steps, batch)):
        total, cb = step.time(const, x)
        times.append(total)
        if cb:
            if bound is None:
                bound = [0.0] * i
            bound.append(cb)
        elif bound is not None:
            bound.append(0.0)
    return RunPrice(times, bound)


def numpy_run(step: DecodeStep, const: float, context: int, batch: int,
              steps: int) -> RunPrice:
    """:func:`python_run` with numpy: the context-dependent ops' kernels at every step at
    once (the same operations, elementwise)."""
    return numpy_at(step, const, context + batch * np.arange(steps, dtype=np.int64))


def numpy_at(step: DecodeStep, const: float, x: np.ndarray) -> RunPrice:
    """Steps at the total contexts ``x``, the context-dependent ops' kernels at all of them
    at once (elementwise, the operations of :meth:`DecodeStep.time`)."""
    steps = len(x)
    times = np.full(steps, const)
    bound = np.zeros(steps)
    for timer in step.timers:
        op = timer.times(x)
        times = times + op.time_s
        bound += np.where(op.compute_bound, op.time_s, 0.0)
    return RunPrice(times.tolist(), bound.tolist() if bound.any() else None)


def listed_run(step: DecodeStep, const: float, contexts: list[int]) -> RunPrice:
    """Steps at the listed total ``contexts`` (speculative decoding: the context grows by the
    tokens a step yields), priced as :func:`device_run` prices its steps."""
    memory, lines = step.memory, step.memories
    if lines is not None and contexts[0] >= max(m.start for m in lines):
        run = _memory_lines(lines, const, contexts)
    elif memory is not None and contexts[0] >= memory.start:
        if len(contexts) > PYTHON_RUN:
            xs = np.array(contexts, dtype=np.int64)
            run = RunPrice((const + memory.time(xs)).tolist(), None)
        else:
            time = memory.time
            run = RunPrice([const + time(x) for x in contexts], None)
    elif len(contexts) > PYTHON_LISTED:
        run = numpy_at(step, const, np.array(contexts, dtype=np.int64))
    else:
        times: list[float] = []
        bound: list[float] = []
        for x in contexts:
            total, cb = step.time(const, x)
            times.append(total)
            bound.append(cb)
        run = RunPrice(times, bound if any(bound) else None)
    run.contexts = contexts
    return run


def _memory_lines(lines: tuple[MemoryBound, ...], const: float,
                  contexts: list[int]) -> RunPrice:
    """Steps whose context-dependent ops are all memory-bound at every listed context: each
    op's :class:`MemoryBound` time (the kernel's, bit for bit), added in the ops' order."""
    if len(contexts) > PYTHON_LISTED:
        x = np.array(contexts, dtype=np.int64)
        times = const + lines[0].time(x)
        for line in lines[1:]:
            times = times + line.time(x)
        return RunPrice(times.tolist(), None)
    out = []
    for c in contexts:
        t = const
        for line in lines:
            t = t + line.time(c)
        out.append(t)
    return RunPrice(out, None)


def split_by_context(hw: HardwareProfile, lo: list, hi: list, x_lo: float,
                     x_hi: float) -> tuple[list, list[AffineTimer]]:
    """The decode ops built at two total contexts ``x_lo`` and ``x_hi`` (``lo`` and ``hi``,
    op for op), split into those that do not depend on the context and timers for those
    that do (affine in the total context)."""
    fixed: list = []
    timers: list[AffineTimer] = []
    for a, b in zip(lo, hi, strict=True):
        if a == b:
            fixed.append(a)
        elif isinstance(a, ComputeOp) and isinstance(b, ComputeOp):
            timers.append(affine_timer(hw, AffineOp.through(a, b, x_lo, x_hi)))
        else:
            raise ValueError(f"decode op {a.name} depends on the context but is not "
                             f"a compute op")
    return fixed, timers
