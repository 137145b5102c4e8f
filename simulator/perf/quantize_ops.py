"""The quantization passes of low-precision (fp8, fp4) training, as memory-bound ops.

Transformer Engine keeps 16-bit tensors and quantizes every GEMM operand before the GEMM
(TE docs, "Performance considerations"): in forward the input X, in backward the output
gradient dY, and the weight W once per optimizer step (Megatron-LM caches it over the
microbatches: ``is_first_microbatch``). How many bytes a quantization moves follows from
the recipe:

- reads of the 16-bit source: delayed scaling takes the scale from the amax history and
  reads the tensor once; current scaling reads it twice (amax, then cast; TE "FP8 delayed
  scaling"); block and MX scaling compute each block's amax in the cast kernel (once);
  NVFP4 needs a global amax before the cast (twice);
- writes: the quantized copy (1 byte per element for fp8, 0.5 for fp4) plus its scales
  (fp32 per 128 elements for 1x128 blocks, e8m0 per 32 for MXFP8, e4m3 per 16 for NVFP4);
- a second, columnwise copy for the gradient GEMMs: per-tensor fp8 on Hopper, whose tensor
  cores read 8-bit operands only row-wise ("Handling transposes"), and every block-scaled
  recipe, whose scales run along the contraction dimension; X and dY need it only when the
  weight gets a gradient, W always (for dgrad);
- NVFP4's columnwise X and dY go through a random Hadamard transform first, whose amax
  needs its own pass: the columnwise copy reads the source twice more.

Each read pass is a kernel. The passes move their bytes at the profile's ``quantize``
fraction of HBM bandwidth (derived from TE's gemm_profiling autocast vs pre-quantized
timings; see docs/modelling_ops.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.perf.ops import ComputeOp, OpKind
from simulator.perf.opspec import Gemm, Prec, repeat
from simulator.profiles.precision import Precision

SOURCE_BYTES = 2.0  # the 16-bit tensor a quantization reads
# packed fp4 plus one e4m3 scale per 16 elements: the fp4 element size (precision.py)
NVFP4_BYTES = Precision.FP4.bytes_per_element


@dataclass(frozen=True, kw_only=True)
class QuantRecipe:
    """What quantizing one 16-bit tensor costs under one recipe on one device."""

    name: str
    reads: int  # read passes over the source per copy set (kernels)
    out_bytes: float  # bytes per element of one quantized copy, scales included
    blockwise: bool  # scales along the contraction dim: rowwise and columnwise copies
    transposes: bool  # per-tensor copies need a transposed twin (Hopper)
    hadamard: bool = False  # NVFP4: columnwise X and dY go through an RHT with its own amax

    def columnwise(self, needed: bool) -> bool:
        """Whether a tensor whose gradient GEMM reads it columnwise gets a second copy."""
        return needed and (self.blockwise or self.transposes)

    def cost(self, elements: float, columnwise: bool, rht: bool = False
             ) -> tuple[float, int]:
        """HBM bytes and kernels to quantize ``elements`` 16-bit values."""
        reads = self.reads + (self.reads if columnwise and rht and self.hadamard else 0)
        copies = 2 if columnwise else 1
        return elements * (reads * SOURCE_BYTES + copies * self.out_bytes), reads


_FP8 = {  # name: (reads, bytes per element incl. scales, blockwise)
    "delayed": (1, 1.0, False),
    "current": (2, 1.0, False),
    "block": (1, 1.0 + 4.0 / 128, True),
    "mxfp8": (1, 1.0 + 1.0 / 32, True),
}
_NVFP4 = (2, NVFP4_BYTES, True)


def training_recipe(precision: Precision | str, fp8_recipe: str,
                    transposed_copies: bool) -> QuantRecipe | None:
    """The quantization of a training run's GEMMs: none at 16 bits and above, the fp8
    recipe at fp8, NVFP4 at fp4."""
    p = Precision(precision)
    if p.bytes_per_element >= 2:
        return None
    if p is Precision.FP4:
        reads, out, block = _NVFP4
        return QuantRecipe(name="nvfp4", reads=reads, out_bytes=out, blockwise=block,
                           transposes=transposed_copies, hadamard=True)
    reads, out, block = _FP8[fp8_recipe]
    return QuantRecipe(name=fp8_recipe, reads=reads, out_bytes=out, blockwise=block,
                       transposes=transposed_copies)


def _op(name: str, elements: float, cost: tuple[float, int], p: Prec) -> ComputeOp:
    return ComputeOp(name=name, kind=OpKind.QUANTIZE, flops=elements, bytes=cost[0],
                     precision=p.other, count=cost[1])


@dataclass(frozen=True, kw_only=True)
class Quantize:
    """The activation-side quantizations of one GEMM: X in forward, dY in backward."""

    gemm: Gemm
    recipe: QuantRecipe

    def forward(self, p: Prec) -> list[ComputeOp]:
        """Quantize the GEMM's input (and its columnwise copy for the weight gradient)."""
        g = self.gemm
        x = g.groups * g.m * g.k
        cost = self.recipe.cost(x, self.recipe.columnwise(not g.frozen), rht=True)
        return [_op(f"{g.name}.quantize_input", x, cost, p)]

    def backward(self, p: Prec) -> list[ComputeOp]:
        """Quantize the output gradient (and its columnwise copy for the weight gradient)."""
        g = self.gemm
        dy = g.groups * g.m * g.n
        cost = self.recipe.cost(dy, self.recipe.columnwise(not g.frozen), rht=True)
        return [_op(f"{g.name}.quantize_grad", dy, cost, p)]

    def weight(self, p: Prec) -> ComputeOp:
        """Quantize the weight, once per optimizer step (rowwise, and columnwise for dgrad;
        NVFP4's 2D 16x16 scaling serves both from one pass)."""
        g = self.gemm
        w = g.groups * g.k * g.n
        cost = self.recipe.cost(w, self.recipe.columnwise(True))
        return _op(f"{g.name}.quantize_weight", w, cost, p)


def with_quantization(specs: list, recipe: QuantRecipe | None) -> list:
    """``specs`` with a :class:`Quantize` before every GEMM (unchanged without a recipe)."""
    if recipe is None:
        return specs
    out: list = []
    for spec in specs:
        if isinstance(spec, Gemm):
            out.append(Quantize(gemm=spec, recipe=recipe))
        out.append(spec)
    return out


def weight_quantization(specs: list, p: Prec, times: int) -> list[ComputeOp]:
    """The per-step weight quantizations of ``times`` layers of ``specs``."""
    if times <= 0:
        return []
    return [repeat(spec.weight(p), times) for spec in specs if isinstance(spec, Quantize)]
