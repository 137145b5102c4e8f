"""`workload.speculative`: speculative decoding of a serving workload.

A cheap drafter proposes ``draft_tokens`` (k) tokens per sequence, one after another; the
target model checks all of them in one forward pass over k + 1 tokens per sequence and keeps
the longest accepted prefix plus one token of its own. Three drafters are described:

- ``draft_model``: a smaller model of the same family and tokenizer (another model profile,
  e.g. llama3.1-8b drafting for llama3.1-70b), run on the same devices with the same tensor
  parallelism (vLLM's default ``draft_tensor_parallel_size``);
- ``eagle``: an EAGLE-style head, one decoder layer (and a 2h -> h projection of the
  target's features and the token embedding) that reuses the target's LM head (Li et al.
  2024, arXiv 2401.15077);
- ``mtp``: the model's own multi-token-prediction module (DeepSeek-V3: one transformer block
  of the model's MoE kind plus the 2h -> h projection, sharing the embedding and the head),
  reused for every draft position when k exceeds its depth, as SGLang does.

``acceptance`` is the probability that a draft token is accepted given that the ones before
it were: one number for every position, or one per position. A model profile with an
``mtp`` block may carry a measured acceptance for its MTP module, used when the workload
gives none.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

from annotated_types import Ge, Le, Lt
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from simulator.errors import UnknownProfile
from simulator.profiles.catalog import load_model
from simulator.profiles.model import ModelProfile
from simulator.profiles.numbers import SPEC_CONFIG, NotBool

MAX_DRAFT_TOKENS = 16  # beyond any published chain length (EAGLE-3 drafts up to 8)

Acceptance = Annotated[float, NotBool, Ge(0.0), Lt(1.0)]
DraftTokens = Annotated[int, NotBool, Ge(1), Le(MAX_DRAFT_TOKENS)]


class SpeculativeMethod(StrEnum):
    """What proposes the draft tokens."""

    DRAFT_MODEL = "draft_model"
    EAGLE = "eagle"
    MTP = "mtp"


class Speculative(BaseModel):
    """Speculative decoding: the drafter, the draft length and the acceptance rate."""

    model_config = SPEC_CONFIG

    method: SpeculativeMethod = Field(description="draft_model, eagle or mtp")
    draft_tokens: DraftTokens = Field(
        description=f"k: tokens the drafter proposes per step (1 to {MAX_DRAFT_TOKENS})")
    acceptance: Acceptance | tuple[Acceptance, ...] | None = Field(
        None, description="probability in [0, 1) that a draft token is accepted given the "
                          "ones before it were: one number, or one per draft position (k "
                          "values); mtp defaults to the model profile's mtp.acceptance")
    draft_model: ModelProfile | None = Field(
        None, description="draft_model: the drafter, a model id, a path to a model YAML or "
                          "an inline mapping; it must share the target's vocabulary")

    @field_validator("draft_model", mode="before")
    @classmethod
    def _resolve_draft(cls, value: object, info: ValidationInfo) -> object:
        """A model id or path is loaded here, so the workload holds the whole profile."""
        if isinstance(value, str):
            base = (info.context or {}).get("base_dir")
            try:
                return load_model(value, Path(base) if base else None)
            except UnknownProfile as exc:  # reported against this field
                raise ValueError(exc.message) from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Speculative:
        needs_draft = self.method is SpeculativeMethod.DRAFT_MODEL
        if needs_draft and self.draft_model is None:
            raise ValueError("method draft_model needs draft_model (a model id, e.g. "
                             "llama3.1-8b)")
        if not needs_draft and self.draft_model is not None:
            raise ValueError(f"draft_model is only for method draft_model (method is "
                             f"{self.method.value})")
        if self.acceptance is None and self.method is not SpeculativeMethod.MTP:
            raise ValueError(f"method {self.method.value} needs acceptance (one number in "
                             f"[0, 1) or one per draft position); docs/serving.md lists "
                             f"published values")
        if isinstance(self.acceptance, tuple) and len(self.acceptance) != self.draft_tokens:
            raise ValueError(f"acceptance lists {len(self.acceptance)} positions but "
                             f"draft_tokens is {self.draft_tokens}: give one per position")
        return self


def speculative_problems(spec: Speculative, model: ModelProfile,
                         tps: list[int]) -> list[tuple[tuple[str, ...], str]]:
    """What makes ``spec`` impossible for the target ``model`` on replicas of tensor
    parallelism ``tps``: (field path, message) pairs."""
    base = ("workload", "speculative")
    out: list[tuple[tuple[str, ...], str]] = []
    if spec.method is SpeculativeMethod.MTP:
        if model.mtp is None:
            out.append(((*base, "method"), f"{model.id} has no multi-token-prediction modules "
                                           f"(its profile has no mtp block); use eagle or "
                                           f"draft_model"))
        elif spec.acceptance is None and model.mtp.acceptance is None:
            out.append(((*base, "acceptance"), f"{model.id}'s mtp block gives no acceptance: "
                                               f"set one"))
    draft = spec.draft_model
    if draft is not None:
        if draft.vocab_size != model.vocab_size:
            out.append(((*base, "draft_model"), f"{draft.id} has a vocabulary of "
                                                f"{draft.vocab_size:,} tokens and {model.id} "
                                                f"{model.vocab_size:,}: a drafter must share "
                                                f"the target's tokenizer"))
        for tp in sorted(set(tps)):
            if draft.attention_heads % tp:
                out.append(((*base, "draft_model"), f"{draft.id} runs with the target's "
                                                    f"tp={tp}, which does not divide its "
                                                    f"{draft.attention_heads} attention heads"))
    return out
