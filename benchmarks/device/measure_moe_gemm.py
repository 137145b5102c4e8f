"""Grouped expert GEMMs at the few rows per expert of MoE decode, on Hopper (fp8 and bf16).

    PYTHONUNBUFFERED=1 python benchmarks/device/measure_moe_gemm.py OUT.json

Why: the Llama 4 rows on Hopper (I44 Scout on 4 H100/H200, Maverick on 8 H200) imply decode
steps 1.1-1.5 times xpusim's, and one unmeasured candidate is the grouped fp8 expert GEMM at
8-200 rows per expert, below DeepGEMM's 256-row points where xpusim is within 7%
(docs/validation.md, "Llama 4 on TensorRT-LLM: where the time goes"). This times the expert
GEMMs of those layouts, so that `compare_moe_gemm.py` can set them beside xpusim's price.

Each (layout, projection, rows per expert) is timed three ways, whichever the installed
PyTorch supports (an unsupported one is recorded with its error):

- ``grouped_fp8``: one ``torch._scaled_grouped_mm`` launch (CUTLASS, row-wise scales), the
  closest public analogue of a serving engine's fused MoE GEMM;
- ``loop_fp8``: one ``torch._scaled_mm`` per expert (per-tensor scales), replayed as a CUDA
  graph so that launches cost nothing: the experts run one after another;
- ``grouped_bf16``: one ``torch._grouped_mm`` launch.

Timings use CUDA events around the call alone, flush the L2 with a read-only reduction over
512 MB before each call (the zeroing flush of `measure_kernels.py` left dirty lines to write
back) and take the median of 30.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

DEV, BF16, FP8 = "cuda", torch.bfloat16, torch.float8_e4m3fn

# (name, experts on the device, hidden, expert FFN columns on the device): Llama 4's experts
# (hidden 5,120, expert FFN 8,192; Scout 16 experts, Maverick 128) as xpusim lays them out.
LAYOUTS = [
    ("scout_ep4", 4, 5120, 8192),       # Scout, 16 experts over EP 4: 4 whole experts a GPU
    ("scout_tp4", 16, 5120, 2048),      # Scout, experts split over TP 4: 16 quarter experts
    ("maverick_ep8", 16, 5120, 8192),   # Maverick, 128 experts over EP 8: 16 whole experts
]
ROWS = [16, 32, 64, 128, 256, 512]       # rows per expert (fp8 GEMMs need multiples of 16)


def projections(hidden: int, ffn: int) -> list[tuple[str, int, int]]:
    """(name, K, N) of the gated expert FFN: gate and up fused, then down."""
    return [("gate_up", hidden, 2 * ffn), ("down", ffn, hidden)]


class Flush:
    """Evicts the L2 by reading 512 MB (a reduction writes nothing back)."""

    def __init__(self) -> None:
        self.buffer = torch.ones(128 * 1024 * 1024, device=DEV, dtype=torch.float32)

    def __call__(self) -> None:
        self.buffer.sum()


def median_time(fn, flush: Flush, reps: int = 30) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        flush()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) * 1e-3)
    return statistics.median(times)


def as_graph(fn):
    """``fn`` captured once as a CUDA graph; the returned callable replays it."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph.replay


def cases(groups: int, rows: int, k: int, n: int):
    """The three kernels for ``groups`` experts of ``rows`` rows, (rows x k) @ (k x n) each."""
    total = groups * rows
    a16 = torch.randn(total, k, device=DEV, dtype=BF16)
    w16 = torch.randn(groups, n, k, device=DEV, dtype=BF16) / k ** 0.5
    a8, w8 = a16.to(FP8), w16.to(FP8)
    offs = torch.arange(rows, total + 1, rows, device=DEV, dtype=torch.int32)
    row_scale = torch.ones(total, device=DEV, dtype=torch.float32)
    col_scale = torch.ones(groups, n, device=DEV, dtype=torch.float32)
    one = torch.ones((), device=DEV, dtype=torch.float32)

    def grouped_fp8():
        return torch._scaled_grouped_mm(a8, w8.transpose(-2, -1), row_scale, col_scale,
                                        offs=offs, out_dtype=BF16)

    def loop_fp8():
        for g in range(groups):
            torch._scaled_mm(a8[g * rows:(g + 1) * rows], w8[g].t(), one, one, out_dtype=BF16)

    def grouped_bf16():
        return torch._grouped_mm(a16, w16.transpose(-2, -1), offs=offs, out_dtype=BF16)

    return {"grouped_fp8": grouped_fp8, "loop_fp8": loop_fp8, "grouped_bf16": grouped_bf16}


def main(out_path: str) -> None:
    props = torch.cuda.get_device_properties(0)
    result = {"device": props.name, "memory_bytes": props.total_memory,
              "torch": torch.__version__, "cuda": torch.version.cuda,
              "date": time.strftime("%Y-%m-%d"), "flush": "read-only 512 MB reduction",
              "rows": []}
    flush = Flush()
    for layout, groups, hidden, ffn in LAYOUTS:
        for proj, k, n in projections(hidden, ffn):
            for rows in ROWS:
                for kernel, fn in cases(groups, rows, k, n).items():
                    row = {"layout": layout, "projection": proj, "groups": groups,
                           "rows": rows, "k": k, "n": n, "kernel": kernel}
                    try:
                        run = as_graph(fn) if kernel == "loop_fp8" else fn
                        row["seconds"] = median_time(run, flush)
                        row["tflops"] = 2.0 * groups * rows * k * n / row["seconds"] / 1e12
                    except (RuntimeError, AttributeError, TypeError) as error:
                        row["error"] = f"{type(error).__name__}: {error}"[:300]
                    result["rows"].append(row)
                    print(json.dumps(row))
                torch.cuda.empty_cache()
            with open(out_path, "w") as f:  # every projection's rows as they finish
                json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
