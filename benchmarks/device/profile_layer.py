"""Kernel-by-kernel GPU time of one forward and backward of the `measure_layer.py` stack.

    PYTHONUNBUFFERED=1 python benchmarks/device/profile_layer.py OUT.json

Why: the whole-layer time says how far xpusim's per-device model is from the hardware; the
kernel table says where (GEMMs, attention, or the memory-bound kernels between them).
"""

from __future__ import annotations

import json
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from measure_layer import CONFIGS, DEV, Layer


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "profile.json"
    name, h, ffn, heads, kv, layers, seq, batch = CONFIGS[0]
    stack = [Layer(h, ffn, heads, kv) for _ in range(layers)]
    x0 = (torch.randn(batch, seq, h, device=DEV) * 0.5).to(torch.bfloat16).requires_grad_()
    grad = torch.randn(batch, seq, h, device=DEV).to(torch.bfloat16)

    def step():
        x = x0
        for layer in stack:
            x = layer(x)
        x.backward(grad)

    for _ in range(20):
        step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            step()
        torch.cuda.synchronize()
    rows = []
    for e in prof.key_averages():
        if e.device_time_total > 0:
            rows.append({"kernel": e.key[:160], "count": e.count,
                         "gpu_s_per_layer_step": e.device_time_total / 1e6 / 5 / layers})
    rows.sort(key=lambda r: -r["gpu_s_per_layer_step"])
    total = sum(r["gpu_s_per_layer_step"] for r in rows)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "config": name, "seq": seq,
           "gpu_s_per_layer_step": total, "kernels": rows}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(f"{name}: {total * 1e3:.2f} ms of kernels per layer per step")
    for r in rows[:25]:
        print(f"{r['gpu_s_per_layer_step'] * 1e3:8.3f} ms x{r['count'] // 5 // layers:<3} "
              f"{r['kernel'][:110]}")


if __name__ == "__main__":
    main()
