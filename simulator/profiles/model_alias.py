"""Model aliases: a released model that is another model's architecture under a new name.

DeepSeek-R1 is DeepSeek-V3's network with other weights: the same ``config.json`` shapes, so
the same FLOPs, bytes and memory. Copying V3's profile into an R1 file would let the two
drift apart; an alias file names the profile it shares its architecture with instead::

    id: deepseek-r1
    name: DeepSeek-R1
    alias_of: deepseek-v3          # an id, or a path relative to this file
    source: https://huggingface.co/deepseek-ai/DeepSeek-R1/blob/main/config.json

An alias carries only what tells the release apart (its id, name, description, source and
published counts); any architecture field in it is refused, as is an alias of an alias (one
level keeps "whose shapes are these?" answerable at a glance).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field

from simulator.errors import InputError, UnknownProfile
from simulator.profiles.model import ModelProfile, PublishedParams
from simulator.profiles.numbers import SPEC_CONFIG
from simulator.profiles.validation import validate
from simulator.profiles.yaml_source import YamlDocument


class ModelAlias(BaseModel):
    """The fields an alias file may hold: the release's identity, never its shapes."""

    model_config = SPEC_CONFIG

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    description: str = ""
    source: str = Field(min_length=3, description="where the release's config is published")
    alias_of: str = Field(min_length=1, description="the profile whose architecture this "
                                                    "release shares (an id or a path)")
    published_params: PublishedParams | None = Field(
        None, description="the release's own published counts; default: the base's")


def is_alias(data: object) -> bool:
    """Whether a raw profile mapping is an alias file (it names ``alias_of``)."""
    return isinstance(data, dict) and "alias_of" in data


def resolve_alias(doc: YamlDocument, path: Path,
                  load_base: Callable[[str, Path], ModelProfile]) -> ModelProfile:
    """The profile an alias file describes: its base's architecture under the alias's identity.

    ``load_base(ref, base_dir)`` loads the base profile (an id, or a path relative to the
    alias's folder); an unknown base or an alias of an alias is reported against the alias
    file's ``alias_of`` field.
    """
    alias = validate(ModelAlias, doc.data, doc)
    line = doc.line_of(("alias_of",))
    where = f"{path}:{line}" if line else str(path)
    try:
        base = load_base(alias.alias_of, path.parent)
    except UnknownProfile as exc:
        raise InputError(exc.message, file=where, path="alias_of") from None
    if base.alias_of is not None:
        raise InputError(f"{alias.alias_of!r} is itself an alias of {base.alias_of!r}; name "
                         f"the full profile", file=where, path="alias_of")
    return base.model_copy(update={
        "id": alias.id, "name": alias.name, "description": alias.description,
        "source": alias.source, "alias_of": base.id,
        "published_params": alias.published_params or base.published_params})
