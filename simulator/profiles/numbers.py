"""The numbers a scenario or profile may hold: finite, never a boolean, within a sane range.

Every model of ``simulator.profiles`` takes :data:`SPEC_CONFIG`, which refuses ``.inf`` and
``.nan`` in every float field (unit fields refuse them while parsing). The types below add
what a plain ``int``/``float`` lets through: ``true`` read as 1, and sizes so large that a run
would exhaust memory or time, or that overflow a float or an int64 later on. Each limit is
far above any real system; docs/errors.md lists them with their reasons.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Gt, Le
from pydantic import BeforeValidator, ConfigDict

# Frozen, no unknown fields, no infinities or NaNs: the configuration of every profile model.
SPEC_CONFIG = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

MAX_COUNT = 1_000_000_000  # any count (layers, heads, batch, replicas...); products stay exact
MAX_REAL = 1e18  # any plain float (hours, FLOPs, parameters); products stay finite
MAX_ACCELERATORS = 1_000_000  # 10x the largest clusters built; a serving run scales with it
MAX_REQUESTS = 1_000_000  # a serving run holds every request (1M offline: ~15 s, 0.6 GB)
MAX_SEQUENCE_TOKENS = 10_000_000  # tokens in one request or training sequence
MAX_TRAINING_TOKENS = 1e16  # ~700x the largest published pre-training runs
MAX_SEED = 2**63 - 1  # numpy's generators take non-negative seeds; sweeps add offsets
MAX_LOGNORMAL_CV = 100.0  # std/mean of a lognormal length: larger draws overflow int64
GAMMA_CV_RANGE = (0.01, 100.0)  # gamma shape 1/cv² within [1e-4, 1e4]: no under/overflow
MAX_EMPIRICAL_VALUES = 100_000  # lengths listed by an empirical distribution
MAX_EMPIRICAL_WEIGHT = 1e12  # weights are summed: a sum of finite weights stays finite


def _not_a_boolean(value: object) -> object:
    """YAML's ``true``/``false`` are not numbers (pydantic would read them as 1 and 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean (true/false)")
    return value


NotBool = BeforeValidator(_not_a_boolean)

PositiveInt = Annotated[int, NotBool, Gt(0), Le(MAX_COUNT)]
NonNegativeInt = Annotated[int, NotBool, Ge(0), Le(MAX_COUNT)]
PositiveFloat = Annotated[float, NotBool, Gt(0), Le(MAX_REAL)]
NonNegativeFloat = Annotated[float, NotBool, Ge(0), Le(MAX_REAL)]

Accelerators = Annotated[int, NotBool, Gt(0), Le(MAX_ACCELERATORS)]
Requests = Annotated[int, NotBool, Gt(0), Le(MAX_REQUESTS)]
NonNegativeRequests = Annotated[int, NotBool, Ge(0), Le(MAX_REQUESTS)]
TokenLength = Annotated[int, NotBool, Gt(0), Le(MAX_SEQUENCE_TOKENS)]
MeanTokens = Annotated[float, NotBool, Ge(1), Le(MAX_SEQUENCE_TOKENS)]
StdTokens = Annotated[float, NotBool, Gt(0), Le(MAX_SEQUENCE_TOKENS)]
TrainingTokens = Annotated[float, NotBool, Gt(0), Le(MAX_TRAINING_TOKENS)]
Seed = Annotated[int, NotBool, Ge(0), Le(MAX_SEED)]
GammaCv = Annotated[float, NotBool, Ge(GAMMA_CV_RANGE[0]), Le(GAMMA_CV_RANGE[1])]
EmpiricalWeight = Annotated[float, NotBool, Gt(0), Le(MAX_EMPIRICAL_WEIGHT)]
