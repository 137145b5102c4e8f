"""The KV cache a token of context takes on one device of a serving replica, and how many
tokens a device's free memory holds: the one rule the serving engine sizes its paged cache
by (:mod:`simulator.engine.serving.kv_cache`) and the layout search sizes a candidate layout
by (:mod:`simulator.studies.compare_layout`), so that a layout the search picks holds what
the engine then gives it.

A token costs the target model's K and V on the device's layers and heads
(:func:`~simulator.perf.memory.kv_bytes_per_token`), times the layer average a sequence
keeps (:func:`~simulator.perf.local_attention.kv_held_fraction`: sliding-window layers keep
only their window, chunked and full layers the whole context), taken at the context a mean
request holds over its life (its prompt and half its output), plus a speculative drafter's K
and V. The engine then counts a sequence's context in whole blocks of this size.
"""

from __future__ import annotations

from simulator.perf.local_attention import kv_held_fraction
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.speculative_ops import drafter_memory
from simulator.profiles.inference import InferenceWorkload, mean_tokens
from simulator.profiles.scenario import Scenario


def mean_life_context(workload: InferenceWorkload) -> float:
    """The context a mean request holds over its life: its prompt and half its output."""
    return mean_tokens(workload.prompt_tokens) + mean_tokens(workload.output_tokens) / 2


def kv_bytes_per_context_token(scenario: Scenario, *, tp: int, pp: int) -> float:
    """Bytes of KV cache one token of context takes on one device of a replica laid out
    as ``tp`` x ``pp`` (see the module docstring)."""
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    kv = w.kv_cache_precision
    assert kv is not None  # resolved from the weights' precision when the scenario loads
    model = scenario.model
    per_token = (kv_bytes_per_token(model, kv, tp, pp)
                 * kv_held_fraction(model, mean_life_context(w)))
    if w.speculative is not None:  # each cached token also holds the drafter's K and V
        per_token += drafter_memory(w.speculative, model, weight_precision=w.precision,
                                    kv_precision=kv, tp=tp)[1]
    return per_token


def kv_tokens_held(scenario: Scenario, headroom: float, *, tp: int, pp: int,
                   attention_dp: int = 1) -> float:
    """Tokens of KV cache a replica holds in ``headroom`` bytes free on each device: every
    device of a rank holds the same tokens, and each of ``attention_dp`` ranks its own."""
    per_token = kv_bytes_per_context_token(scenario, tp=tp, pp=pp)
    return max(0.0, headroom) / per_token * attention_dp
