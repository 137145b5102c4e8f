"""Measure GEMM, attention, HBM and launch figures on one NVIDIA GPU for a hardware profile.

Run on a machine with a CUDA GPU and PyTorch (xpusim itself never needs one):

    PYTHONUNBUFFERED=1 python benchmarks/device/measure_kernels.py OUT.json

Why: the profiles' GEMM efficiencies were best-shape figures (MAMF) and a hand-fitted size
curve. This script times the GEMMs a transformer actually runs (forward, data-gradient and
weight-gradient layouts of QKV, output, MLP projections at real hidden sizes and TP degrees),
square sweeps for the size curve, decode-shaped GEMMs, FlashAttention-style attention, HBM
copy bandwidth, the per-kernel launch floor, and GEMM throughput sustained for many seconds
(clocks under the power limit). Each section writes into the JSON as it finishes, so a run
cut short still returns what it measured. `fit_profile.py` turns the JSON into profile
figures. Timing: CUDA events around each call, L2 flushed before each, median of reps.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import traceback

import torch

DEV = "cuda"
BF16 = torch.bfloat16
FP8 = torch.float8_e4m3fn

# (name, hidden, ffn, heads, kv_heads, gated): the models of the validation cases.
MODELS = [
    ("llama2-7b", 4096, 11008, 32, 32, True),
    ("llama3-8b", 4096, 14336, 32, 8, True),
    ("llama2-13b", 5120, 13824, 40, 40, True),
    ("llama3-70b", 8192, 28672, 64, 8, True),
    ("gpt3-175b", 12288, 49152, 96, 96, False),
    ("llama3-405b", 16384, 53248, 128, 8, True),
    ("nemotron4-340b", 18432, 73728, 96, 8, False),
]


class Timer:
    """Median kernel time of fn() with L2 flushed before each call."""

    def __init__(self) -> None:
        self.flush = torch.empty(512 * 1024 * 1024, dtype=torch.uint8, device=DEV)

    def median(self, fn, budget_s: float = 0.03, min_reps: int = 5, max_reps: int = 60) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        one = max(time.perf_counter() - t0, 1e-6)
        reps = int(min(max_reps, max(min_reps, budget_s / one)))
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(reps)]
        for i in range(reps):
            self.flush.zero_()
            starts[i].record()
            fn()
            ends[i].record()
        torch.cuda.synchronize()
        return statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)) / 1e3


def rand(shape, dtype=BF16):
    return (torch.randn(shape, device=DEV, dtype=torch.float32) * 0.5).to(dtype)


def gemm_case(timer: Timer, m: int, n: int, k: int, layout: str, dtype: str) -> dict:
    """One GEMM C(m,n) = A(m,k) B(k,n) in a Linear layer's layout.

    fwd: X(m,k) @ W(n,k)^T; dgrad: dY(m,k) @ W(k,n) (W stored (k,n) row-major);
    wgrad: dY(k,m)^T @ X(k,n)... expressed as A = (k_,m)^T i.e. the reduction runs over tokens.
    """
    if dtype == "bf16":
        if layout == "fwd":
            a, w = rand((m, k)), rand((n, k))
            fn = lambda: torch.matmul(a, w.t())  # noqa: E731
        elif layout == "dgrad":
            a, w = rand((m, k)), rand((k, n))
            fn = lambda: torch.matmul(a, w)  # noqa: E731
        else:  # wgrad: reduction dimension k is the token dimension, both operands token-major
            a, b = rand((k, m)), rand((k, n))
            fn = lambda: torch.matmul(a.t(), b)  # noqa: E731
    else:
        a = rand((m, k)).to(FP8)
        w = rand((n, k)).to(FP8)
        one = torch.tensor(1.0, device=DEV)
        fn = lambda: torch._scaled_mm(a, w.t(), scale_a=one, scale_b=one, out_dtype=BF16)  # noqa: E731
    flops = 2.0 * m * n * k
    try:
        t = timer.median(fn)
    except Exception as exc:  # e.g. an fp8 shape the library refuses
        return {"m": m, "n": n, "k": k, "layout": layout, "dtype": dtype, "error": repr(exc)[:200]}
    return {"m": m, "n": n, "k": k, "layout": layout, "dtype": dtype, "time_s": t,
            "flops": flops, "tflops": flops / t / 1e12}


def transformer_shapes(tokens: int, tp: int):
    """(model, gemm name, m, n, k) of one layer's projections on one TP rank."""
    for name, h, ffn, heads, kv, gated in MODELS:
        d = h // heads
        qkv = (heads + 2 * kv) * d // tp
        up = (2 if gated else 1) * ffn // tp
        yield name, "qkv", tokens, qkv, h
        yield name, "o_proj", tokens, h, heads * d // tp
        yield name, "up", tokens, up, h
        yield name, "down", tokens, h, ffn // tp


