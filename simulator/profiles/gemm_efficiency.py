"""A hardware profile's GEMM efficiencies: the fraction of peak a GEMM computes at, how it
falls for small GEMMs, and the fraction of HBM bandwidth a GEMM streams its operands at.

Kept apart from :mod:`simulator.profiles.hardware` because the GEMM is the one kernel whose
both roofs the profile measures separately: its compute side by a size curve, its memory
side (``stream``) by decode-shaped GEMMs that read a weight matrix once for a few rows.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from simulator.profiles.numbers import SPEC_CONFIG, PositiveFloat
from simulator.profiles.precision import Precision
from simulator.profiles.quantities import Fraction, Sourced


class GemmEfficiency(BaseModel):
    """Achievable fraction of peak for GEMMs, and how it falls for small ones.

    eff(F) = large[precision] * F / (F + half_size_flops): a GEMM of F FLOPs reaches half of the
    large-GEMM efficiency at F = half_size_flops. ``stream``: a GEMM whose bytes bound it (a
    decode GEMM streaming its weights for a few rows) reads them at this fraction of peak HBM
    bandwidth rather than the copy's ``efficiency.hbm``: its loads are issued tile by tile
    through a bounded software pipeline, not by every SM at once as a copy's are.
    """

    model_config = SPEC_CONFIG

    large: dict[Precision, Sourced[Fraction]]
    half_size_flops: Sourced[PositiveFloat] = Field(
        description="FLOPs of a GEMM that reaches half the large-GEMM efficiency"
    )
    half_size_by_precision: dict[Precision, Sourced[PositiveFloat]] = Field(
        default_factory=dict,
        description="half_size_flops for the precisions whose measured size curve differs "
                    "(e.g. fp4 kernels that fill the device only at larger sizes); the "
                    "others use half_size_flops")
    quantized_dgrad: Sourced[Fraction] | None = Field(
        None, description="share of the large-GEMM efficiency a quantized (fp8, fp6, fp4) "
                          "input-gradient GEMM (dX = dY W^T) reaches: its K/N-swapped shape "
                          "picks slower kernels than the forward's; absent: 1, the "
                          "forward's")
    stream: Sourced[Fraction] | None = Field(
        None, description="fraction of peak HBM bandwidth a memory-bound GEMM (decode: a "
                          "weight matrix read for a few rows) reaches; absent: "
                          "efficiency.hbm, the copy's fraction")

    def half_size(self, precision: Precision) -> float:
        """The size curve's half point at ``precision`` (its own, else the common one)."""
        own = self.half_size_by_precision.get(precision)
        return (own or self.half_size_flops).value
