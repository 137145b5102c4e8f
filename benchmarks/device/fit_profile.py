"""Turn a `measure_kernels.py` JSON into hardware-profile efficiency figures.

    python benchmarks/device/fit_profile.py benchmarks/device/h100_kernels.json \
        --peak-bf16 989.4e12 --peak-fp8 1979e12 --hbm 3.35e12

The roofline prices a GEMM of F FLOPs and B bytes at

    t = max(F / (peak * large * F / (F + half)), B / (hbm * stream)) + kernel_overhead

(simulator/perf/roofline.py). kernel_overhead is the time of the smallest elementwise kernel
measured (a 64k-element add) less its bytes at the copy bandwidth, hbm_eff the copy bandwidth
over the datasheet's; the fit then chooses (large, half) that minimise the RMS log error of
predicted against measured time over every GEMM of one precision (the two fixed costs, half
and overhead, cannot be told apart by GEMMs alone). Attention fractions are the median over
shapes of the measured rate divided by peak and by the same size curve. ``stream``, the
fraction of peak bandwidth a memory-bound GEMM reads at, is the least-squares slope of time
against bytes over the decode GEMMs (1-64 rows), with a free intercept: their fixed part
(launch, pipeline fill and drain, a split-K reduction) is not a bandwidth. Prints the figures and
their errors; the numbers go into the profile by hand, with this file and the JSON as source.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass

import numpy as np

BYTES = {"bf16": 2, "fp8": 1}
GEMM_SECTIONS = ("gemm_training_bf16", "gemm_square", "gemm_inference")


@dataclass(frozen=True)
class GemmFit:
    large: float
    half_size_flops: float
    kernel_overhead_s: float
    rms_log_error: float
    median_abs_error: float
    count: int


def gemm_arrays(data: dict, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLOPs, HBM bytes (each operand read once, the bf16 output written once) and seconds."""
    rows = [r for key in GEMM_SECTIONS for r in data.get(key, [])
            if "time_s" in r and r["dtype"] == dtype]
    m, n, k = (np.array([r[c] for r in rows], dtype=float) for c in "mnk")
    flops = 2.0 * m * n * k
    nbytes = (m * k + k * n) * BYTES[dtype] + m * n * 2
    return flops, nbytes, np.array([r["time_s"] for r in rows])


def predict(flops, nbytes, peak, large, half, memory_rate, overhead):
    return np.maximum((flops + half) / (peak * large), nbytes / memory_rate) + overhead


def fit_gemm(flops, nbytes, seconds, peak: float, memory_rate: float,
             overhead: float) -> GemmFit:
    """Grid search over (large, half); the model is cheap, the grid is small."""
    best = None
    for large in np.arange(0.40, 0.951, 0.005):
        for half in np.logspace(8, 11, 61):
            err = np.log(predict(flops, nbytes, peak, large, half, memory_rate, overhead)
                         / seconds)
            rms = float(np.sqrt(np.mean(err**2)))
            if best is None or rms < best[0]:
                best = (rms, large, half, float(np.median(np.abs(np.expm1(err)))))
    rms, large, half, med = best
    return GemmFit(round(float(large), 3), float(half), overhead, rms, med, len(seconds))


STREAM_ROWS = 64  # decode GEMMs up to this many rows read their weights, nothing more


def fit_stream(data: dict, bandwidth: float) -> tuple[float, float]:
    """(stream fraction, fixed seconds): t = B / (bandwidth * stream) + fixed, least squares
    over every decode GEMM of at most ``STREAM_ROWS`` rows, both precisions."""
    rows = [r for r in data.get("gemm_inference", [])
            if "time_s" in r and r["m"] <= STREAM_ROWS and r["dtype"] in BYTES]
    nbytes = np.array([(r["m"] * r["k"] + r["k"] * r["n"]) * BYTES[r["dtype"]]
                       + r["m"] * r["n"] * 2 for r in rows], dtype=float)
    seconds = np.array([r["time_s"] for r in rows])
    design = np.vstack([nbytes / bandwidth, np.ones_like(nbytes)]).T
    (inverse, fixed), *_ = np.linalg.lstsq(design, seconds, rcond=None)
    return float(1.0 / inverse), float(fixed)


def kernel_overhead(data: dict, memory_rate: float) -> float:
    """The smallest elementwise kernel's time less its bytes at the copy bandwidth."""
    small = min((r for r in data["hbm"] if r["op"].startswith("add")), key=lambda r: r["bytes"])
    return small["time_s"] - small["bytes"] / memory_rate


def attention_fractions(data: dict, backend: str, peak: float, half: float) -> tuple[float, float]:
    """Median forward and backward fractions of peak after the size curve."""
    fwd, bwd = [], []
    for r in data.get("attention", []):
        if r.get("backend") != backend or "error" in r:
            continue
        f = 4.0 * r["batch"] * r["heads"] * r["seq"] ** 2 * r["head_dim"]
        f /= 2 if r["causal"] else 1
        fwd.append(r["fwd_tflops"] * 1e12 / peak / (f / (f + half)))
        bwd.append(r["bwd_tflops"] * 1e12 / peak / (2.5 * f / (2.5 * f + half)))
    return statistics.median(fwd), statistics.median(bwd)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json")
    ap.add_argument("--peak-bf16", type=float, required=True, help="dense bf16 FLOP/s")
    ap.add_argument("--peak-fp8", type=float, help="dense fp8 FLOP/s")
    ap.add_argument("--hbm", type=float, required=True, help="datasheet HBM bytes/s")
    args = ap.parse_args()
    with open(args.json) as f:
        data = json.load(f)
    copy = next(r for r in data["hbm"] if r["op"] == "copy")
    hbm_eff = copy["tb_s"] * 1e12 / args.hbm
    print(f"{data['device']}  ({data.get('date')}, torch {data.get('torch')})")
    print(f"hbm: copy {copy['tb_s']:.2f} TB/s = {hbm_eff:.3f} of {args.hbm / 1e12:.2f}")
    overhead = kernel_overhead(data, args.hbm * hbm_eff)
    print(f"kernel_overhead: {overhead * 1e6:.1f} us")
    stream, fixed = fit_stream(data, args.hbm)
    print(f"gemm stream: {stream:.3f} of {args.hbm / 1e12:.2f} TB/s "
          f"(+{fixed * 1e6:.1f} us fixed per decode GEMM)")
    peaks = {"bf16": args.peak_bf16, "fp8": args.peak_fp8}
    half = None
    for dtype, peak in peaks.items():
        if peak is None:
            continue
        fit = fit_gemm(*gemm_arrays(data, dtype), peak, args.hbm * stream, overhead)
        half = half or fit.half_size_flops
        print(f"gemm {dtype}: large {fit.large:.3f}, half_size_flops {fit.half_size_flops:.2e}, "
              f"over {fit.count} GEMMs "
              f"(median |time error| {fit.median_abs_error:.1%})")
    for backend in ("cudnn", "flash"):
        try:
            fwd, bwd = attention_fractions(data, backend, args.peak_bf16, half)
        except statistics.StatisticsError:
            continue
        print(f"attention {backend}: forward {fwd:.3f}, backward {bwd:.3f}")
    for dtype, windows in data.get("sustained_8192", {}).items():
        rates = [w["tflops"] for w in windows]
        print(f"sustained 8192^3 {dtype}: {statistics.median(rates):.0f} TFLOP/s "
              f"(last reading: {windows[-1]['smi']})")


if __name__ == "__main__":
    main()
