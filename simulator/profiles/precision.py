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
        """Storage size of one element (TF32 is stored as FP32; FP6/FP4/INT4 are packed).

        FP4 is NVFP4, the format of NVIDIA's fp4 stacks (TensorRT-LLM, Transformer Engine):
        16 4-bit values share one E4M3 scale byte, 4.5 bits a value (physics_facts sec. 3:
        an NVFP4 token of hidden 7,168 is 4,032 bytes, 7,168 x (0.5 + 1/16)). MXFP4 (32
        values per E8M0 scale, 4.25 bits) is not told apart. FP8, FP6 and INT4 keep their
        bare size: per-tensor or per-channel fp8 scales are negligible, and the 1x128 and
        group-128 scales of block-scaled fp8 and AWQ/GPTQ int4 add about 3%, not counted."""
        return _BYTES[self]


_BYTES = {
    Precision.FP32: 4.0,
    Precision.TF32: 4.0,
    Precision.FP16: 2.0,
    Precision.BF16: 2.0,
    Precision.FP8: 1.0,
    Precision.FP6: 0.75,
    Precision.FP4: 0.5625,  # NVFP4: 0.5 + one 1-byte scale per 16 values
    Precision.INT8: 1.0,
    Precision.INT4: 0.5,
}
