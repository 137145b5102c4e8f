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
- ops are priced by a :class:`~simulator.perf.pricer.Pricer` that looks the hardware up
  once per precision and each collective up once per shape.

The engine only needs an iteration's time; what the iterations did in total (FLOPs, bytes,
network and bound seconds) is counted per replica in a :class:`~simulator.engine.serving.
usage.Usage` and priced once at the end (:meth:`IterationCost.totals`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from simulator.engine.serving.decode_steps import (
    DecodeStep,
    RunPrice,
    price_run,
    split_by_context,
)
from simulator.engine.serving.stack_cost import StackCost
from simulator.engine.serving.usage import DecodeTables, Usage, usage_totals
from simulator.perf.affine_ops import AffineOps
from simulator.perf.local_attention import attended_context, attended_prefill
from simulator.perf.opspec import TILE_ROWS
from simulator.perf.pricer import COST_FIELDS, Cost, Op, Pricer, add_costs
from simulator.perf.serving_iteration import IterationModel
from simulator.profiles.hardware import HardwareProfile

if TYPE_CHECKING:
    from simulator.engine.serving.speculative import SpeculativeCost

__all__ = ["Cost", "IterationCost", "RunPrice", "Usage"]

_PREFILL_CACHE = 1 << 16  # entries kept before the prompt-attention cache is cleared
_TILE = int(TILE_ROWS)  # GEMM sizes are flat below one tile of rows, affine above
_LARGEST = 1 << 24  # the largest token count the fitted lines are asked to cover
_GRID = 512  # sizes priced together when one of them is first needed


def _put(table: list, i: int, v: object) -> None:
    """``table[i] = v``, growing the table with None as needed."""
    if i >= len(table):
        table.extend([None] * (i + 1 - len(table)))
    table[i] = v


class IterationCost:
    """Cached prices of iterations on one replica's hardware and layout: what the serving
    engine asks for an iteration's time (:meth:`step_time`, :meth:`run_price`) and, at the
    end, for what the iterations did (:meth:`totals`)."""

    def __init__(self, hw: HardwareProfile, model: IterationModel,
                 stack: StackCost | None = None, speculation: SpeculativeCost | None = None):
        self.hw = hw
        self.model = model
        self.stack = stack if stack is not None and not stack.free else None
        # speculative decoding: a decode step drafts and verifies ``verify`` tokens a sequence,
        # and its total context follows the token clock ``rate`` (None: one token a step)
        self.speculation = speculation
        self.verify = 1 if speculation is None else speculation.verify
        self.rate: float | None = None
        self.local = model.model.local_attention is not None  # local-attention layers
        self.pricer = Pricer(hw)
        self._body: dict[int, Cost] = {}
        self._head: dict[int, Cost] = {}
        self._prefill: dict[tuple[int, int, int, int], Cost] = {}
        # the same costs in lists indexed by size, for the engine's lookups (a list slot is
        # fewer memory reads than a dict entry, which a long run finds cold): the body by
        # new tokens, and the prompt attention of one fresh chunk (no cached tokens) by its
        # tokens, which determine its key
        self._body_at: list[Cost | None] = []
        self._fresh: list[Cost | None] = []
        self._decode: dict[int, DecodeStep] = {}
        self._fits: dict[str, list[AffineOps]] = {}
        # blocks of sizes priced together (the costs in rows), by group and first size; a
        # size's Cost is made from its row when first asked
        self._blocks: dict[tuple[str, int], list[list[float]]] = {}
        self._prefill_fits: dict[int, AffineOps] = {}
        self._tables: dict[str, tuple[int, np.ndarray]] = {}
        self._decode_tables: DecodeTables | None = None

    # ---- op groups ----------------------------------------------------------------------
    def _fitted(self, name: str, build: Callable[[int], list[Op]], x: int,
                cache: dict[int, Cost]) -> Cost:
        """The cost of ``build(x)``, stored in ``cache``: from the fitted lines, a block of
        sizes at once, when ``x`` is in a fitted range; else built and priced."""
        fits = self._fits.get(name)
        if fits is None:
            fits = self._fits[name] = [f for f in (AffineOps(build, 1, _TILE - 1),
                                                   AffineOps(build, _TILE, _LARGEST)) if f.ok]
        for f in fits:
            if f.covers(x):
                lo = max(f.lo[0], x - x % _GRID)
                rows = self._blocks.get((name, lo))
                if rows is None:
                    hi = min(f.hi[0], lo + _GRID - 1)
                    rows = self._blocks[(name, lo)] = f.grid(self.pricer,
                                                             np.arange(lo, hi + 1)).tolist()
                v = cache[x] = Cost.of_row(rows[x - lo])
                return v
        v = cache[x] = self.pricer.cost(build(x))
        return v

    def body(self, tokens: int) -> Cost:
        """The ops that depend only on the iteration's new tokens."""
        at = self._body_at
        v = at[tokens] if tokens < len(at) else None
        if v is not None:
            return v
        priced = self._body.get(tokens) or self._fitted("body", self.model.body, tokens,
                                                        self._body)
        _put(at, tokens, priced)
        return priced

    def head(self, sequences: int) -> Cost:
        """The LM head and sampling of ``sequences`` sequences."""
        v = self._head.get(sequences)
        return v if v is not None else self._fitted("head", self.model.head, sequences,
                                                    self._head)

    def prefill(self, tokens: int, cached: int, pairs: int, sequences: int) -> Cost:
        """The attention of ``sequences`` prompt chunks of ``tokens`` new tokens in all over
        ``cached`` cached ones, ``pairs`` (query, key) pairs in all."""
        key = (tokens, cached, pairs, sequences)
        v = self._prefill.get(key)
        if v is None:
            if len(self._prefill) >= _PREFILL_CACHE:
                self._prefill.clear()
            fit = self._prefill_fit(sequences)
            if fit.ok and fit.covers(tokens, cached, pairs):
                v = fit.cost(self.pricer, tokens, cached, pairs)
            else:
                v = self.pricer.cost(self.model.prefill_extra(tokens, cached, float(pairs),
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

    def _fresh_prefill(self, tokens: int, pairs: int) -> Cost:
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
        rows = self._blocks.get(("fresh", lo))
        if rows is None:
            t = np.arange(lo, min(fit.hi[0], lo + _GRID - 1) + 1)
            p = t * (t + 1) // 2
            t, p = t[p <= fit.hi[2]], p[p <= fit.hi[2]]  # (the pairs grow with the tokens)
            rows = self._blocks[("fresh", lo)] = fit.grid(self.pricer, t, np.zeros_like(t),
                                                          p).tolist()
        v = Cost.of_row(rows[tokens - lo])
        _put(self._fresh, tokens, v)
        return v

    def _prompt(self, tokens: int, cached: int, pairs: int, sequences: int) -> Cost:
        """:meth:`prefill` as the engine asks it: one fresh chunk (no cached tokens) looked
        up by its length, in a list. A model with local-attention layers prices the layer
        average of what its chunks attend (:mod:`simulator.perf.local_attention`)."""
        if self.local:
            cached, pairs = attended_prefill(self.model.model, tokens, cached, pairs, sequences)
            return self.prefill(tokens, cached, pairs, sequences)
        if sequences == 1 and not cached:
            fresh = self._fresh
            v = fresh[tokens] if tokens < len(fresh) else None
            return v if v is not None else self._fresh_prefill(tokens, pairs)
        return self.prefill(tokens, cached, pairs, sequences)

    def decode_step(self, batch: int) -> DecodeStep:
        """A decode step of ``batch`` sequences: the cost of everything that does not depend
        on the context (body, head and decode ops; and the decode ops alone), and timers for
        the ops that do (affine in the total context)."""
        step = self._decode.get(batch)
        if step is None:
            spec = self.speculation
            if spec is None:
                lo = self.model.decode_extra(batch, batch)
                hi = self.model.decode_extra(batch, 2 * batch)
            else:  # the verify pass's and the draft passes' attention
                lo, hi = spec.context_ops(batch, batch), spec.context_ops(batch, 2 * batch)
            fixed, timers = split_by_context(self.hw, lo, hi, batch, 2 * batch)
            own = self.pricer.cost(fixed)
            if spec is not None:  # the draft passes' body and head
                own = add_costs(own, spec.draft_const(batch))
            floor, serial, rows = self._graph(batch)
            rows *= self.verify
            const = add_costs(self.body(rows), self.head(rows), own)
            step = self._decode[batch] = DecodeStep.of(const, own, timers, batch, floor=floor,
                                                       serial=serial, several=spec is not None)
        return step

    def _graph(self, batch: int) -> tuple[float, float, int]:
        """The serving stack's (floor, serial) seconds of a decode step of ``batch``
        sequences, and the rows its GEMMs run: a captured graph runs the padded batch
        (no stack: no floor, no host time, the batch itself)."""
        stack = self.stack
        if stack is None:
            return 0.0, 0.0, batch
        floor, serial = stack.decode(batch)
        return floor, serial, stack.padded(batch) or batch

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
        if self.stack is not None and self.stack.decode_buckets:  # attention at the bucket
            decode_context = self.stack.pad_context(decode_context, decode_batch)
        if self.local and decode_batch:  # the layer-averaged keys (perf.local_attention)
            decode_context = attended_context(self.model.model, decode_batch, decode_context)
        tokens = prefill_tokens + decode_batch * self.verify
        sequences = prefill_sequences + decode_batch * self.verify  # LM-head rows
        pre = self._prompt(prefill_tokens, prefill_cached, prefill_pairs, prefill_sequences)
        if self.speculation is not None:  # the drafter fills its own cache of the prompt
            pre = add_costs(pre, self.speculation.draft_prefill(
                prefill_tokens, prefill_cached, prefill_pairs, prefill_sequences))
        time = self.body(tokens).time_s + self.head(sequences).time_s + pre.time_s
        usage.mixed.extend((tokens, sequences, decode_batch, decode_context))
        usage.prefill.add(pre)
        if not decode_batch:
            return self._with_stack(usage, time, sequences, tokens)
        step = self.decode_step(decode_batch)
        time = time + step.own.time_s
        total, compute_bound = step.time(time, decode_context)
        usage.timer_s += total - time
        if compute_bound:
            usage.compute_bound_s += compute_bound
        return self._with_stack(usage, total, sequences, tokens)

    def _with_stack(self, usage: Usage, device_s: float, sequences: int, tokens: int) -> float:
        """An iteration with prompt chunks that keeps the device ``device_s``, with the
        serving stack's share added (counted in ``usage.host_s``)."""
        if self.stack is None:
            return device_s
        floor, serial = self.stack.mixed(sequences, tokens)
        time = (device_s if device_s > floor else floor) + serial
        usage.host_s += time - device_s
        return time

    def run_price(self, batch: int, context: int, steps: int, first: int = 0) -> RunPrice:
        """``steps`` decode steps of ``batch`` sequences whose total context is ``context``
        at the first step (the replica's step ``first``) and grows by ``batch`` per step
        (with speculative decoding, by ``batch`` times the tokens the clock advances).

        Step ``i`` costs ``const + core(context + i·batch)``, added in that order whether the
        run has one step or many, so the times agree to the last bit.
        """
        step = self.decode_step(batch)
        rate = self.rate
        stack = self.stack
        bucketed = stack is not None and stack.decode_buckets
        if rate is None and not bucketed and not self.local:
            return price_run(step, step.const.time_s, context, batch, steps)
        if rate is None:
            contexts = [context + batch * i for i in range(steps)]
        else:
            start = int(first * rate)
            contexts = [context + batch * (int((first + i) * rate) - start)
                        for i in range(steps)]
        if bucketed:  # the attention runs at each step's decode bucket
            assert stack is not None
            contexts = [stack.pad_context(c, batch) for c in contexts]
        if self.local:  # each step's layer-averaged keys (simulator.perf.local_attention)
            model = self.model.model
            contexts = [attended_context(model, batch, c) for c in contexts]
        return price_run(step, step.const.time_s, context, batch, steps, contexts)

    @staticmethod
    def use_run(usage: Usage, batch: int, context: int, run: RunPrice, steps: int,
                busy_s: float) -> None:
        """Count the first ``steps`` steps of ``run``, which took ``busy_s``, in ``usage``."""
        usage.const[batch] += steps
        usage.const_x[batch] += (steps * context + batch * steps * (steps - 1) // 2
                                 if run.contexts is None else sum(run.contexts[:steps]))
        if run.device_s is not None:  # the device's share, and the serving stack's
            device = sum(run.device_s[:steps])
            usage.host_s += busy_s - device
            busy_s = device
        usage.timer_s += busy_s
        if run.compute_bound_s is not None:
            usage.compute_bound_s += sum(run.compute_bound_s[:steps])

    def totals(self, usage: Usage) -> Cost:
        """What the iterations counted in ``usage`` cost in all."""
        return usage_totals(usage, self._table("body", self._body),
                            self._table("head", self._head), self._decode_table())

    def _decode_table(self) -> DecodeTables | None:
        """The decode steps' costs as arrays indexed by batch size (rebuilt when sizes were
        added)."""
        tables = self._decode_tables
        if self._decode and (tables is None or tables.entries != len(self._decode)):
            tables = self._decode_tables = DecodeTables.of(self._decode)
        return tables

    def _table(self, name: str, cache: dict[int, Cost]) -> np.ndarray | None:
        """The cached costs as an array indexed by size, columns in :class:`Cost`'s order
        (rebuilt when sizes were added)."""
        if not cache:
            return None
        entries, table = self._tables.get(name, (0, None))
        if table is None or entries != len(cache):
            table = np.zeros((max(cache) + 1, len(COST_FIELDS)))
            table[np.fromiter(cache, dtype=np.int64, count=len(cache))] = [
                c.row() for c in cache.values()]
            self._tables[name] = (len(cache), table)
        return table

