"""The activation quantizations of a low-precision serving iteration, as memory-bound ops.

W8A8 (fp8, int8) and W4A4 (NVFP4, MXFP4) GEMMs read quantized activations, while the
norms, the activation function and the attention write 16-bit ones, so every GEMM input is
quantized at every iteration. A stack that folds the quantization into the producing kernel
pays nothing extra; one that runs it as a kernel of its own reads the 16-bit tensor once and
writes the quantized copy with its scales
(:class:`~simulator.profiles.serving_stack.ActivationQuant` says which a stack does):

- fp8 and int8 inputs use a per-tensor scale (calibrated in the checkpoint) or a per-token
  one (a row is one thread block): one read pass, 1 byte written per element;
- NVFP4 inputs use a calibrated global scale and one e4m3 scale per 16 elements, computed
  inside the cast kernel: one read pass, 0.5 + 1/16 bytes written per element (MXFP4's
  e8m0 per 32 is within 3% of that).

Inference needs no columnwise copy and no weight quantization (weights are stored
quantized), unlike training (:mod:`simulator.perf.quantize_ops`). The ops move their bytes
at the profile's ``quantize`` fraction of HBM bandwidth. Check, held out: vLLM's NVFP4
benchmark on a B200-class GPU (physics_facts sec. 1) at M=8192, K=4096, N=6144 took
136 us with the activation quant and 109 us pre-quantized (3,025 and 3,779 TFLOP/s): 27 us
for 33.5 M elements; this model gives 33.5 M x 2.56 B / (0.42 x 8 TB/s) + 4.6 us = 30 us.

The input of a routed expert's first GEMM is quantized once per token, before it is
permuted or dispatched to its ``active_experts`` experts; the down projection's input once
per (token, expert) copy. The router's GEMM runs at 16 bits and is not quantized.
"""

from __future__ import annotations

from simulator.perf.mlp_ops import ExpertGemm
from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.opspec import Gemm, Prec, repeat
from simulator.perf.quantize_ops import NVFP4_BYTES, SOURCE_BYTES
from simulator.profiles.model import ModelProfile
from simulator.profiles.precision import Precision
from simulator.profiles.serving_stack import ActivationQuant

UNQUANTIZED = frozenset({"moe.router"})


def separate_quantization(act: Precision, quant: ActivationQuant | None) -> bool:
    """Whether GEMM inputs of precision ``act`` are quantized by a kernel of their own."""
    if quant is None or act.bytes_per_element >= 2 or act is Precision.INT4:
        return False
    fused = quant.block_scaled_fused if act is Precision.FP4 else quant.scaled_fused
    return not fused.value


def _out_bytes(act: Precision) -> float:
    return NVFP4_BYTES if act is Precision.FP4 else act.bytes_per_element


def _elements(gemm: Gemm, model: ModelProfile) -> float:
    rows = gemm.groups * gemm.m
    if isinstance(gemm, ExpertGemm) and not gemm.name.endswith(".down"):
        assert model.moe is not None
        rows /= model.moe.active_experts  # quantized once per token, before the permute
    return rows * gemm.k


def quantize_specs(specs: list, model: ModelProfile, p: Prec, layers: int = 1) -> list:
    """The input quantizations of the GEMMs among ``specs`` (one op per GEMM), for
    ``layers`` layers of them."""
    if layers <= 0:
        return []
    per_element = SOURCE_BYTES + _out_bytes(p.act)
    return [repeat(ComputeOp(name=f"{s.name}.quantize_input", kind=OpKind.QUANTIZE,
                             flops=_elements(s, model),
                             bytes=_elements(s, model) * per_element, precision=p.other),
                   layers)
            for s in specs if isinstance(s, Gemm) and s.name not in UNQUANTIZED]