def section_gemm_training(timer, out):
    rows = []
    for tokens in (4096, 8192):
        for tp in (1, 2, 4, 8):
            for model, gemm, m, n, k in transformer_shapes(tokens, tp):
                if m * n * k > 8192 * 8192 * 73728:  # bounded time per shape
                    continue
                for layout in ("fwd", "dgrad", "wgrad"):
                    # dgrad of C(m,n)=A(m,k)B: dA(m,k) = dC(m,n) B^T -> m x k x n
                    mm, nn, kk = (m, n, k) if layout == "fwd" else (
                        (m, k, n) if layout == "dgrad" else (n, k, m))
                    r = gemm_case(timer, mm, nn, kk, layout, "bf16")
                    r.update(model=model, gemm=gemm, tp=tp, tokens=tokens)
                    rows.append(r)
        out["gemm_training_bf16"] = rows
        flush_out(out)


def section_gemm_fp8(timer, out):
    rows = []
    for tokens in (1, 16, 64, 256, 1024, 4096, 8192):
        for tp in (1, 2, 8):
            for model, gemm, m, n, k in transformer_shapes(tokens, tp):
                if model not in ("llama3-8b", "llama3-70b", "llama3-405b"):
                    continue
                for dtype in ("fp8", "bf16"):
                    r = gemm_case(timer, m, n, k, "fwd", dtype)
                    r.update(model=model, gemm=gemm, tp=tp, tokens=tokens)
                    rows.append(r)
        out["gemm_inference"] = rows
        flush_out(out)


def section_square(timer, out):
    rows = []
    for s in (256, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384):
        for dtype in ("bf16", "fp8"):
            rows.append(gemm_case(timer, s, s, s, "fwd", dtype))
    out["gemm_square"] = rows


def attention_flops(b, h, s, d, causal):
    f = 4.0 * b * h * s * s * d
    return f / 2 if causal else f


def section_attention(timer, out):
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    rows = []
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    for seq, batch in ((2048, 4), (4096, 2), (8192, 1), (16384, 1)):
        for heads, kv in ((32, 32), (64, 8)):
            d = 128
            q = rand((batch, heads, seq, d)).requires_grad_()
            k = rand((batch, kv, seq, d)).requires_grad_()
            v = rand((batch, kv, seq, d)).requires_grad_()
            go = rand((batch, heads, seq, d))
            for bname, backend in backends.items():
                row = {"backend": bname, "batch": batch, "heads": heads, "kv_heads": kv,
                       "seq": seq, "head_dim": d, "causal": True}
                try:
                    with sdpa_kernel([backend]):
                        def fwd(q=q, k=k, v=v, gqa=kv != heads):
                            return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                                  enable_gqa=gqa)
                        t_f = timer.median(fwd)
                        o = fwd()

                        def bwd(o=o, q=q, k=k, v=v, go=go):
                            torch.autograd.grad(o, (q, k, v), go, retain_graph=True)
                        t_b = timer.median(bwd)
                    fl = attention_flops(batch, heads, seq, d, True)
                    row.update(fwd_s=t_f, bwd_s=t_b, fwd_tflops=fl / t_f / 1e12,
                               bwd_tflops=2.5 * fl / t_b / 1e12)
                except Exception as exc:  # a backend may not take this shape
                    row["error"] = repr(exc)[:200]
                rows.append(row)
            out["attention"] = rows
            flush_out(out)


def section_hbm(timer, out):
    rows = []
    n = 2 * 1024**3  # 2 GiB per buffer
    src = torch.empty(n, dtype=torch.uint8, device=DEV).random_(0, 255)
    dst = torch.empty_like(src)
    t = timer.median(lambda: dst.copy_(src))
    rows.append({"op": "copy", "bytes": 2 * n, "time_s": t, "tb_s": 2 * n / t / 1e12})
    x = src.view(torch.bfloat16)
    t = timer.median(lambda: torch.sum(x, dtype=torch.float32))
    rows.append({"op": "read (sum)", "bytes": n, "time_s": t, "tb_s": n / t / 1e12})
    t = timer.median(lambda: dst.fill_(7))
    rows.append({"op": "write (fill)", "bytes": n, "time_s": t, "tb_s": n / t / 1e12})
    # A decode step: elementwise ops of a few MB each, where launch and tail dominate.
    for size in (1 << 16, 1 << 20, 1 << 24, 1 << 26):
        a = rand((size,))
        b = rand((size,))
        t = timer.median(lambda a=a, b=b: torch.add(a, b))
        rows.append({"op": f"add bf16 n={size}", "bytes": 6 * size, "time_s": t,
                     "tb_s": 6 * size / t / 1e12})
    out["hbm"] = rows


