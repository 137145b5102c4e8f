"""Model FLOPs per trained token: the numerator of MFU, as published figures count it."""

from __future__ import annotations

from simulator.perf.mtp_training import mtp_flops_per_token
from simulator.profiles.model import ModelProfile
from simulator.profiles.params import count_params


def model_flops_per_token(model: ModelProfile, seq_len: int, mtp: int = 0) -> float:
    """Model FLOPs of one trained token, without recomputation (the MFU numerator), with
    those of ``mtp`` trained multi-token-prediction modules (as Megatron-Bridge counts them).

    6 FLOPs per parameter that takes part in a matrix multiply (every active parameter but
    the input embedding table, which is a lookup) plus the attention scores and their use:
    6·layers·heads·(d_qk + d_v)·seq_len, PaLM's convention (Chowdhery et al. 2022, App. B,
    = Megatron-LM's s/(6h) term), which counts the full (non-causal) score matrix as
    published MFU figures do.
    """
    counts = count_params(model)
    positions = model.max_seq_len * model.hidden_size \
        if model.position_embedding.value == "learned" else 0.0
    lookup = positions if model.tied_embeddings else counts.embedding
    d_qk, d_v = model.score_dims
    attention = 6.0 * model.layers * model.attention_heads * (d_qk + d_v) * seq_len
    return 6.0 * (counts.active - lookup) + attention + mtp_flops_per_token(model, seq_len, mtp)
