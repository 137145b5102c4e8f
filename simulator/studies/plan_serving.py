"""Serving plans: the fewest replicas of each deployment shape that meet the SLO at a rate.

A *shape* is (profile, precision, tp, ep, max batch size). For each shape, in a worker:

1. prune without simulating: the layout must validate and one replica must fit in memory
   (:func:`simulator.perf.footprint.inference_footprint`);
2. start from a roofline lower bound on the replicas (decode limited by streaming the
   weights from HBM at the batch limit, and all tokens limited by peak FLOP/s);
3. find the smallest replica count meeting every SLO target by exponential then binary
   search. This relies on monotonicity: at a fixed arrival rate, adding a replica of the
   same shape never makes the SLO worse (more capacity, same requests). The probe just
   below the answer is always simulated, so the answer's predecessor is known to fail.

Cost is the fleet's dollars per hour (``usd_per_hour``: cost / simulated time, so owned
fleets include their power); at a fixed rate it orders shapes as cost per token does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from simulator.errors import DoesNotFit, InputErrors, XpusimError
from simulator.loading import scenario_from_dict
from simulator.perf.footprint import inference_footprint
from simulator.profiles.inference import InferenceWorkload, mean_tokens
from simulator.profiles.overrides import apply_overrides
from simulator.studies.rows import OK, Base, one_line, result_metrics, run_point

SHAPE_COLUMNS = ["hardware", "precision", "tp", "ep", "max_batch_size"]
CONFIG_COLUMNS = [*SHAPE_COLUMNS, "replicas", "accelerators"]


@dataclass(frozen=True)
class Shape:
    """One deployment shape; ``hardware`` None keeps the scenario's profile."""

    hardware: str | None
    precision: str
    tp: int
    ep: int
    max_batch_size: int

    def labels(self, base_hardware: str) -> dict[str, Any]:
        return {"hardware": self.hardware or base_hardware, "precision": self.precision,
                "tp": self.tp, "ep": self.ep, "max_batch_size": self.max_batch_size}


@dataclass(frozen=True)
class ServingContext:
    """What every worker needs: the base scenario, the target rate and the search limits."""

    base: Base
    rate_per_s: float
    max_accelerators: int
    base_hardware: str


@dataclass
class ShapeOutcome:
    """The search of one shape: every simulated replica count, and the answer."""

    shape: Shape
    rows: list[dict[str, Any]] = field(default_factory=list)
    replicas: int | None = None  # the fewest meeting the SLO; None: none within the cap
    pruned: str = ""  # why the shape was never simulated
    status: str = ""


def shape_overrides(shape: Shape, ctx: ServingContext, replicas: int, pp: int) -> list[str]:
    overrides = [] if shape.hardware is None else [f"hardware={shape.hardware}"]
    return [*overrides, f"workload.precision={shape.precision}",
            f"workload.parallelism.tp={shape.tp}", f"workload.parallelism.ep={shape.ep}",
            f"workload.batching.max_batch_size={shape.max_batch_size}",
            f"workload.arrivals.rate_per_s={ctx.rate_per_s!r}",
            f"workload.replicas={replicas}",
            f"cluster.accelerators={replicas * shape.tp * pp}"]


def _pp(base: Base) -> int:
    par = base.data.get("workload", {}).get("parallelism") or {}
    return int(par.get("pp", 1)) if isinstance(par, dict) else 1


def replica_lower_bound(scenario, rate_per_s: float) -> int:
    """Replicas no fewer than which can sustain ``rate_per_s`` (roofline, no efficiency).

    Decode: each iteration streams a device's weights from HBM at least once and yields at
    most ``max_batch_size`` tokens per replica. Compute: every prompt and output token costs
    2·N_active FLOPs at the replica's peak.
    """
    w = scenario.workload
    assert isinstance(w, InferenceWorkload)
    hw, model = scenario.hardware, scenario.model
    footprint = inference_footprint(scenario)
    prompt, output = mean_tokens(w.prompt_tokens), mean_tokens(w.output_tokens)
    iteration_s = footprint.parts["weights"] / hw.hbm_bandwidth
    decode_tokens_per_s = w.batching.max_batch_size / iteration_s if iteration_s else math.inf
    flops_tokens_per_s = (w.parallelism.devices * hw.peak(w.precision)
                          / (2 * model.params_active))
    need = max(rate_per_s * output / decode_tokens_per_s,
               rate_per_s * (prompt + output) / flops_tokens_per_s)
    return max(1, math.ceil(need))


def min_replicas(meets, start: int, cap: int) -> int | None:
    """The smallest r in [1, cap] with ``meets(r)``, assuming False...False True...True.

    Starts at ``start``: when it meets, r-1 is probed first (usually the bound is tight),
    then binary search below; otherwise the count doubles until it meets, then bisects.
    """
    if cap < 1:
        return None
    r = min(max(1, start), cap)
    lo, hi = 0, r  # lo: largest count known to fail (0: none); hi: known to meet
    if meets(r):
        if r == 1 or not meets(r - 1):
            return r
        hi = r - 1
    else:
        lo = r
        while True:
            nxt = min(cap, lo * 2)
            if nxt == lo:
                return None
            if meets(nxt):
                hi = nxt
                break
            lo = nxt
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if meets(mid):
            hi = mid
        else:
            lo = mid
    return hi


def search_shape(ctx: ServingContext, shape: Shape) -> ShapeOutcome:
    """The task a worker runs for one shape (see the module docstring)."""
    outcome = ShapeOutcome(shape)
    pp = _pp(ctx.base)
    cap = ctx.max_accelerators // (shape.tp * pp)
    overrides = shape_overrides(shape, ctx, 1, pp)
    try:
        scenario = scenario_from_dict(apply_overrides(ctx.base.data, overrides),
                                      base_dir=ctx.base.base_dir, overrides=overrides)
        if not inference_footprint(scenario).fits:
            raise DoesNotFit(inference_footprint(scenario).verdict())
    except DoesNotFit as exc:
        outcome.pruned, outcome.status = one_line(str(exc)), "does_not_fit"
        return outcome
    except InputErrors as exc:
        outcome.pruned = one_line("; ".join(e.render() for e in exc.errors))
        outcome.status = "infeasible"
        return outcome
    except XpusimError as exc:
        outcome.pruned, outcome.status = one_line(str(exc)), "infeasible"
        return outcome
    if cap < 1:
        outcome.pruned = f"one replica needs {shape.tp * pp} accelerators, over the cap"
        outcome.status = "infeasible"
        return outcome

    seen: dict[int, bool] = {}

    def meets(replicas: int) -> bool:
        if replicas not in seen:
            row = _simulate(ctx, shape, replicas, pp)
            outcome.rows.append(row)
            seen[replicas] = row["meets_slo"]
        return seen[replicas]

    start = replica_lower_bound(scenario, ctx.rate_per_s)
    outcome.replicas = min_replicas(meets, start, cap)
    outcome.status = OK if outcome.replicas is not None else "slo_not_met"
    return outcome


def _simulate(ctx: ServingContext, shape: Shape, replicas: int, pp: int) -> dict[str, Any]:
    status, reason, result = run_point(ctx.base, shape_overrides(shape, ctx, replicas, pp))
    row: dict[str, Any] = {**shape.labels(ctx.base_hardware), "replicas": replicas,
                           "accelerators": replicas * shape.tp * pp, "status": status,
                           "reason": reason}
    if result is not None:
        metrics = result_metrics(result, "inference")
        metrics.pop("hardware")
        row.update(metrics)
    row["meets_slo"] = bool(status == OK and row.get("slo_met"))
    return row
