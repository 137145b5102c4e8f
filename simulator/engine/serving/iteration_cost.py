"""What one serving iteration costs, priced by :mod:`simulator.perf` from its actual mix.

An iteration's ops fall into groups that each depend on a few integers
(:class:`~simulator.perf.serving_iteration.IterationModel`): the body on the new tokens, the
LM head on the sequences, the prompt chunks' attention on (tokens, cached tokens, pairs,
sequences), the decode attention on (sequences, total context). Each group is priced once per
key and cached. The decode attention core is affine in the total context, so a decode step
costs ``const(batch) + core(batch, context)`` and a run of decode steps is priced without
building a single op (:mod:`simulator.engine.serving.decode_steps`).

Speed, with the same bits as building every op and pricing it with
:func:`simulator.perf.roofline.op_time` (tests hold them equal):

- the body and the head are affine in their one integer between the GEMM-tile breakpoint,
  and the prompt attention in (tokens, cached, pairs) for a given number of chunks once
  each has a tile of rows: they are priced from exact fitted lines
  (:class:`~simulator.perf.affine_ops.AffineOps`), the body and head 512 sizes at a time
  with numpy when one is first needed. Groups that do not fit (MoE layers: the experts a
  batch touches grow nonlinearly) are built for each size;
- ops are priced by a :class:`~simulator.perf.vector_roofline.Pricer` that looks the
  hardware up once per precision and each collective up once per shape.

The engine only needs an iteration's time; what the iterations did in total (FLOPs, bytes,
network and bound seconds: :data:`FIELDS`) is counted per replica in a :class:`Usage` and
priced once at the end (:meth:`IterationCost.totals`), summed in a different order than
iteration by iteration (so these totals may differ from it in the last bits).
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from simulator.engine.serving.decode_steps import (
    DecodeStep,
    RunPrice,
    Vector,
    numpy_run,
    python_run,
)
from simulator.perf.affine_ops import AffineOps
from simulator.perf.ops import CommOp, ComputeOp
from simulator.perf.opspec import TILE_ROWS
from simulator.perf.serving_iteration import IterationModel
from simulator.perf.vector_roofline import COST_FIELDS, AffineOp, Pricer, timer
from simulator.profiles.hardware import HardwareProfile

FIELDS = COST_FIELDS
TIME, FLOPS, BYTES, NETWORK, COMPUTE_BOUND, MEMORY_BOUND = range(len(FIELDS))
_PREFILL_CACHE = 1 << 16  # entries kept before the prompt-attention cache is cleared
_PYTHON_RUN = 64  # runs up to this many steps are priced in plain Python, longer ones in numpy
_TILE = int(TILE_ROWS)  # GEMM sizes are flat below one tile of rows, affine above
_LARGEST = 1 << 24  # the largest token count the fitted lines are asked to cover
_GRID = 512  # sizes priced together when one of them is first needed


@dataclass(frozen=True)
class DecodeRun:
    """``steps`` decode steps of one batch: each step's time and the run's summed costs."""

    time_s: np.ndarray
    totals: np.ndarray  # summed cost vector over the steps


def price(hw: HardwareProfile, ops: list[ComputeOp | CommOp]) -> np.ndarray:
    """The cost vector of ops run one after another on one device."""
    return np.array(Pricer(hw).vector(ops))


def _tally(keys: np.ndarray, sizes: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct ``keys`` (small non-negative ints) in the order they first occur (as a
    dict counting them would hold them), how often each occurs, and the sum of ``sizes``
    over its occurrences. The keys index the counts and sums directly (no sort)."""
    distinct = np.fromiter(dict.fromkeys(keys.tolist()), dtype=np.int64)
    counts = np.bincount(keys)[distinct]
    sums = np.zeros(int(keys.max()) + 1, dtype=np.int64)
    if sizes is not None:
        np.add.at(sums, keys, sizes)
    return distinct, counts, sums[distinct]


def _put(table: list, i: int, v: object) -> None:
    """``table[i] = v``, growing the table with None as needed."""
    if i >= len(table):
        table.extend([None] * (i + 1 - len(table)))
    table[i] = v


def _add(*vectors: Vector) -> Vector:
    """Elementwise sum, left to right."""
    out = vectors[0]
    for v in vectors[1:]:
        out = tuple(a + b for a, b in zip(out, v, strict=True))
    return out


