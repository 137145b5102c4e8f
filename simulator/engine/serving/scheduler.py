"""Iteration-level continuous batching on one replica (the policy of vLLM's scheduler).

At every iteration boundary :meth:`Scheduler.plan` decides the next iteration:

1. **Running sequences first.** Every decoding sequence takes one token of the budget and,
   when its context crosses a block boundary, one more KV block. If the cache cannot hold
   them, the most recently admitted running sequence is **preempted by recompute**: its
   blocks are freed and it goes back to the front of the queue; when readmitted it prefills
   its prompt and the tokens it had generated (producing its next token), then decodes on.
   Preemption repeats until the rest fits; an iteration that preempts admits nobody.
2. **Prompts in progress** continue with their next chunk, in admission order.
3. **Admission, first come first served**: the head of the queue is admitted while the batch
   has room (``max_batch_size`` sequences, prefilling ones included), the token budget
   (``max_tokens_per_step``, per iteration) has tokens left and the cache has free blocks
   for its whole prompt. A request that cannot be admitted blocks those behind it. With
   ``reserve`` (``kv_reservation: full_sequence``) it also needs blocks for its whole
   sequence beside those promised to the running ones, so nobody is ever preempted.

With ``chunked_prefill`` a prompt takes what is left of the budget (at most the chunk size
when one is given) and finishes over several iterations; without it a prompt is prefilled
whole in one iteration and must fit in what is left of the budget, except in an iteration
with nothing else to do. A request that arrives with its KV cache (disaggregated decode,
``target == 0``) joins the decoding sequences directly.

With ``static`` batching (a stack whose ``admission`` is static) nobody is admitted while
any sequence of the batch is still running: a batch is admitted whole when the replica is
empty, its prompts prefilled together in one iteration (the token budget does not split
them), and it decodes until its longest member ends; each member completes at its own last
token.

With prefix caching (a :class:`~simulator.engine.serving.prefix_cache.PrefixCache`), an
admitted prompt starts after the leading blocks found in the cache: its chunks carry only
the rest, their attention reads the cached tokens, and blocks held by other running
requests cost it no room. Blocks in use count a shared block once.

A request is its number ``r`` in :class:`~simulator.engine.serving.requests.Requests`,
whose columns the scheduler reads and writes. Decoding sequences are kept by
:class:`~simulator.engine.serving.decoding.Decoding`, so a run of decode-only iterations
updates nothing per token, and the blocks, contexts and next finish of a run cost O(1) to
find.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import TYPE_CHECKING

from simulator.engine.serving.decoding import Decoding
from simulator.engine.serving.iteration_plan import IterationOutcome, Plan
from simulator.engine.serving.kv_cache import KVCapacity, ceil_div
from simulator.engine.serving.kv_reservation import Reservations
from simulator.engine.serving.prefix_cache import PrefixCache
from simulator.engine.serving.requests import Requests
from simulator.profiles.inference import Batching

if TYPE_CHECKING:
    from simulator.engine.serving.speculative import Speculation

_UNLIMITED = 1 << 62  # the token budget of a static batch's prefill: none


class Role(StrEnum):
    """What a replica does with the requests routed to it."""

    MIXED = "mixed"  # prefill and decode (no disaggregation)
    PREFILL = "prefill"  # hands each request off after its first token
    DECODE = "decode"  # receives requests with their KV cache


class Scheduler:
    """One replica's queue, running sequences and KV blocks.

    ``iteration`` counts the iterations run so far: the clock of the decoding sequences'
    contexts and end iterations.
    """

    __slots__ = ("_admissions", "block", "capacity", "chunk", "chunked", "dec", "iteration",
                 "kv_blocks", "max_batch", "max_tokens", "prefill_call", "prefilling", "prefix",
                 "prompt_blocks", "requests", "reservations", "role", "static", "steps_for",
                 "verify", "waiting")

    def __init__(self, *, requests: Requests, capacity: KVCapacity, batching: Batching,
                 role: Role = Role.MIXED, static: bool = False,
                 speculation: Speculation | None = None, prefix: PrefixCache | None = None,
                 reserve: bool = False, prefill_call: int | None = None):
        self.requests = requests
        self.prefill_call = prefill_call  # prompts one prefill call runs (None: all at once)
        self.capacity = capacity
        self.kv_blocks = capacity.blocks
        self.block = capacity.block_tokens
        self.max_batch = batching.max_batch_size
        self.max_tokens = batching.max_tokens_per_step
        chunk = batching.chunked_prefill
        self.static = static
        self.chunked = chunk is not False and not static
        self.chunk = self.max_tokens if chunk is True or chunk is False else int(chunk)
        self.role = role
        self.waiting: deque[int] = deque()
        self.prefilling: list[int] = []
        # KV blocks held by prompts: in progress, or done on a prefill replica and still
        # being sent to the decode replica
        self.prompt_blocks = 0
        self.iteration = 0
        # speculative decoding: a decoding sequence takes ``verify`` tokens of the budget,
        # draws the iterations its tokens take, and its context follows the token clock
        self.verify = 1 if speculation is None else speculation.spec.draft_tokens + 1
        self.steps_for = None if speculation is None else speculation.sampler.steps_for
        self.dec = Decoding(self.block, None if speculation is None else speculation.rate)
        self._admissions = 0
        # computed blocks kept by content (batching.prefix_caching); None: none are kept
        self.prefix = prefix
        self.reservations = Reservations(requests=requests, block_tokens=self.block,
                                         capacity=self.kv_blocks, enabled=reserve,
                                         prefill=role is Role.PREFILL)

    # ---- blocks ------------------------------------------------------------------------------
    def blocks_in_use(self) -> int:
        """KV blocks in use at the next iteration (the decoding sequences at it, and the
        prompts)."""
        used = self.dec.blocks_at(self.iteration) + self.prompt_blocks
        return used if self.prefix is None else used + self.prefix.adjustment

    def admission_blocks(self, r: int) -> int:
        """Blocks ``r`` needs to be admitted: its prompt, or its context if its KV came
        with it; less the leading prompt blocks other requests hold in the prefix cache."""
        reqs = self.requests
        target = reqs.target[r]
        blocks = ceil_div(target or reqs.prompt_len[r] + reqs.generated[r], self.block)
        if self.prefix is not None and target:
            blocks -= self.prefix.match(r, target)[1]
        return blocks

    # ---- planning ---------------------------------------------------------------------------
    def _join(self, r: int, context: int, generated: int) -> None:
        """``r`` decodes from the next iteration with ``context`` keys, ``generated``
        tokens out."""
        reqs, dec, now = self.requests, self.dec, self.iteration
        remaining = reqs.output_len[r] - generated
        if self.steps_for is None:
            dec.join(r, context - now, now + remaining, reqs.admission[r])
        else:
            dec.join(r, context - dec.tokens(now), now + self.steps_for(r, remaining),
                     reqs.admission[r])

    def _admit(self, r: int, now: float) -> None:
        reqs = self.requests
        if not reqs.admission[r]:  # first admission (on any replica)
            reqs.admitted_s[r] = now
        self._admissions += 1
        reqs.admission[r] = self._admissions
        self.reservations.hold(r)

    def _credit(self, r: int, reach: int) -> int:
        """Prompt tokens of ``r`` prefilled for the first time by a chunk that ends at
        token ``reach``: those past what was credited before, up to the prompt's end (a
        recomputation also prefills the tokens already generated, which are output)."""
        reqs = self.requests
        before = reqs.credited[r]
        reach = min(reach, reqs.prompt_len[r])
        if reach <= before:
            return 0
        reqs.credited[r] = reach
        return reach - before

    def _preempt_one(self) -> None:
        reqs, dec = self.requests, self.dec
        decoder_admission, victim = dec.latest() if dec.n else (-1, -1)
        prefill_admission = reqs.admission[self.prefilling[-1]] if self.prefilling else -1
        if decoder_admission > prefill_admission:
            r = victim
            base, end, _ = dec.leave(r)
            if self.steps_for is None:
                reqs.generated[r] = reqs.output_len[r] - (end - self.iteration)
            else:  # the tokens its context has gained on the token clock
                reqs.generated[r] = min(reqs.output_len[r] - 1,
                                        base + dec.tokens(self.iteration) - reqs.prompt_len[r])
            computed = reqs.prompt_len[r] + reqs.generated[r] - 1
        else:
            r = self.prefilling.pop()
            self.prompt_blocks -= ceil_div(reqs.target[r], self.block)
            computed = reqs.done[r]
        if self.prefix is not None:
            self.prefix.retire(r, computed)
        reqs.target[r] = reqs.prompt_len[r] + reqs.generated[r]
        reqs.done[r] = 0
        reqs.preemptions[r] += 1
        self.waiting.appendleft(r)
        self.reservations.release((r,))

    def could_admit(self, r: int, free_blocks: int) -> bool:
        """Whether ``r``, at the head of the queue, fits the batch, budget and ``free_blocks``."""
        n = self.dec.n
        if self.static and (n or self.prefilling):
            return False
        return (n + len(self.prefilling) < self.max_batch and self.max_tokens > n * self.verify
                and self.admission_blocks(r) <= free_blocks and self.reservations.admits(r))

    def plan(self, now: float) -> Plan:
        """Decide the next iteration at time ``now`` (see the module docstring)."""
        dec, cap = self.dec, self.kv_blocks
        need = self.blocks_in_use()
        preempted = 0
        while need > cap:
            self._preempt_one()
            preempted += 1
            need = self.blocks_in_use()
        if self.prefix is not None:
            self.prefix.evict_to(cap - need)
        plan = Plan()
        plan.preempted, plan.blocks = preempted, need
        if self.prefilling or self.waiting:
            if not self.static:
                budget = self._continue_prompts(plan)
                if not preempted:
                    self._admit_waiting(plan, budget, now)
            elif not (preempted or dec.n or self.prefilling):  # an empty replica: a batch
                self._admit_waiting(plan, _UNLIMITED, now)
        # (after admission: a request whose KV cache came with it decodes in this iteration)
        plan.decode_batch, plan.decode_context = dec.n, dec.context(self.iteration)
        return plan

    def _continue_prompts(self, plan: Plan) -> int:
        """Add the next chunk of each prompt in progress to ``plan``, in admission order;
        returns the token budget left."""
        reqs = self.requests
        budget = self.max_tokens - self.dec.n * self.verify
        for r in self.prefilling:
            if budget <= 0:
                break
            done = reqs.done[r]
            q = min(reqs.target[r] - done, budget, self.chunk)
            plan.chunks.append((r, q))
            plan.prompt_tokens += q
            plan.prompt_produced += self._credit(r, done + q)
            plan.prompt_cached += done
            plan.prompt_pairs += q * done + q * (q + 1) // 2
            budget -= q
        return budget

    def _admit_waiting(self, plan: Plan, budget: int, now: float) -> None:
        """Admit from the head of the queue into ``plan`` while it fits (FCFS)."""
        reqs, dec, waiting, cap = self.requests, self.dec, self.waiting, self.kv_blocks
        while waiting and dec.n + len(self.prefilling) < self.max_batch and budget > 0:
            r = waiting[0]
            target = reqs.target[r]
            found: list[int] = []  # its leading blocks in the prefix cache: one walk
            if self.prefix is None or not target:
                blocks = self.admission_blocks(r)
            else:
                found, held = self.prefix.lookup(r, target)
                blocks = ceil_div(target, self.block) - held
            if plan.blocks + blocks > cap or not self.reservations.admits(r):
                break
            if target == 0:  # arrived with its KV cache: decode right away
                waiting.popleft()
                self._admit(r, now)
                g = reqs.generated[r]
                self._join(r, reqs.prompt_len[r] + g, g)
                budget -= self.verify
            else:
                cached = len(found) * self.block
                if self.chunked:
                    q = min(target - cached, budget, self.chunk)
                elif target - cached <= budget or (not plan.chunks and dec.n == 0):
                    q = target - cached
                else:
                    break
                waiting.popleft()
                self._admit(r, now)
                self.prefilling.append(r)
                self.prompt_blocks += ceil_div(target, self.block)
                plan.chunks.append((r, q))
                plan.prompt_tokens += q
                plan.prompt_pairs += q * (q + 1) // 2
                if self.prefix is not None:
                    self._take_cached(r, plan, q, found)
                # served up to the chunk's end: a prompt's cached tokens are served too
                plan.prompt_produced += self._credit(r, reqs.done[r] + q)
                budget -= q
            plan.blocks += blocks
            if self.prefix is not None:
                self.prefix.evict_to(cap - plan.blocks)

    def _take_cached(self, r: int, plan: Plan, q: int, found: list[int]) -> None:
        """``r``, admitted with a first chunk of ``q`` tokens, takes its leading blocks
        ``found`` (the keys its admission's lookup found) from the prefix cache: its prefill
        starts after them, and the chunk's attention reads their K/V (cached tokens in
        ``plan``)."""
        assert self.prefix is not None
        reqs = self.requests
        cached = self.prefix.take(r, reqs.target[r], found)
        reqs.done[r] = cached
        plan.prompt_cached += cached
        plan.prompt_pairs += q * cached
        if not reqs.preemptions[r]:
            reqs.cached_tokens[r] = cached

    def run_limit(self, first: int) -> int:
        """How many decode-only iterations can run before a sequence finishes or the cache
        runs out, given the blocks in use at the first of them."""
        dec, now = self.dec, self.iteration
        prompts = self.prompt_blocks  # (and the blocks held once for several, when shared)
        if self.prefix is not None:
            prompts += self.prefix.adjustment
        iterations = dec.next_end() - now
        cap = self.kv_blocks
        # in k iterations a sequence gains g tokens (k - 1, or on the speculative token
        # clock) and crosses at most ceil(g / block) block boundaries
        grown = iterations - 1 if dec.rate is None else (dec.tokens(now + iterations - 1)
                                                          - dec.tokens(now))
        if (iterations <= 1 or first + dec.n * ceil_div(grown, self.block) <= cap
                or dec.blocks_at(now + iterations - 1) + prompts <= cap):
            return iterations
        if first > cap:
            return 1
        lo, hi = 0, iterations - 1  # blocks fit at now + lo, not at now + hi (never shrink)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if dec.blocks_at(now + mid) + prompts <= cap:
                lo = mid
            else:
                hi = mid
        return hi

    # ---- committing --------------------------------------------------------------------------
    def commit_run(self, iterations: int) -> list[int]:
        """``iterations`` decode-only iterations have run; returns the requests that
        finished (each decoding sequence produced one token an iteration)."""
        prefix = self.prefix
        if prefix is not None:  # the cache gave way as the run's blocks grew, to its last
            last = self.dec.blocks_at(self.iteration + iterations - 1) + self.prompt_blocks
            prefix.evict_to(self.kv_blocks - last - prefix.adjustment)
        self.iteration += iterations
        finished = self.dec.finishing(self.iteration)
        if prefix is not None:
            self._retire_decoded(finished)
        self.reservations.release(finished)
        return finished

    def _retire_decoded(self, finished: list[int]) -> None:
        """Decoded requests that finished leave their context's blocks to the prefix cache
        (the last token's K/V was never computed)."""
        assert self.prefix is not None
        reqs, retire = self.requests, self.prefix.retire
        for r in finished:
            retire(r, reqs.prompt_len[r] + reqs.output_len[r] - 1)

    def commit(self, plan: Plan, now: float) -> IterationOutcome:
        """The iteration ``plan`` (with prompt chunks) has run and ended at ``now``."""
        reqs, dec = self.requests, self.dec
        self.iteration += 1
        gained = 1 if dec.rate is None else dec.tokens(self.iteration) - dec.tokens(
            self.iteration - 1)  # tokens each decoding sequence gained
        out = IterationOutcome(plan.decode_batch * gained,
                               dec.finishing(self.iteration) if dec.n else None)
        prefix = self.prefix
        if prefix is not None and out.finished:
            self._retire_decoded(out.finished)
        for r, q in plan.chunks:
            done = reqs.done[r] + q
            reqs.done[r] = done
            if done < reqs.target[r]:
                continue
            self.prefilling.remove(r)
            if prefix is not None:
                prefix.publish(r, done)
            g = reqs.generated[r] + 1
            reqs.generated[r] = g
            out.output_tokens += 1
            if g == 1:  # the request's first token (a preempted one prefills again for more)
                reqs.first_token_s[r] = now
            if g < reqs.output_len[r] and self.role is Role.PREFILL:
                out.handoff.append(r)  # its blocks stay held until its KV cache is sent
                continue
            self.prompt_blocks -= ceil_div(reqs.target[r], self.block)
            if g >= reqs.output_len[r]:
                out.finished.append(r)
                if prefix is not None:
                    prefix.retire(r, done)
            else:  # decodes from the next iteration, with context prompt + g
                self._join(r, reqs.prompt_len[r] + g, g)
        self.reservations.release(out.finished)
        return out

    def handed_off(self, r: int) -> int:
        """``r``'s KV cache has been sent to its decode replica: its blocks here are free
        (returns how many)."""
        blocks = ceil_div(self.requests.target[r], self.block)
        self.prompt_blocks -= blocks
        self.reservations.release((r,))
        if self.prefix is not None:
            self.prefix.retire(r, self.requests.target[r])
        return blocks
