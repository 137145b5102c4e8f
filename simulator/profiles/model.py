"""Model profile: the architecture of a transformer LLM, and its parameter count.

Only the shapes that decide FLOPs, bytes and memory are described; the parameter count
(total and active per token) is computed from them, and the published count is kept beside
it so that tests can check the description.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from annotated_types import Ge, Lt
from pydantic import BaseModel, Field, field_validator, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, NonNegativeInt, PositiveFloat, PositiveInt
from simulator.profiles.quantities import Fraction, Sourced


class AttentionKind(StrEnum):
    """How attention shares key/value heads, which decides the KV cache and its traffic."""

    MHA = "mha"  # one K/V head per query head
    GQA = "gqa"  # query heads share fewer K/V heads
    MLA = "mla"  # multi-head latent attention (DeepSeek-V2/V3): K/V compressed to a latent


class Activation(StrEnum):
    """The FFN's activation; gated ones have a third weight matrix."""

    GELU = "gelu"
    RELU = "relu"
    SQUARED_RELU = "squared_relu"
    SWIGLU = "swiglu"
    GEGLU = "geglu"

    @property
    def gated(self) -> bool:
        """Gated MLPs have three weight matrices (gate, up, down) instead of two."""
        return self in (Activation.SWIGLU, Activation.GEGLU)


class Norm(StrEnum):
    """The normalization layers (LayerNorm also has a bias vector)."""

    RMSNORM = "rmsnorm"
    LAYERNORM = "layernorm"


class PositionEmbedding(StrEnum):
    """How positions are encoded; only a learned table adds parameters."""

    ROPE = "rope"
    LEARNED = "learned"  # a max_seq_len x hidden table, counted as parameters
    ALIBI = "alibi"


class LocalKind(StrEnum):
    """How a local-attention layer limits the keys a query attends."""

    SLIDING = "sliding"  # the last `window` tokens, the query's own included (Mistral, gpt-oss)
    CHUNKED = "chunked"  # the tokens of the query's own `window`-token chunk (Llama 4)


class LayerAttention(StrEnum):
    """One layer's attention in a local-attention pattern."""

    LOCAL = "local"
    FULL = "full"