def section_launch(out):
    """Back-to-back tiny kernels: eager launch throughput and CUDA-graph replay."""
    x = torch.zeros(1, device=DEV)
    n = 2000
    for _ in range(100):
        x.add_(1)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        x.add_(1)
    torch.cuda.synchronize()
    eager = (time.perf_counter() - t0) / n
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            x.add_(1)
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        for _ in range(200):
            x.add_(1)
    g.replay()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(10):
        g.replay()
    torch.cuda.synchronize()
    graph = (time.perf_counter() - t0) / (10 * 200)
    out["launch"] = {"eager_per_kernel_s": eager, "graph_per_kernel_s": graph}


def smi(query: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as exc:
        return repr(exc)


def section_sustained(out, seconds: float = 15.0):
    """8192^3 bf16 then fp8 GEMMs back to back for many seconds: throughput per second and
    the SM clock and board power read alongside (clocks drop under the power limit)."""
    res = {}
    for dtype in ("bf16", "fp8"):
        s = 8192
        if dtype == "bf16":
            a, b = rand((s, s)), rand((s, s))
            fn = lambda a=a, b=b: torch.matmul(a, b)  # noqa: E731
        else:
            a, w = rand((s, s)).to(FP8), rand((s, s)).to(FP8)
            one = torch.tensor(1.0, device=DEV)
            fn = lambda a=a, w=w, one=one: torch._scaled_mm(  # noqa: E731
                a, w.t(), scale_a=one, scale_b=one, out_dtype=BF16)
        windows = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            n = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 1.0:
                for _ in range(10):
                    fn()
                torch.cuda.synchronize()
                n += 10
            dt = time.perf_counter() - t0
            windows.append({"tflops": 2 * s**3 * n / dt / 1e12,
                            "smi": smi("clocks.sm,power.draw,temperature.gpu")})
        res[dtype] = windows
        print(dtype, [round(w["tflops"]) for w in windows], windows[-1]["smi"], flush=True)
    out["sustained_8192"] = res


OUT_PATH = sys.argv[1] if len(sys.argv) > 1 else "kernels.json"


def flush_out(out):
    with open(OUT_PATH, "w") as f:
        json.dump(out, f, indent=1)


def main():
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d"),
           "smi": smi("name,driver_version,power.limit,clocks.max.sm,clocks.sm,memory.total"),
           "errors": {}}
    print(out["device"], out["smi"], flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    timer = Timer()
    sections = [("hbm", lambda: section_hbm(timer, out)),
                ("launch", lambda: section_launch(out)),
                ("square", lambda: section_square(timer, out)),
                ("attention", lambda: section_attention(timer, out)),
                ("gemm_training", lambda: section_gemm_training(timer, out)),
                ("gemm_inference", lambda: section_gemm_fp8(timer, out)),
                ("sustained", lambda: section_sustained(out))]
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else None
    for name, fn in sections:
        if only and name not in only:
            continue
        t0 = time.perf_counter()
        try:
            fn()
        except Exception:
            out["errors"][name] = traceback.format_exc()[-2000:]
            print("ERROR in", name, out["errors"][name], flush=True)
        print(f"{name}: {time.perf_counter() - t0:.1f} s", flush=True)
        flush_out(out)
    summary(out)


def summary(out):
    for r in out.get("hbm", []):
        print(f"hbm {r['op']:<20} {r['tb_s']:.2f} TB/s")
    print("launch", out.get("launch"))
    for r in out.get("gemm_square", []):
        if "error" in r:
            print("square", r["dtype"], r["m"], "ERR", r["error"][:80])
            continue
        print(f"square {r['dtype']} {r['m']:>6}: {r['tflops']:.0f} TFLOP/s")
    for r in out.get("attention", []):
        if "error" in r:
            print("attn", r["backend"], r["seq"], r["heads"], "ERR", r["error"][:80])
        else:
            print(f"attn {r['backend']:<9} s={r['seq']:>5} h={r['heads']} kv={r['kv_heads']}: "
                  f"fwd {r['fwd_tflops']:.0f} bwd {r['bwd_tflops']:.0f}")
    tr = out.get("gemm_training_bf16", [])
    if tr:
        for layout in ("fwd", "dgrad", "wgrad"):
            vals = [r["tflops"] for r in tr if r["layout"] == layout and "tflops" in r]
            if not vals:
                continue
            print(f"training {layout}: n={len(vals)} median {statistics.median(vals):.0f} "
                  f"min {min(vals):.0f} max {max(vals):.0f}")


if __name__ == "__main__":
    main()
