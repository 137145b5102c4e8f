"""Parameter counts of a :class:`ModelProfile`, by component.

Formulas (h = hidden, a = heads, k = kv heads, d = head dim, f = FFN size, V = vocab):
  attention (MHA/GQA)  h·a·d (Q) + 2·h·k·d (K, V) + a·d·h (O)
  attention (MLA)      h·r_q + r_q·a·(d_nope+d_rope)       (Q through its latent r_q)
                       + h·(r_kv + d_rope) + r_kv·a·(d_nope+d_v)   (K/V latent and up-projection)
                       + a·d_v·h (O), plus the latents' norms
  dense FFN            3·h·f gated (gate, up, down), 2·h·f otherwise
  MoE FFN              E·3·h·f_e routed + S·3·h·f_e shared + h·E router; a token uses
                       top_k + S experts
  embeddings           V·h, plus V·h for an untied LM head, plus L_max·h if learned positions
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.profiles.model import AttentionKind, ModelProfile, Norm


@dataclass(frozen=True, kw_only=True)
class ParamCount:
    """A model's parameters by component, and the totals (all of them, and those one token uses)."""

    embedding: float
    lm_head: float
    attention_per_layer: float
    dense_ffn_per_layer: float
    moe_ffn_per_layer: float  # all experts + shared + router
    moe_ffn_active_per_layer: float
    norms: float  # all layers and the final norm
    total: float
    active: float


def attention_params(m: ModelProfile) -> float:
    """Parameters of one attention block (MHA/GQA or MLA), biases included."""
    h, a = m.hidden_size, m.attention_heads
    bias = m.linear_bias
    if m.attention is AttentionKind.MLA:
        assert m.mla is not None
        x = m.mla
        qk = x.qk_nope_head_dim + x.qk_rope_head_dim
        if x.q_lora_rank:
            q = h * x.q_lora_rank + x.q_lora_rank + x.q_lora_rank * a * qk
        else:
            q = h * a * qk
        kv = h * (x.kv_lora_rank + x.qk_rope_head_dim) + x.kv_lora_rank
        kv += x.kv_lora_rank * a * (x.qk_nope_head_dim + x.v_head_dim)
        o = a * x.v_head_dim * h
        return float(q + kv + o)
    d, k = m.head_dim_resolved, m.kv_heads_resolved
    weights = h * a * d + 2 * h * k * d + a * d * h
    biases = (a * d + 2 * k * d + h) if bias else 0
    return float(weights + biases)


def ffn_params(m: ModelProfile, ffn_size: int) -> float:
    """Parameters of one FFN (dense, or one expert) of size ``ffn_size``, biases included."""
    h = m.hidden_size
    matrices = 3 if m.activation.gated else 2
    biases = ((matrices - 1) * ffn_size + h) if m.linear_bias else 0
    return float(matrices * h * ffn_size + biases)


def count_params(m: ModelProfile) -> ParamCount:
    """The parameter count of ``m`` by component (formulas in the module docstring)."""
    h = m.hidden_size
    embedding = float(m.vocab_size * h)
    if m.position_embedding.value == "learned":
        embedding += m.max_seq_len * h
    lm_head = 0.0 if m.tied_embeddings else float(m.vocab_size * h)
    attention = attention_params(m)
    dense_ffn = ffn_params(m, m.ffn_size)
    moe_total = moe_active = 0.0
    if m.moe is not None:
        expert = ffn_params(m, m.moe.expert_ffn_size)
        router = h * m.moe.experts
        moe_total = (m.moe.experts + m.moe.shared_experts) * expert + router
        moe_active = (m.moe.active_experts + m.moe.shared_experts) * expert + router
    per_norm = 2 * h if m.norm is Norm.LAYERNORM else h
    norms = float((2 * m.layers + 1) * per_norm)
    body = m.layers * attention + m.dense_layers * dense_ffn + norms
    total = embedding + lm_head + body + m.moe_layers * moe_total
    active = embedding + lm_head + body + m.moe_layers * moe_active
    return ParamCount(embedding=embedding, lm_head=lm_head, attention_per_layer=attention,
                      dense_ffn_per_layer=dense_ffn, moe_ffn_per_layer=moe_total,
                      moe_ffn_active_per_layer=moe_active, norms=norms, total=total,
                      active=active)
