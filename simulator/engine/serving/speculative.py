"""Speculative decoding in the serving engine: what a step costs and how many steps a request
takes.

**Cost.** A decoding sequence's iteration becomes a speculative step: ``k`` draft passes at
the batch, then one verify pass of the target over ``k + 1`` tokens per sequence
(:mod:`simulator.perf.speculative_ops`). :class:`SpeculativeCost` gives
:class:`~simulator.engine.serving.iteration_cost.IterationCost` the pieces it adds to a
decode step: the drafter's context-independent cost, and the ops that grow with the total
context (the verify attention and each draft pass's), from which it fits its affine timers
as for a plain decode step. A prompt chunk is also run through the drafter (its KV cache).

**Steps.** How many tokens a step yields is random: 1 + the accepted prefix of the drafts.
A request's number of steps decides its TPOT, and requests differ (p99 TPOT depends on that
spread), so each request draws its own: when it starts decoding with ``n`` tokens to go, it
draws per-step accepted lengths (``P(length > i) = prod_{j<=i} a_j``) until they cover
``n`` (:class:`StepSampler`). The draws come from a generator seeded by the run's seed, the
request and ``n``, so a run is deterministic whatever order replicas reach their requests
in. The total context of a batch, which prices the attention and fills the KV cache, grows
by the mean, ``E`` tokens per sequence a step (:attr:`Speculation.rate`): the sum over a
batch averages the per-request spread out, and one clock keeps a batch's blocks and
contexts O(1) to find (:class:`~simulator.engine.serving.decoding.Decoding`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.engine.serving.iteration_cost import IterationCost
from simulator.perf.pricer import Cost, Op, add_costs
from simulator.perf.serving_iteration import IterationModel
from simulator.perf.speculative_ops import (
    drafter_model,
    expected_tokens,
    position_acceptance,
    survival,
)
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.model import ModelProfile
from simulator.profiles.speculative import Speculative
from simulator.results.inference import SpeculativeMetrics
from simulator.search import first_true


class SpeculativeCost:
    """The drafter's share of a replica's steps, and the ops of a speculative step that
    depend on the context."""

    def __init__(self, hw: HardwareProfile, target: IterationModel, spec: Speculative):
        self.k = spec.draft_tokens
        self.verify = self.k + 1  # tokens per sequence the target runs in a step
        self.target = target
        self.draft = IterationCost(hw, drafter_model(spec, target))
        self._const: dict[int, Cost] = {}

    def context_ops(self, batch: int, context: int) -> list[Op]:
        """The ops of a step of ``batch`` sequences whose total context is ``context`` that
        are not the target's body and head: the verify attention (``k + 1`` queries per
        sequence), then each draft pass's attention over the context it has reached."""
        ops = self.target.decode_extra(batch, context, self.verify)
        drafter = self.draft.model
        for j in range(self.k):
            ops += drafter.decode_extra(batch, context + j * batch)
        return ops

    def draft_const(self, batch: int) -> Cost:
        """``k`` draft passes' body and LM head at ``batch`` sequences."""
        cost = self._const.get(batch)
        if cost is None:
            one = add_costs(self.draft.body(batch), self.draft.head(batch))
            cost = self._const[batch] = Cost.of_row([self.k * v for v in one.row()])
        return cost

    def draft_prefill(self, tokens: int, cached: int, pairs: int, sequences: int) -> Cost:
        """The drafter's pass over prompt chunks (its own KV cache of the prompt)."""
        return add_costs(self.draft.body(tokens),
                         self.draft.prefill(tokens, cached, pairs, sequences))


@dataclass
class StepSampler:
    """Verify steps each request takes, drawn per request (see the module docstring), and
    what was drawn in all: tokens covered and steps taken."""

    seed: int
    survival: np.ndarray  # P(at least i + 1 drafts accepted), decreasing
    rate: float  # expected tokens per step
    tokens: int = 0
    steps: int = 0
    _cache: dict[tuple[int, int], int] = field(default_factory=dict)

    def steps_for(self, request: int, remaining: int) -> int:
        """Steps request ``request`` needs for ``remaining`` more tokens (at least 1)."""
        key = (request, remaining)
        n = self._cache.get(key)
        if n is None:
            n = self._cache[key] = self._draw(request, remaining)
            self.tokens += remaining
            self.steps += n
        return n

    def _draw(self, request: int, remaining: int) -> int:
        rng = np.random.default_rng((self.seed, request, remaining))
        covered, steps = 0, 0
        while True:
            m = int(remaining / self.rate * 1.25) + 8
            u = rng.random(m)
            lengths = 1 + (u[:, None] < self.survival[None, :]).sum(axis=1)
            total = covered + np.cumsum(lengths)
            if total[-1] >= remaining:
                return steps + int(np.searchsorted(total, remaining)) + 1
            covered, steps = int(total[-1]), steps + m


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding of one run: its acceptance, the mean tokens per step (the rate
    the token clock of every decoding batch runs at) and the request step draws."""

    spec: Speculative
    acceptance: tuple[float, ...]
    rate: float
    sampler: StepSampler

    @classmethod
    def of(cls, spec: Speculative, target: ModelProfile, seed: int) -> Speculation:
        """The run's speculation, its draws seeded by the run's ``seed``."""
        acceptance = position_acceptance(spec, target)
        rate = expected_tokens(acceptance)
        sampler = StepSampler(seed=seed, survival=np.array(survival(acceptance)), rate=rate)
        return cls(spec=spec, acceptance=acceptance, rate=rate, sampler=sampler)

    def metrics(self, decode: IterationCost, *, context: int,
                largest: int) -> SpeculativeMetrics:
        """What the run reports: the setting, the expected and the drawn tokens per step,
        and the break-even batch of the replicas that decode (``decode``: their costs) at
        a mean ``context`` per sequence, up to the batch limit ``largest``."""
        s = self.sampler
        draft = self.spec.draft_model
        plain = IterationCost(decode.hw, decode.model, decode.stack)
        return SpeculativeMetrics(
            method=self.spec.method.value, draft_tokens=self.spec.draft_tokens,
            draft_model=draft.id if draft is not None else None,
            acceptance=list(self.acceptance), expected_tokens_per_step=self.rate,
            tokens_per_step=s.tokens / s.steps if s.steps else None, verify_steps=s.steps,
            break_even_batch=break_even_batch(plain, decode, self.rate, context=context,
                                              largest=largest),
            break_even_context=context)


def per_token_time(cost: IterationCost, batch: int, context: int, tokens: float) -> float:
    """Seconds per output token of a decode-only step of ``batch`` sequences of ``context``
    tokens each that yields ``tokens`` tokens per sequence."""
    return cost.run_price(batch, batch * context, 1).time_s[0] / tokens


def break_even_batch(plain: IterationCost, speculative: IterationCost, rate: float, *,
                     context: int, largest: int) -> int | None:
    """The smallest decode batch (up to ``largest``) at which a speculative step per expected
    token (``rate``) takes at least as long as a plain decode step: where decode turns
    compute-bound and verifying ``k + 1`` tokens a sequence costs what it saves. None if
    speculation still pays at ``largest``. Found by bisection (the speculative step's
    disadvantage grows with the batch), at every sequence's ``context``."""
    def hurts(batch: int) -> bool:
        """Whether speculation is no faster per token at ``batch``."""
        return (per_token_time(speculative, batch, context, rate)
                >= per_token_time(plain, batch, context, 1.0))

    if not hurts(largest):
        return None
    return first_true(hurts, 0, largest)  # 0: nothing yet known; it hurts at ``largest``