class LocalAttention(BaseModel):
    """Layers that attend only to a local span of keys (sliding window or chunk): their
    attention FLOPs and KV reads grow with the span, not the context
    (simulator.perf.local_attention). ``pattern`` repeats over the layers from layer 0."""

    model_config = SPEC_CONFIG

    kind: LocalKind
    window: PositiveInt = Field(description="tokens: the sliding window (HF sliding_window) or "
                                            "the chunk (HF attention_chunk_size)")
    pattern: list[LayerAttention] = Field(
        min_length=1, description="local/full per layer, repeated from layer 0 (gpt-oss: "
                                  "[local, full]; Llama 4: [local, local, local, full])")
    source: str = Field(min_length=3, description="where the window and pattern come from")

    @field_validator("pattern")
    @classmethod
    def _has_local(cls, pattern: list[LayerAttention]) -> list[LayerAttention]:
        if LayerAttention.LOCAL not in pattern:
            raise ValueError("has no 'local' layer (omit local_attention for a model with "
                             "full attention on every layer)")
        return pattern

    def is_local(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) attends locally."""
        return self.pattern[index % len(self.pattern)] is LayerAttention.LOCAL


class MLA(BaseModel):
    """Latent sizes of multi-head latent attention (DeepSeek-V3 config names)."""

    model_config = SPEC_CONFIG

    q_lora_rank: PositiveInt | None = Field(None, description="query latent; null = no "
                                                               "query compression")
    kv_lora_rank: PositiveInt
    qk_nope_head_dim: PositiveInt
    qk_rope_head_dim: PositiveInt
    v_head_dim: PositiveInt


_TRTLLM_EP_STUDY = ("TensorRT-LLM EP study (physics_facts sec. 3; DeepSeek-R1, 256 experts "
                    "top-8, decode on 32 GB200s, EP32, machine-translation data)")
# rho = (max-mean)/mean / (z(32)·sqrt(E/k - 1)·sqrt(ep/E)), z(32) = 2.0697 (Blom), E/k = 32,
# ep/E = 1/8 (simulator.perf.moe_balance)
DEFAULT_LOAD_SPREAD = Sourced[Fraction](
    value=0.38443, estimate=True,
    source=f"{_TRTLLM_EP_STUDY}: rank-level (max-mean)/mean 1.564 without a balancer -> "
           f"rho = 1.564/(z(32)·sqrt(31)·sqrt(32/256)); carried over to models without a "
           f"measurement of their own")
DEFAULT_EPLB_LOAD_SPREAD = Sourced[Fraction](
    value=0.026792, estimate=True,
    source=f"{_TRTLLM_EP_STUDY}: with EPLB (288 slots: 32 redundant, 9 per rank) "
           f"(max-mean)/mean 0.109 -> rho = 0.109/(z(32)·sqrt(31)·sqrt(32/256)); carried "
           f"over to models without a measurement of their own")


class MoE(BaseModel):
    """Mixture-of-experts layers: how many experts, how many a token uses, and which layers have
    them."""

    model_config = SPEC_CONFIG

    experts: PositiveInt = Field(description="routed experts per MoE layer")
    active_experts: PositiveInt = Field(description="routed experts each token goes to")
    shared_experts: NonNegativeInt = Field(0, description="experts every token goes to")
    expert_ffn_size: PositiveInt = Field(description="FFN size of one expert")
    first_dense_layers: NonNegativeInt = Field(
        0, description="leading layers with a dense FFN (ffn_size) instead of experts"
    )
    layer_frequency: PositiveInt = Field(
        1, description="every k-th layer after the dense ones is MoE (1 = all)"
    )
    load_spread: Sourced[Fraction] = Field(
        DEFAULT_LOAD_SPREAD, description="the fraction rho of the largest possible spread of "
        "expert loads (coefficient of variation sqrt(experts/active_experts - 1)) the router "
        "reaches with no load balancer (simulator.perf.moe_balance); default: DeepSeek-R1's, "
        "measured by TensorRT-LLM")
    eplb_load_spread: Sourced[Fraction] = Field(
        DEFAULT_EPLB_LOAD_SPREAD, description="rho with EPLB's placement and redundant "
        "experts (workload.moe.load_balancer: eplb); default: DeepSeek-R1's with 32 "
        "redundant experts of 256, measured by TensorRT-LLM")

    @model_validator(mode="after")
    def _active_within_experts(self) -> MoE:
        if self.active_experts > self.experts:
            raise ValueError(f"active_experts ({self.active_experts}) exceeds experts "
                             f"({self.experts})")
        return self


class MTP(BaseModel):
    """Multi-token prediction modules trained with the model (DeepSeek-V3): each is one
    transformer block of the model's own kind plus a 2h -> h projection, sharing the
    embedding and the LM head. Training trains them with the model (workload.mtp_layers,
    :mod:`simulator.perf.mtp_training`); serving uses them as a speculative drafter."""

    model_config = SPEC_CONFIG

    depth: PositiveInt = Field(description="MTP modules (config: num_nextn_predict_layers)")
    source: str = Field(min_length=3, description="where the depth comes from")
    acceptance: Sourced[Annotated[float, Ge(0.0), Lt(1.0)]] | None = Field(
        None, description="measured probability that the module's draft token is accepted "
                          "(the default of workload.speculative.acceptance for method mtp)")


class PublishedParams(BaseModel):
    """The parameter counts the model's authors publish, kept to check the architecture
    description against."""

    model_config = SPEC_CONFIG

    total: Sourced[PositiveFloat]
    active: Sourced[PositiveFloat] | None = None


class ModelProfile(BaseModel):
    """A decoder-only transformer. Immutable."""

    model_config = SPEC_CONFIG

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    description: str = ""
    source: str = Field(min_length=3, description="where the architecture comes from")
    layers: PositiveInt
    hidden_size: PositiveInt
    attention: AttentionKind
    attention_heads: PositiveInt
    kv_heads: PositiveInt | None = Field(None, description="defaults to attention_heads (MHA)")
    head_dim: PositiveInt | None = Field(None, description="defaults to hidden / heads")
    mla: MLA | None = None
    ffn_size: PositiveInt = Field(description="FFN size of the dense layers")
    activation: Activation
    vocab_size: PositiveInt
    tied_embeddings: bool = False
    position_embedding: PositionEmbedding = PositionEmbedding.ROPE
    max_seq_len: PositiveInt
    norm: Norm = Norm.RMSNORM
    linear_bias: bool = Field(False, description="linear layers carry biases (GPT-2/3 style)")
    moe: MoE | None = None
    mtp: MTP | None = Field(None, description="multi-token-prediction modules (not counted in "
                                              "the parameters; trained by default, a "
                                              "speculative drafter in serving)")
    local_attention: LocalAttention | None = Field(
        None, description="layers of sliding-window or chunked attention; default: full "
                          "causal attention on every layer")
    published_params: PublishedParams | None = None
    alias_of: str | None = Field(
        None, description="set by an alias file (simulator.profiles.model_alias): the id of "
                          "the profile whose architecture this release shares")

    @model_validator(mode="after")
    def _consistent(self) -> ModelProfile:
        kv = self.kv_heads_resolved
        if self.attention is AttentionKind.MLA and self.mla is None:
            raise ValueError("attention: mla needs an 'mla' block with its latent sizes")
        if self.attention is not AttentionKind.MLA and self.mla is not None:
            raise ValueError("an 'mla' block needs attention: mla")
        if self.attention_heads % kv:
            raise ValueError(f"attention_heads ({self.attention_heads}) must be a multiple of "
                             f"kv_heads ({kv})")
        if self.attention is AttentionKind.MHA and kv != self.attention_heads:
            raise ValueError("attention: mha needs kv_heads == attention_heads (use gqa)")
        if self.attention is AttentionKind.GQA and kv == self.attention_heads:
            raise ValueError("attention: gqa needs fewer kv_heads than attention_heads "
                             "(use mha)")
        if self.head_dim is None and self.hidden_size % self.attention_heads:
            raise ValueError("hidden_size is not a multiple of attention_heads: set head_dim")
        if self.moe and self.moe.first_dense_layers >= self.layers:
            raise ValueError("moe.first_dense_layers must be fewer than layers")
        if self.local_attention and len(self.local_attention.pattern) > self.layers:
            raise ValueError(f"local_attention.pattern has {len(self.local_attention.pattern)} "
                             f"entries, more than the {self.layers} layers")
        return self

    # ---- derived shapes -------------------------------------------------------------------
    @property
    def kv_heads_resolved(self) -> int:
        """Key/value heads (MLA: one per query head, in the latent's up-projection)."""
        if self.attention is AttentionKind.MLA:
            return self.attention_heads
        return self.kv_heads or self.attention_heads

    @property
    def head_dim_resolved(self) -> int:
        """Dimension of one attention head (hidden / heads unless given)."""
        return self.head_dim or self.hidden_size // self.attention_heads

    @property
    def score_dims(self) -> tuple[int, int]:
        """(d_qk, d_v): the widths per head of the attention scores' dot product and of the
        values they weigh; MLA's queries and keys carry the rope part beside the latent's."""
        if self.attention is AttentionKind.MLA:
            assert self.mla is not None
            return self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim, self.mla.v_head_dim
        d = self.head_dim_resolved
        return d, d

    @property
    def is_moe(self) -> bool:
        """Whether some layers route tokens to experts."""
        return self.moe is not None

    def is_moe_layer(self, index: int) -> bool:
        """Whether layer ``index`` (0-based) has experts instead of a dense FFN."""
        if self.moe is None or index < self.moe.first_dense_layers:
            return False
        return (index - self.moe.first_dense_layers) % self.moe.layer_frequency == 0

    @property
    def moe_layers(self) -> int:
        """How many layers have experts."""
        return sum(self.is_moe_layer(i) for i in range(self.layers))

    @property
    def local_layers(self) -> int:
        """How many layers attend locally (local_attention); 0 with full attention only.
        Counted from the pattern, not layer by layer: the serving engine asks it for every
        decode step's layer average (simulator.perf.local_attention)."""
        local = self.local_attention
        if local is None:
            return 0
        pattern = local.pattern
        whole, rest = divmod(self.layers, len(pattern))
        return (whole * pattern.count(LayerAttention.LOCAL)
                + pattern[:rest].count(LayerAttention.LOCAL))

    @property
    def dense_layers(self) -> int:
        """How many layers have a dense FFN."""
        return self.layers - self.moe_layers

    # ---- parameter counts (see simulator.profiles.params) -------------------------------
    @property
    def params_total(self) -> float:
        """Every parameter, all experts included."""
        from simulator.profiles.params import count_params

        return count_params(self).total

    @property
    def params_active(self) -> float:
        """Parameters one token uses (the routed experts it goes to, not all of them)."""
        from simulator.profiles.params import count_params

        return count_params(self).active
