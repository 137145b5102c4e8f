"""Latency statistics of a serving run's requests: percentiles, SLO attainment, goodput.

Shared by the whole-run summary (the requests after the warm-up) and the steady window (the
requests that arrived in it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.ma  # (np.percentile needs it; numpy 2 imports it lazily, in the first run)

from simulator.engine.serving.requests import COMPLETED, DROPPED, Requests
from simulator.profiles.inference import SLO
from simulator.results.inference import Percentiles, RequestRecords, SLOTarget


def percentiles(values: np.ndarray) -> Percentiles:
    """Mean and percentiles of ``values``, NaN left out."""
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return Percentiles(mean=None, p50=None, p90=None, p99=None)
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return Percentiles(mean=float(np.mean(values)), p50=float(p50), p90=float(p90),
                       p99=float(p99))


def slo_checks(slo: SLO, *, ttft: np.ndarray, tpot: np.ndarray,
               e2e: np.ndarray) -> dict[str, np.ndarray]:
    """Per target the SLO sets (by name), which requests meet it: the one definition, for
    the run's attainment and the autoscaler alike. A latency meets its target when it is
    not over it, so a latency never measured (NaN) is no miss: a one-token output has no
    TPOT and meets that target vacuously, and a request dropped or not finished has no
    TTFT or end-to-end latency (its callers choose whether it is judged)."""
    checks: dict[str, np.ndarray] = {}
    for name, values in (("ttft_s", ttft), ("tpot_s", tpot), ("e2e_s", e2e)):
        target = getattr(slo, name)
        if target is not None:
            checks[name] = ~(np.asarray(values, dtype=float) > target)
    return checks


def slo_met(slo: SLO, *, ttft: np.ndarray, tpot: np.ndarray, e2e: np.ndarray) -> np.ndarray:
    """Which requests meet every target the SLO sets (see :func:`slo_checks`)."""
    met = np.ones(len(ttft), dtype=bool)
    for ok in slo_checks(slo, ttft=ttft, tpot=tpot, e2e=e2e).values():
        met &= ok
    return met


def _slo(slo: SLO | None, metrics: dict[str, np.ndarray], n_dropped: int,
         many: np.ndarray) -> tuple[float | None, dict[str, SLOTarget], np.ndarray | None]:
    """Attainment of the completed requests in ``metrics`` (the TPOT of a one-token output
    is NaN: it meets that target) with the dropped ones counted as misses; per target, its
    value at the SLO's percentile over the requests that have one (``many``: the outputs
    of more than one token, for TPOT)."""
    if slo is None:
        return None, {}, None
    ok_all = np.ones(len(many), dtype=bool)
    targets: dict[str, SLOTarget] = {}
    checks = slo_checks(slo, ttft=metrics["ttft_s"], tpot=metrics["tpot_s"],
                        e2e=metrics["e2e_s"])
    for name, ok in checks.items():
        target, values = getattr(slo, name), metrics[name]
        ok_all &= ok
        shown = values[many] if name == "tpot_s" else values
        value = float(np.percentile(shown, slo.percentile)) if len(shown) else None
        total = len(values) + n_dropped
        attained = float(np.sum(ok)) / total if total else 0.0
        targets[name] = SLOTarget(target_s=target, percentile=slo.percentile, value_s=value,
                                  met=total > 0 and attained >= slo.percentile / 100,
                                  attainment=attained)
    total = len(ok_all) + n_dropped
    if not targets or total == 0:
        return None, targets, None
    return float(np.sum(ok_all)) / total, targets, ok_all


def latencies(requests: Requests, records: RequestRecords, measured: np.ndarray,
              slo: SLO | None, duration: float) -> dict[str, Any]:
    """The latency statistics, SLO attainment and goodput (per second of ``duration``) of
    the requests ``measured`` selects: the completed ones among them give the latencies,
    the dropped ones count against the SLO."""
    done = measured & (requests.status == COMPLETED)
    metrics = {name: getattr(records, name)[done]
               for name in ("ttft_s", "tpot_s", "e2e_s", "queue_s")}
    many = requests.output_tokens[done] > 1
    n_dropped = int(np.sum((requests.status == DROPPED) & measured))
    attainment, targets, ok = _slo(slo, metrics, n_dropped, many)
    goodput = None
    if ok is not None:
        goodput = float(np.sum(ok)) / duration if duration > 0 else 0.0
    return dict(ttft_s=percentiles(metrics["ttft_s"]), tpot_s=percentiles(metrics["tpot_s"]),
                e2e_s=percentiles(metrics["e2e_s"]), queue_s=percentiles(metrics["queue_s"]),
                slo_attainment=attainment, slo=targets, goodput_requests_per_s=goodput)
