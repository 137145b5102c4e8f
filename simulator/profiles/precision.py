"""Numeric precisions: which peak FLOP/s a kernel runs at and how many bytes an element takes."""

from __future__ import annotations

from enum import StrEnum


class Precision(StrEnum):
    """A number format: it selects the peak FLOP/s a kernel runs at and the bytes of each
    element."""

    FP32 = "fp32"
    TF32 = "tf32"
    FP16 = "fp16"
    BF16 = "bf16"
    FP8 = "fp8"
    FP6 = "fp6"
    FP4 = "fp4"
    INT8 = "int8"
    INT4 = "int4"

    @property
    def bytes_per_element(self) -> float:
        """Storage size of one element (TF32 is stored as FP32; FP6/FP4/INT4 are packed)."""
        return _BYTES[self]


_BYTES = {
    Precision.FP32: 4.0,
    Precision.TF32: 4.0,
    Precision.FP16: 2.0,
    Precision.BF16: 2.0,
    Precision.FP8: 1.0,
    Precision.FP6: 0.75,
    Precision.FP4: 0.5,
    Precision.INT8: 1.0,
    Precision.INT4: 0.5,
}
