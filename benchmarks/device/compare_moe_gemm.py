"""Set the grouped expert GEMMs `measure_moe_gemm.py` timed beside xpusim's price for them.

    python benchmarks/device/compare_moe_gemm.py OUT.json [PROFILE]

No GPU needed. PROFILE defaults to the hardware profile of the device named in the file
(h100-sxm or h200-sxm). Each row prints the measured time, xpusim's time for the same
grouped kernel (one launch: its in-kernel time, max of compute and memory, plus the
profile's per-kernel overhead) and their ratio; above 1 the device was slower than priced.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from simulator.perf.kernel import kernel_time
from simulator.perf.mlp_ops import ExpertGemm
from simulator.perf.opspec import Prec
from simulator.perf.roofline import op_rates
from simulator.profiles.catalog import load_hardware
from simulator.profiles.precision import Precision


def priced_seconds(profile: str, precision: str, groups: int, rows: int, k: int,
                   n: int) -> float:
    """xpusim's seconds for one grouped launch of ``groups`` experts of (rows x k) @ (k x n)."""
    p = Precision(precision)
    prec = Prec(weight=p, act=p, compute=p, kv=p, other=Precision.BF16)
    op = ExpertGemm(name="expert", m=rows, k=k, n=n, groups=groups).forward(prec)[0]
    rates = op_rates(load_hardware(profile), op.precision, op.kind)
    t = kernel_time(rates, op.flops, op.bytes, op.count, op.gemm_flops_each)
    return max(t.compute_s, t.memory_s) + rates.kernel_s


def profile_for(device: str) -> str:
    return "h200-sxm" if "H200" in device else "h100-sxm"


def main(path: str, profile: str | None = None) -> None:
    data = json.loads(Path(path).read_text())
    profile = profile or profile_for(data["device"])
    print(f"{data['device']} (torch {data['torch']}) against {profile}")
    print(f"{'layout':<14}{'proj':<9}{'rows':>5}  {'kernel':<13}{'measured us':>12}"
          f"{'priced us':>11}{'ratio':>7}")
    for row in data["rows"]:
        if "seconds" not in row:
            print(f"{row['layout']:<14}{row['projection']:<9}{row['rows']:>5}  "
                  f"{row['kernel']:<13}{row['error'][:60]}")
            continue
        precision = "bf16" if row["kernel"].endswith("bf16") else "fp8"
        priced = priced_seconds(profile, precision, row["groups"], row["rows"], row["k"],
                                row["n"])
        print(f"{row['layout']:<14}{row['projection']:<9}{row['rows']:>5}  "
              f"{row['kernel']:<13}{row['seconds'] * 1e6:>12.1f}{priced * 1e6:>11.1f}"
              f"{row['seconds'] / priced:>7.2f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
