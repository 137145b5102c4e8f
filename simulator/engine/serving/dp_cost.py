"""Iteration prices of an attention-DP replica: the busiest rank's attention, every rank's
experts.

:class:`~simulator.engine.serving.iteration_cost.IterationCost` prices an iteration from the
replica's aggregate batch. With attention data parallelism the layer waits for the busiest
rank (:mod:`simulator.engine.serving.dp_ranks`), so this subclass prices:

- the body on the busiest rank's tokens, with the experts and all-to-alls of the whole
  iteration (:meth:`~simulator.perf.serving_iteration.IterationModel.rank_body`), cached by
  (rank tokens, total tokens, kernel mode);
- the LM head, prompt attention and decode attention on the busiest rank's part;
- a decode-only step of ``batch`` sequences with ``ceil(batch/dp)`` on the busiest rank,
  whose context is its share ``ceil(batch/dp)/batch`` of the total (the timers are lines in
  the total context, so runs of decode steps are priced as for any replica), with DeepEP's
  low-latency kernels; each rank's host launches its own batch (the serving stack's share
  and graph padding are the busiest rank's). Where the step replays a captured graph every
  rank replays the same one (the ranks meet in its collectives, whose shapes are fixed at
  capture), padded to the busiest rank's size, so an all-gather MoE exchange moves ``dp``
  times the padded rows; the padding rows are copies of one dummy request, routed alike,
  so they add no expert to the step (their rows on one expert are not priced).

What the iterations did is counted as usual: decode-only steps by batch size, and a mixed
iteration's whole cost as it runs.
"""

from __future__ import annotations

from simulator.engine.serving.decode_steps import DecodeStep, split_by_context
from simulator.engine.serving.dp_ranks import RankBatch, busiest_rank
from simulator.engine.serving.iteration_cost import IterationCost
from simulator.engine.serving.stack_cost import StackCost
from simulator.engine.serving.usage import Usage
from simulator.perf.local_attention import attended_context
from simulator.perf.pricer import Cost, add_costs
from simulator.perf.serving_iteration import IterationModel
from simulator.profiles.hardware import HardwareProfile


class DataParallelCost(IterationCost):
    """:class:`IterationCost` for a replica whose layout has attention DP ranks."""

    def __init__(self, hw: HardwareProfile, model: IterationModel,
                 stack: StackCost | None = None):
        super().__init__(hw, model, stack)
        self.dp = model.layout.dp
        self._rank_bodies: dict[tuple[int, int, bool, int], Cost] = {}
        self._rank_local: dict[int, Cost] = {}

    def rank_body(self, rank_tokens: int, total_tokens: int, low_latency: bool,
                  gathered_tokens: int | None = None) -> Cost:
        """The body with the busiest rank's tokens and the whole iteration's experts: the
        rank's own ops from fitted lines (cached by its tokens, like a replica's body), the
        expert exchange priced per (rank tokens, total tokens, kernel mode, gathered rows:
        what an all-gather exchange moves, ``total_tokens`` unless given)."""
        gathered = total_tokens if gathered_tokens is None else gathered_tokens
        key = (rank_tokens, total_tokens, low_latency, gathered)
        v = self._rank_bodies.get(key)
        if v is None:
            local = self._rank_local.get(rank_tokens) or self._fitted(
                "rank_local", self.model.rank_local, rank_tokens, self._rank_local)
            exchange = self.pricer.cost(self.model.rank_exchange(
                rank_tokens, total_tokens, low_latency=low_latency, gathered_tokens=gathered))
            v = self._rank_bodies[key] = add_costs(local, exchange)
        return v

    def decode_step(self, batch: int) -> DecodeStep:
        """A decode step of ``batch`` sequences over all ranks (see the module docstring)."""
        step = self._decode.get(batch)
        if step is None:
            rank = -(-batch // self.dp)
            # built at the rank's contexts rank and 2·rank, read as lines in the total
            # context (batch and 2·batch): the rank's share rank/batch of it
            fixed, timers = split_by_context(self.hw, self.model.decode_extra(rank, rank),
                                             self.model.decode_extra(rank, 2 * rank),
                                             batch, 2 * batch)
            own = self.pricer.cost(fixed)
            floor, serial, rows = self._graph(rank)  # each rank's graph runs its padded batch
            replayed = self.stack is not None and self.stack.padded(rank) is not None
            total = max(batch, rows)
            body = self.rank_body(rows, total, True, self.dp * rows if replayed else total)
            const = add_costs(body, self.head(rows), own)
            step = self._decode[batch] = DecodeStep.of(const, own, timers, batch, floor=floor,
                                                       serial=serial)
        return step

    def step_time(self, usage: Usage, prefill_tokens: int, prefill_cached: int,
                  prefill_pairs: int, prefill_sequences: int, decode_batch: int,
                  decode_context: int) -> float:
        """Seconds of one iteration, priced on its busiest rank and counted in ``usage``."""
        if prefill_tokens == 0:
            return super().step_time(usage, 0, 0, 0, 0, decode_batch, decode_context)
        whole = RankBatch(prefill_tokens, prefill_cached, prefill_pairs, prefill_sequences,
                          decode_batch, decode_context)
        r = busiest_rank(self.dp, whole)
        cost = add_costs(self.rank_body(r.tokens, whole.tokens, False), self.head(r.sequences),
                         self._prompt(r.prompt_tokens, r.prompt_cached, r.prompt_pairs,
                                      r.prompt_sequences))
        if r.decode_batch:
            cost = add_costs(cost, self.pricer.cost(
                self.model.decode_extra(r.decode_batch, attended_context(
                    self.model.model, r.decode_batch, r.decode_context))))
        usage.prefill.add(cost)
        return self._with_stack(usage, cost.time_s, r.sequences, r.tokens)