class Usage:
    """What one replica's iterations ran, by cache key, to be priced once at the end."""

    __slots__ = ("compute_bound_s", "const", "const_x", "mixed", "prefill", "timer_s")

    def __init__(self) -> None:
        # mixed iterations, four integers each: new tokens (the body's key), sequences (the
        # head's), decode batch and its total context (the decode ops'); appended rather than
        # counted in dicts keyed by thousands of sizes, whose entries a long run finds cold
        self.mixed = array("q")
        self.const: dict[int, int] = defaultdict(int)  # decode-only steps: batch -> steps
        self.const_x: dict[int, int] = defaultdict(int)  # ... and the sum of their contexts
        self.prefill = [0.0] * len(FIELDS)  # prompt attention, summed as it runs
        # seconds of decode-only steps and of mixed steps' context-dependent ops (the
        # constant parts of decode-only steps are taken off at the end), and the
        # compute-bound part of the context-dependent ops
        self.timer_s = 0.0
        self.compute_bound_s = 0.0


class IterationCost:
    """Cached prices of iterations on one replica's hardware and layout."""

    def __init__(self, hw: HardwareProfile, model: IterationModel):
        self.hw = hw
        self.model = model
        self.pricer = Pricer(hw)
        self._body: dict[int, Vector] = {}
        self._head: dict[int, Vector] = {}
        self._prefill: dict[tuple[int, int, int, int], Vector] = {}
        # the same costs in lists indexed by size, for the engine's lookups (a list slot is
        # fewer memory reads than a dict entry, which a long run finds cold): the body by
        # new tokens, and the prompt attention of one fresh chunk (no cached tokens) by its
        # tokens, which determine its key
        self._body_at: list[Vector | None] = []
        self._fresh: list[Vector | None] = []
        self._decode: dict[int, DecodeStep] = {}
        self._fits: dict[str, list[AffineOps]] = {}
        self._prefill_fits: dict[int, AffineOps] = {}
        self._dense_cache: dict[str, tuple] = {}

    # ---- op groups ----------------------------------------------------------------------
    def _fitted(self, name: str, build, x: int, cache: dict[int, Vector]) -> Vector:
        """The cost of ``build(x)``: from the fitted lines, a block of sizes at once, when
        ``x`` is in a fitted range; else built and priced."""
        fits = self._fits.get(name)
        if fits is None:
            fits = self._fits[name] = [f for f in (AffineOps(build, 1, _TILE - 1),
                                                   AffineOps(build, _TILE, _LARGEST)) if f.ok]
        for f in fits:
            if f.covers(x):
                lo = max(f.lo[0], x - x % _GRID)
                hi = min(f.hi[0], lo + _GRID - 1)
                # (sizes priced before get the same numbers again)
                rows = f.grid(self.pricer, np.arange(lo, hi + 1)).tolist()
                cache.update(zip(range(lo, hi + 1), map(tuple, rows), strict=True))
                return cache[x]
        v = cache[x] = self.pricer.vector(build(x))
        return v

    def body(self, tokens: int) -> Vector:
        v = self._body.get(tokens)
        return v if v is not None else self._fitted("body", self.model.body, tokens, self._body)

    def head(self, sequences: int) -> Vector:
        v = self._head.get(sequences)
        return v if v is not None else self._fitted("head", self.model.head, sequences,
                                                    self._head)

    def prefill(self, tokens: int, cached: int, pairs: int, sequences: int) -> Vector:
        key = (tokens, cached, pairs, sequences)
        v = self._prefill.get(key)
        if v is None:
            if len(self._prefill) >= _PREFILL_CACHE:
                self._prefill.clear()
            fit = self._prefill_fit(sequences)
            if fit.ok and fit.covers(tokens, cached, pairs):
                v = fit.vector(self.pricer, tokens, cached, pairs)
            else:
                v = self.pricer.vector(self.model.prefill_extra(tokens, cached, float(pairs),
                                                                sequences))
            self._prefill[key] = v
        return v

    def _prefill_fit(self, sequences: int) -> AffineOps:
        """The prompt-attention ops of ``sequences`` chunks, affine in (new tokens, cached
        tokens, pairs) once each chunk has a GEMM tile of rows on average (fitted once)."""
        fit = self._prefill_fits.get(sequences)
        if fit is None:
            longest = self.model.model.max_seq_len
            fit = self._prefill_fits[sequences] = AffineOps(
                lambda t, c, p: self.model.prefill_extra(t, c, float(p), sequences),
                (_TILE * sequences, 0, 0),
                (longest, longest, longest * longest + longest * (longest + 1) // 2))
        return fit

    def _fresh_prefill(self, tokens: int, pairs: int) -> Vector:
        """The prompt attention of one fresh chunk (no cached tokens, so ``pairs`` is
        ``tokens·(tokens + 1)/2``), stored in ``_fresh``. Like the body, a block of sizes
        is priced at once from the fitted lines (a run meets thousands of prompt lengths,
        and one numpy pass over 512 costs about what a few priced one by one do)."""
        assert pairs == tokens * (tokens + 1) // 2
        fit = self._prefill_fit(1)
        if not (fit.ok and fit.covers(tokens, 0, pairs)):
            v = self.prefill(tokens, 0, pairs, 1)
            _put(self._fresh, tokens, v)
            return v
        lo = max(fit.lo[0], tokens - tokens % _GRID)
        t = np.arange(lo, min(fit.hi[0], lo + _GRID - 1) + 1)
        p = t * (t + 1) // 2
        t, p = t[p <= fit.hi[2]], p[p <= fit.hi[2]]  # (the pairs grow with the tokens)
        rows = fit.grid(self.pricer, t, np.zeros_like(t), p).tolist()
        fresh = self._fresh
        _put(fresh, int(t[-1]), None)
        fresh[lo:lo + len(rows)] = map(tuple, rows)
        return fresh[tokens]

    def _decode_parts(self, batch: int) -> DecodeStep:
        """A decode step of ``batch`` sequences: the cost of everything that does not depend
        on the context (body, head and decode ops; and the decode ops alone), and timers for
        the ops that do (affine in the total context)."""
        parts = self._decode.get(batch)
        if parts is None:
            lo = self.model.decode_extra(batch, batch)
            hi = self.model.decode_extra(batch, 2 * batch)
            fixed: list[ComputeOp | CommOp] = []
            timers = []
            for a, b in zip(lo, hi, strict=True):
                if a == b:
                    fixed.append(a)
                elif isinstance(a, ComputeOp) and isinstance(b, ComputeOp):
                    timers.append(timer(self.hw, AffineOp.through(a, b, batch, 2 * batch)))
                else:
                    raise ValueError(f"decode op {a.name} depends on the context but is not "
                                     f"a compute op")
            own = self.pricer.vector(fixed)
            const = _add(self.body(batch), self.head(batch), own)
            parts = self._decode[batch] = DecodeStep(const, own, timers, batch)
        return parts

    # ---- what the engine asks -------------------------------------------------------------
    def step_time(self, usage: Usage, prefill_tokens: int, prefill_cached: int,
                  prefill_pairs: int, prefill_sequences: int, decode_batch: int,
                  decode_context: int) -> float:
        """Seconds of one iteration with prompt chunks (in aggregate) and decode steps,
        counted in ``usage``."""
        if prefill_tokens == 0:
            run = self.run_price(decode_batch, decode_context, 1)
            self.use_run(usage, decode_batch, decode_context, run, 1, run.time_s[0])
            return run.time_s[0]
        tokens = prefill_tokens + decode_batch
        sequences = prefill_sequences + decode_batch
        if prefill_sequences == 1 and not prefill_cached:
            fresh = self._fresh
            pre = fresh[prefill_tokens] if prefill_tokens < len(fresh) else None
            if pre is None:
                pre = self._fresh_prefill(prefill_tokens, prefill_pairs)
        else:
            pre = self._prefill.get((prefill_tokens, prefill_cached, prefill_pairs,
                                     prefill_sequences))
            if pre is None:
                pre = self.prefill(prefill_tokens, prefill_cached, prefill_pairs,
                                   prefill_sequences)
        at = self._body_at
        body = at[tokens] if tokens < len(at) else None
        if body is None:
            body = self.body(tokens)
            _put(at, tokens, body)
        head = self._head.get(sequences) or self.head(sequences)
        time = body[TIME] + head[TIME] + pre[TIME]
        usage.mixed.extend((tokens, sequences, decode_batch, decode_context))
        acc = usage.prefill
        acc[0] += pre[0]
        acc[1] += pre[1]
        acc[2] += pre[2]
        acc[3] += pre[3]
        acc[4] += pre[4]
        acc[5] += pre[5]
        if decode_batch:
            parts = self._decode.get(decode_batch) or self._decode_parts(decode_batch)
            time = time + parts.own[TIME]
            if decode_context >= parts.memory_from:  # python_run's usual case, one step
                b0, b1, rate, overhead = parts.memory
                step = time + ((b0 + b1 * decode_context) / rate + overhead)
                usage.timer_s += step - time
                return step
            if parts.rows:
                times, bound = python_run(parts, time, decode_context, decode_batch, 1)
                usage.timer_s += times[0] - time
                if bound is not None:
                    usage.compute_bound_s += bound[0]
                return times[0]
        return time

    def run_price(self, batch: int, context: int, steps: int) -> RunPrice:
        """``steps`` decode steps of ``batch`` sequences whose total context is ``context``
        at the first step and grows by ``batch`` per step.

        Step ``i`` costs ``const + core(context + i·batch)``, added in that order whether the
        run has one step or many, so the times agree to the last bit.
        """
        parts = self._decode.get(batch) or self._decode_parts(batch)
        if steps > _PYTHON_RUN:
            return numpy_run(parts, context, batch, steps)
        if context >= parts.memory_from:  # python_run's usual case, inline
            const = parts.const_s
            b0, b1, rate, overhead = parts.memory
            return RunPrice([const + ((b0 + b1 * x) / rate + overhead)
                             for x in range(context, context + batch * steps, batch)], None)
        times, bound = python_run(parts, parts.const_s, context, batch, steps)
        return RunPrice(times, bound)

    @staticmethod
    def use_run(usage: Usage, batch: int, context: int, run: RunPrice, steps: int,
                busy_s: float) -> None:
        """Count the first ``steps`` steps of ``run``, which took ``busy_s``, in ``usage``
        (the replica does the same inline)."""
        usage.const[batch] += steps
        usage.const_x[batch] += steps * context + batch * steps * (steps - 1) // 2
        usage.timer_s += busy_s
        if run.compute_bound_s is not None:
            usage.compute_bound_s += sum(run.compute_bound_s[:steps])

    def totals(self, usage: Usage) -> np.ndarray:
        """The summed cost vector (:data:`FIELDS`) of what ``usage`` counted."""
        v = np.array(usage.prefill)
        mixed = np.frombuffer(usage.mixed, dtype=np.int64).reshape(-1, 4)
        for name, column, cache in (("body", 0, self._body), ("head", 1, self._head)):
            if len(mixed):
                keys, counts, _ = _tally(mixed[:, column])
                v += counts.astype(float) @ self._dense(name, cache)[keys]
        decoding = mixed[mixed[:, 2] > 0]
        tables = []
        if len(decoding):
            batches, n, x = _tally(decoding[:, 2], decoding[:, 3])
            tables.append((batches, n, x, False))
        if usage.const:
            table, sums = usage.const, usage.const_x
            tables.append((np.fromiter(table, dtype=np.int64, count=len(table)),
                           np.fromiter(table.values(), dtype=np.int64, count=len(table)),
                           np.array([sums[b] for b in table], dtype=np.int64), True))
        time = usage.timer_s
        flops = nbytes = 0.0
        if tables:
            const, own, const_s, lines = self._dense_decode()
            for batches, counts, sizes, whole in tables:
                n, x = counts.astype(float), sizes.astype(float)
                v += n @ (const if whole else own)[batches]
                if whole:
                    time -= float(n @ const_s[batches])
                f0, f1, b0, b1 = lines[batches].T
                flops += float(n @ f0 + x @ f1)
                nbytes += float(n @ b0 + x @ b1)
        v[TIME] += time
        v[FLOPS] += flops
        v[BYTES] += nbytes
        v[COMPUTE_BOUND] += usage.compute_bound_s
        v[MEMORY_BOUND] += time - usage.compute_bound_s
        return v

    def _dense_decode(self) -> tuple[np.ndarray, ...]:
        """Per decode batch size: the constant and own cost vectors, the constant seconds and
        the summed FLOP and byte lines of the context-dependent ops."""
        dense = self._dense_cache.get("decode")
        if dense is None or dense[0] != len(self._decode):
            size = max(self._decode) + 1
            const, own = np.zeros((size, len(FIELDS))), np.zeros((size, len(FIELDS)))
            const_s, lines = np.zeros(size), np.zeros((size, 4))
            for b, parts in self._decode.items():
                const[b], own[b], const_s[b] = parts.const, parts.own, parts.const_s
                for f0, f1, b0, b1, *_ in parts.rows:
                    lines[b] += (f0, f1, b0, b1)
            dense = self._dense_cache["decode"] = (len(self._decode),
                                                   (const, own, const_s, lines))
        return dense[1]

    def _dense(self, name: str, cache: dict[int, Vector]) -> np.ndarray:
        """The cached costs as an array indexed by size (rebuilt when sizes were added)."""
        dense = self._dense_cache.get(name)
        if dense is None or dense[0] != len(cache):
            table = np.zeros((max(cache) + 1, len(FIELDS)))
            table[np.fromiter(cache, dtype=np.int64, count=len(cache))] = list(cache.values())
            dense = self._dense_cache[name] = (len(cache), table)
        return dense[1]

    # ---- the same, as vectors (for tests and callers that want every field) ----------------
    def step(self, prefill_tokens: int, prefill_cached: int, prefill_pairs: int,
             prefill_sequences: int, decode_batch: int, decode_context: int) -> np.ndarray:
        """The cost vector of one iteration mixing prompt chunks and decode steps."""
        usage = Usage()
        time = self.step_time(usage, prefill_tokens, prefill_cached, prefill_pairs,
                              prefill_sequences, decode_batch, decode_context)
        v = self.totals(usage)
        v[TIME] = time
        return v

    def decode_run(self, batch: int, context: int, steps: int) -> DecodeRun:
        """``steps`` decode steps: each step's time, and their summed cost vector."""
        usage = Usage()
        run = self.run_price(batch, context, steps)
        self.use_run(usage, batch, context, run, steps, sum(run.time_s))
        return DecodeRun(np.array(run.time_s), self.totals(usage))
