"""The activation peak a serving engine sizes its KV cache beside: one iteration's workspace.

An engine that sizes its cache from a profiling run (vLLM's ``profile_run``: a forward pass
of ``max_num_batched_tokens`` tokens, then its sampler on ``max_num_seqs`` sequences) keeps
that run's peak out of the cache. Two phases peak in turn:

- the forward: the hidden states, QKV and FFN intermediates of the step's tokens (16-bit),
  ``2·T·(4·h + 2·f/tp)`` bytes for ``T`` tokens (xpusim's estimate of the largest live set);
- the sampler: the logits of ``B = min(max_batch_size, T)`` sequences and the buffers of
  top-k/top-p, ``B·V·b`` bytes for a vocabulary ``V`` (``V/tp`` where each device samples its
  slice) and ``b`` bytes per entry (the stack's ``sampler_memory``), while the forward's
  ``T`` hidden states (``2·T·h`` bytes) are still held.

The peak is the larger phase. A stack that does not state its sampler keeps xpusim's earlier
sum: the forward plus fp32 logits of each device's slice, ``2·T·(4·h + 2·f/tp) + 4·B·V/tp``
with ``B = max_batch_size``.
"""

from __future__ import annotations

from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.model import ModelProfile

FORWARD_BYTES_PER_VALUE = 2.0  # 16-bit activations
DEFAULT_LOGIT_BYTES = 4.0  # fp32 logits, xpusim's workspace before stacks stated a sampler


def forward_workspace(model: ModelProfile, tokens: int, tp: int) -> float:
    """Bytes of one forward pass's largest live set for ``tokens`` tokens on one device."""
    ffn = model.moe.expert_ffn_size if model.moe else model.ffn_size
    width = 4 * model.hidden_size + 2 * ffn / tp
    return FORWARD_BYTES_PER_VALUE * tokens * width


def iteration_workspace(model: ModelProfile, w: InferenceWorkload, tp: int) -> float:
    """Bytes one device keeps for the activation peak of an iteration (per attention-DP rank:
    the batching limits are a rank's), by the stack's ``sampler_memory`` where it states it."""
    tokens = w.batching.max_tokens_per_step
    batch = w.batching.max_batch_size
    forward = forward_workspace(model, tokens, tp)
    sampler = w.engine.sampler_memory
    if sampler is None:
        return forward + DEFAULT_LOGIT_BYTES * batch * model.vocab_size / tp
    vocab = model.vocab_size if sampler.gathered_logits.value else model.vocab_size / tp
    held = FORWARD_BYTES_PER_VALUE * tokens * model.hidden_size
    sampling = min(batch, tokens) * vocab * sampler.bytes_per_logit.value
    return max(forward, held + sampling)
