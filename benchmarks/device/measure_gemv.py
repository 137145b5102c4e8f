"""How close a plain streaming GEMV gets to HBM peak, next to cuBLAS (decode-shaped GEMMs).

    PYTHONUNBUFFERED=1 python benchmarks/device/measure_gemv.py OUT.json

Why: `measure_kernels.py` found cuBLAS decode GEMMs (1-64 tokens) streaming their weights
at ~0.72 of HBM peak, well below a copy's 0.90. Serving engines ship their own GEMV
kernels; this one (Triton, split over output rows, weights read once, coalesced along K)
shows what a simple dedicated kernel reaches, to judge which figure a profile should use.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import triton
import triton.language as tl

DEV, BF16 = "cuda", torch.bfloat16


@triton.jit
def gemv_kernel(w_ptr, x_ptr, y_ptr, n, k, stride_w, tokens: tl.constexpr,
                block_n: tl.constexpr, block_k: tl.constexpr):
    pid = tl.program_id(0)
    rows = pid * block_n + tl.arange(0, block_n)
    cols = tl.arange(0, block_k)
    acc = tl.zeros((block_n, tokens), dtype=tl.float32)
    for start in range(0, k, block_k):
        c = start + cols
        w = tl.load(w_ptr + rows[:, None] * stride_w + c[None, :],
                    mask=(rows[:, None] < n) & (c[None, :] < k), other=0.0)
        x = tl.load(x_ptr + tl.arange(0, tokens)[None, :] * k + c[:, None],
                    mask=c[:, None] < k, other=0.0)
        if tokens >= 16:
            acc += tl.dot(w, x)
        else:
            acc += tl.sum(w[:, :, None].to(tl.float32) * x[None, :, :].to(tl.float32), axis=1)
    out = y_ptr + tl.arange(0, tokens)[None, :] * n + rows[:, None]
    tl.store(out, acc.to(tl.bfloat16), mask=rows[:, None] < n)


def triton_gemv(w, x, block_n, block_k):
    n, k = w.shape
    tokens = x.shape[0]
    y = torch.empty(tokens, n, device=DEV, dtype=BF16)
    gemv_kernel[(triton.cdiv(n, block_n),)](w, x, y, n, k, w.stride(0), tokens,
                                            block_n, block_k)
    return y


def median_time(fn, flush, reps=30):
    for _ in range(3):
        fn()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
    for i in range(reps):
        flush.zero_()
        starts[i].record()
        fn()
        ends[i].record()
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)) / 1e3


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "gemv.json"
    flush = torch.empty(512 * 1024**2, dtype=torch.uint8, device=DEV)
    peak = {"NVIDIA H100 80GB HBM3": 3.35e12, "NVIDIA H200": 4.8e12}.get(
        torch.cuda.get_device_name(), 3.35e12)
    rows = []
    # (n, k): Llama 3 70B at TP1 and TP8, Llama 3 8B projections
    shapes = [(28672 * 2, 8192), (8192, 28672), (10240, 8192), (8192, 8192),
              (7168, 1024), (1024, 3584), (28672, 4096), (4096, 14336), (6144, 4096)]
    for tokens in (1, 16):
        for n, k in shapes:
            w = (torch.randn(n, k, device=DEV) * k**-0.5).to(BF16)
            x = torch.randn(tokens, k, device=DEV).to(BF16)
            ref = (x.double() @ w.double().t())
            best = None
            for block_n, block_k in ((16, 512), (32, 256), (64, 128), (8, 1024), (16, 256)):
                if tokens >= 16 and block_n < 16:
                    continue
                try:
                    y = triton_gemv(w, x, block_n, block_k)
                    err = float((y.double() - ref).norm() / ref.norm())
                    if not err < 1e-2:
                        raise ValueError(f"wrong result: relative error {err:.2e}")
                    t = median_time(lambda w=w, x=x, bn=block_n, bk=block_k:
                                    triton_gemv(w, x, bn, bk), flush)
                except Exception as exc:
                    rows.append({"n": n, "k": k, "tokens": tokens, "block_n": block_n,
                                 "block_k": block_k, "error": repr(exc)[:200]})
                    continue
                if best is None or t < best[0]:
                    best = (t, block_n, block_k, err)
            t_cublas = median_time(lambda w=w, x=x: torch.nn.functional.linear(x, w), flush)
            nbytes = (n * k + tokens * (k + n)) * 2
            row = {"n": n, "k": k, "tokens": tokens, "bytes": nbytes,
                   "cublas_s": t_cublas, "cublas_fraction": nbytes / t_cublas / peak}
            if best:
                row.update(triton_s=best[0], block_n=best[1], block_k=best[2],
                           rel_error=best[3], triton_fraction=nbytes / best[0] / peak)
            rows.append(row)
            print(f"tokens {tokens:>2} {n:>6} x {k:>6}: cuBLAS {row['cublas_fraction']:.2f}"
                  f"  Triton {row.get('triton_fraction', float('nan')):.2f}"
                  f" (blocks {row.get('block_n')}x{row.get('block_k')})", flush=True)
            with open(path, "w") as f:
                json.dump({"device": torch.cuda.get_device_name(), "peak_bytes_s": peak,
                           "date": time.strftime("%Y-%m-%d"), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
