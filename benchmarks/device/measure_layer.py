"""Time Llama-style decoder layers, forward and backward, on one NVIDIA GPU for many seconds.

    PYTHONUNBUFFERED=1 python benchmarks/device/measure_layer.py OUT.json

Why: `measure_kernels.py` times kernels one at a time; a training step runs them back to
back for hours, under the board's power limit and with the memory-bound kernels between the
GEMMs. This script runs a stack of decoder layers (RMSNorm, fused QKV, RoPE-free cuDNN
attention, output projection, SwiGLU MLP, residuals; bf16 weights and activations, PyTorch
eager, no tensor parallelism) forward and backward for a fixed wall time and records the
median step, the clocks and the power. `tests/test_device_layer.py` holds xpusim's
prediction for the same layers against the recorded times.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

DEV, BF16 = "cuda", torch.bfloat16

# (name, hidden, ffn, heads, kv_heads, layers in the stack, tokens per sequence, sequences)
CONFIGS = [
    ("llama3-8b", 4096, 14336, 32, 8, 4, 4096, 1),
    ("llama3-8b-8k", 4096, 14336, 32, 8, 4, 8192, 1),
    ("llama3-70b-tp8", 8192, 28672 // 8, 64 // 8, 1, 4, 4096, 1),
]


def param(*shape):
    return (torch.randn(shape, device=DEV) * shape[-1] ** -0.5).to(BF16).requires_grad_()


class Layer:
    def __init__(self, h, ffn, heads, kv):
        self.heads, self.kv, self.d = heads, kv, 128
        self.norm1 = torch.ones(h, device=DEV, dtype=BF16, requires_grad=True)
        self.norm2 = torch.ones(h, device=DEV, dtype=BF16, requires_grad=True)
        self.qkv = param((heads + 2 * kv) * self.d, h)
        self.o = param(h, heads * self.d)
        self.gate_up = param(2 * ffn, h)
        self.down = param(h, ffn)

    def params(self):
        return [self.norm1, self.norm2, self.qkv, self.o, self.gate_up, self.down]

    def __call__(self, x):
        b, s, h = x.shape
        y = F.rms_norm(x, (h,), self.norm1)
        q, k, v = F.linear(y, self.qkv).split(
            [self.heads * self.d, self.kv * self.d, self.kv * self.d], dim=-1)
        q = q.view(b, s, self.heads, self.d).transpose(1, 2)
        k = k.view(b, s, self.kv, self.d).transpose(1, 2)
        v = v.view(b, s, self.kv, self.d).transpose(1, 2)
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                               enable_gqa=self.kv != self.heads)
        x = x + F.linear(a.transpose(1, 2).reshape(b, s, self.heads * self.d), self.o)
        y = F.rms_norm(x, (h,), self.norm2)
        g, u = F.linear(y, self.gate_up).chunk(2, dim=-1)
        return x + F.linear(F.silu(g) * u, self.down)


def smi() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception as exc:
        return repr(exc)


def run(name, h, ffn, heads, kv, layers, seq, batch, seconds):
    stack = [Layer(h, ffn, heads, kv) for _ in range(layers)]
    x0 = (torch.randn(batch, seq, h, device=DEV) * 0.5).to(BF16).requires_grad_()
    grad = torch.randn(batch, seq, h, device=DEV).to(BF16)

    def forward():
        x = x0
        for layer in stack:
            x = layer(x)
        return x

    def step():
        forward().backward(grad)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    fwd = []
    for _ in range(10):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.no_grad():
            e0.record()
            forward()
            e1.record()
        torch.cuda.synchronize()
        fwd.append(e0.elapsed_time(e1) / 1e3)
    steps, readings = [], []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        step()
        e1.record()
        torch.cuda.synchronize()
        steps.append(e0.elapsed_time(e1) / 1e3)
        if len(steps) % 20 == 0:
            readings.append(smi())
    second_half = steps[len(steps) // 2:]
    row = {"name": name, "hidden": h, "ffn": ffn, "heads": heads, "kv_heads": kv,
           "layers": layers, "seq": seq, "batch": batch,
           "forward_s_per_layer": statistics.median(fwd) / layers,
           "step_s_per_layer": statistics.median(second_half) / layers,
           "first_steps_s_per_layer": statistics.median(steps[:10]) / layers,
           "steps": len(steps), "smi": readings[-3:]}
    print(f"{name}: fwd {row['forward_s_per_layer'] * 1e3:.2f} ms/layer, fwd+bwd "
          f"{row['step_s_per_layer'] * 1e3:.2f} ms/layer (first steps "
          f"{row['first_steps_s_per_layer'] * 1e3:.2f}), {len(steps)} steps, {readings[-1:]}",
          flush=True)
    return row


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "layer.json"
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d"), "rows": [], "errors": {}}
    for cfg in CONFIGS:
        try:
            out["rows"].append(run(*cfg, seconds=25.0))
        except Exception as exc:
            out["errors"][cfg[0]] = repr(exc)[:500]
            print("ERROR", cfg[0], exc, flush=True)
        torch.cuda.empty_cache()
        with open(path, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
