"""The unit a part is bought or rented in: an 8-GPU server, a 72-GPU rack, a TPU slice.

Nobody buys 10 MI300X or 3 GB200: accelerators come in servers (HGX, OAM platforms, Gaudi
HLS boxes), racks (NVL72), cloud instances (trn2.48xlarge) or TPU slices. A profile states
its unit here so that plans, comparisons and sweeps can answer in whole units and bill them
(:mod:`simulator.economics.fleet` does the arithmetic).

``sizes`` lists the sizes one unit comes in, smallest first: one size for a server or rack
(``[8]``, ``[72]``), several for TPU slices (``[1, 4, 8, ..., 256]``). ``rented_whole`` says
whether the profile's cloud price rents only whole units (a cloud that sells 8-GPU instances
only, a rack sold whole) rather than single devices; ``xpusim run`` bills whole units then.
"""

from __future__ import annotations

import itertools

from pydantic import BaseModel, Field, model_validator

from simulator.profiles.numbers import SPEC_CONFIG, PositiveInt
from simulator.profiles.quantities import Sourced


class PurchaseUnit(BaseModel):
    """The smallest thing one can buy or rent of this part, with its sources."""

    model_config = SPEC_CONFIG

    name: str = Field(min_length=1, description="the unit in words, singular, e.g. '8-GPU "
                                                "HGX H100 server', 'NVL72 rack', 'v5e slice'")
    plural: str | None = Field(None, description="the plural for messages, e.g. 'NVL72 racks' "
                                                 "(absent: name + 's')")
    sizes: Sourced[list[PositiveInt]] = Field(
        description="accelerators in one unit; several sizes (ascending) where a unit comes "
                    "in several, e.g. TPU slices [1, 4, 8, 16, 32, 64, 128, 256]")
    rented_whole: Sourced[bool] = Field(
        description="whether the profile's cloud price rents only whole units (true) or "
                    "single accelerators (false); `xpusim run` bills whole units when true")

    @model_validator(mode="after")
    def _ascending(self) -> PurchaseUnit:
        sizes = self.sizes.value
        if not sizes:
            raise ValueError("purchase_unit.sizes must list at least one size, e.g. [8]")
        if any(b <= a for a, b in itertools.pairwise(sizes)):
            raise ValueError(f"purchase_unit.sizes must be strictly ascending, got {sizes}")
        return self

    @property
    def largest(self) -> int:
        """The largest unit: jobs bigger than it take several of them."""
        return self.sizes.value[-1]

    def plural_name(self, count: float = 2) -> str:
        """The unit's name for ``count`` units (singular for exactly one)."""
        if count == 1:
            return self.name
        return self.plural or f"{self.name}s"


PER_ACCELERATOR = PurchaseUnit(
    name="accelerator", sizes=Sourced[list[int]](value=[1], source="no purchase unit stated"),
    rented_whole=Sourced[bool](value=False, source="no purchase unit stated"))
"""What a profile without ``purchase_unit`` is billed in: single accelerators."""
