"""Serving speed and memory (issue 9).

    python benchmarks/bench_serving.py                  # 10^4, 10^5 and 10^6 requests
    python benchmarks/bench_serving.py --sizes 10000,100000   # quicker

Llama 3.1 70B on 64 replicas of 8 x H100 (TP8, bf16), chat-like lengths (prompts lognormal
with mean 2,000 and sd 1,000 tokens, answers mean 300 and sd 200; as
scenarios/llama3.1-70b-h100-serving.yaml), Poisson arrivals at 420 requests/s: 80% of the
525 requests/s the 64 replicas complete when saturated (8.2 requests/s each, measured with
offline arrivals, see ``--saturation``). Each size runs in a fresh process pinned to one
CPU; the figures are the wall time of ``run_serving`` and the process's peak RSS
(``getrusage``), which includes the interpreter and the imports.

Targets: 10^6 requests in <= 30 s and <= 1 GB; simulated requests per wall-second flat
across 10^4, 10^5 and 10^6 (the slowest within 1.5x of the fastest: the cost is linear).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

from common import ROOT, bare_loop, machine, one_core, peak_rss_bytes, result

RATE = 420.0  # requests/s: 80% of 64 x 8.2
TARGET_S, TARGET_RSS, TARGET_FLAT = 30.0, 1e9, 1.5
# a bare SimPy loop timed in each size's process, so that runs on a quiet and a busy host can
# be told apart (0.65 us an event on the development machine when quiet)
BARE_EVENTS = 300_000


def scenario(requests: int, rate: float = RATE, replicas: int = 64, process: str = "poisson"):
    from simulator.loading import scenario_from_dict

    arrivals = {"process": process, "requests": requests}
    if process != "offline":
        arrivals["rate_per_s"] = rate
    return scenario_from_dict({
        "name": f"benchmark: Llama 3.1 70B on {replicas} x 8 H100, {requests:,} requests",
        "hardware": "h100-sxm", "cluster": {"accelerators": 8 * replicas},
        "model": "llama3.1-70b",
        "workload": {
            "kind": "inference", "precision": "bf16", "parallelism": {"tp": 8},
            "replicas": replicas, "arrivals": arrivals,
            "prompt_tokens": {"dist": "lognormal", "mean": 2000, "std": 1000, "min": 32,
                              "max": 16384},
            "output_tokens": {"dist": "lognormal", "mean": 300, "std": 200, "min": 8,
                              "max": 2048},
            "router": "least_loaded",
            "batching": {"max_batch_size": 128, "max_tokens_per_step": 8192,
                         "chunked_prefill": True}},
        "seed": 11})


def one(requests: int) -> dict:
    """Run one size in this process (pinned to one CPU); what the parent reads."""
    cpu = one_core()
    from simulator.engine.serving import run_serving

    s = scenario(requests)
    bare = bare_loop(BARE_EVENTS)  # before the run: its peak RSS is the run's
    # the imports leave garbage whose full collection a fresh process otherwise pays inside
    # the first run, sometimes (15-25 ms, 5% of a 10^4 run): start-up, not simulation
    gc.collect()
    start = time.perf_counter()
    outcome = run_serving(s)
    wall = time.perf_counter() - start
    r = outcome.result.inference
    return {"requests": requests, "wall_s": wall, "peak_rss": peak_rss_bytes(), "cpu": cpu,
            "bare_us": bare * 1e6,
            "events": outcome.events, "engine_steps": r.engine_steps,
            "iterations": r.iterations, "completed": r.requests,
            "simulated_s": r.duration_s, "ttft_p99": r.ttft_s.p99}


def saturation() -> float:
    """Requests/s one replica completes with every request present at t = 0."""
    from simulator.engine.serving import run_serving

    r = run_serving(scenario(3000, replicas=1, process="offline")).result.inference
    return r.requests_per_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--saturation", action="store_true",
                        help="measure one replica's saturated throughput instead")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one)))
        return 0
    if args.saturation:
        rps = saturation()
        print(f"one replica, offline: {rps:.2f} requests/s; 64 replicas at 80%: "
              f"{0.8 * 64 * rps:.0f} requests/s")
        return 0
    print(f"machine: {machine()}")
    runs = []
    for n in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run([sys.executable, __file__, "--one", str(n)], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
        runs.append(run)
        print(f"{n:>9,} requests: {run['wall_s']:6.2f} s on CPU {run['cpu']}, "
              f"{n / run['wall_s']:8,.0f} requests/s, {run['events'] / n:.2f} SimPy events "
              f"and {run['engine_steps'] / n:.2f} engine steps per request, "
              f"{run['iterations'] / n:.0f} iterations per request, peak RSS "
              f"{run['peak_rss'] / 1e6:,.0f} MB, {run['simulated_s']:,.0f} s simulated; "
              f"bare SimPy loop {run['bare_us']:.2f} us/event",
              flush=True)
    ok = True
    largest = runs[-1]
    n = largest["requests"]
    scale = n / 1e6
    if n >= 1_000_000:
        ok &= result(f"serving {n:,} requests, wall", f"{largest['wall_s']:.1f} s",
                     f"<= {TARGET_S * scale:.0f} s", largest["wall_s"] <= TARGET_S * scale)
        ok &= result(f"serving {n:,} requests, peak RSS", f"{largest['peak_rss'] / 1e6:,.0f} MB",
                     f"<= {TARGET_RSS / 1e6:,.0f} MB", largest["peak_rss"] <= TARGET_RSS)
    rates = {r["requests"]: r["requests"] / r["wall_s"] for r in runs}
    fastest = max(rates.values())
    for size, rate in rates.items():
        ok &= result(f"serving requests per wall-second at {size:,}", f"{rate:,.0f}",
                     f">= fastest / {TARGET_FLAT}", rate * TARGET_FLAT >= fastest)
    if len(rates) > 1:
        spread = max(rates.values()) / min(rates.values())
        ok &= result("serving requests/s, fastest / slowest size", f"{spread:.2f}x",
                     f"<= {TARGET_FLAT}x", spread <= TARGET_FLAT)
    return 0


if __name__ == "__main__":
    sys.exit(main())
