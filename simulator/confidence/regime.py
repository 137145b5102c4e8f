"""The regime of a scenario, the unit an error band is measured and looked up by.

Published cases show that xpusim's error depends on who made the chip (how mature its
profile's physics is), on training against serving, on the number format (fp4 kernels are
the newest) and on MoE (expert routing and all-to-all are the hardest parts to model).
Scale decides whether a run is inside what was measured: for training the whole cluster
(collectives grow with it); for serving one replica, since replicas share nothing but the
router and a fleet of validated replicas is as trustworthy as one.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.profiles.inference import InferenceWorkload
from simulator.profiles.scenario import Scenario

THROUGHPUT, LATENCY = "throughput", "latency"
FAMILIES = (THROUGHPUT, LATENCY)
# A validation metric's family, by prefix. Throughput-like figures (and the step time, the
# GPU-hours and the sustainable rate, which are throughput in other words) are compared apart
# from latencies: a latency at load magnifies small capacity errors, and mixing the two would
# make the throughput band, the one cost and fleet size follow, look worse than it is.
_FAMILY_PREFIXES = (
    (LATENCY, ("inference.ttft_s.", "inference.tpot_s.", "inference.e2e_s.")),
    (THROUGHPUT, ("inference.output_tokens_per_s", "inference.total_tokens_per_s",
                  "inference.requests_per_s", "inference.sustainable_rate_per_s",
                  "training.step_time_s", "training.tokens_per_s",
                  "training.accelerator_hours", "training.time_to_train_s")),
)


def metric_family(metric: str) -> str | None:
    """``throughput`` or ``latency`` for a validation metric path; None for figures of
    neither kind (e.g. expected failure counts), which no band uses."""
    for family, prefixes in _FAMILY_PREFIXES:
        if metric.startswith(prefixes):
            return family
    return None


@dataclass(frozen=True, kw_only=True)
class Regime:
    """What an error band is keyed by; ``scale`` is in accelerators (see the module doc)."""

    vendor: str
    kind: str
    precision: str
    moe: bool
    scale: int

    def describe(self, level: str) -> str:
        """The regime in words, with the attributes ``level`` keys on ('AMD inference fp8
        dense')."""
        parts = {"vendor": self.vendor, "kind": self.kind, "precision": self.precision,
                 "moe": "MoE" if self.moe else "dense"}
        return " ".join(parts[name] for name in _ORDER if name in level.split("+"))


_ORDER = ("vendor", "kind", "precision", "moe")


def regime_of(scenario: Scenario) -> Regime:
    """The regime of a validated scenario."""
    w = scenario.workload
    if isinstance(w, InferenceWorkload):
        layouts = [w.parallelism]
        if w.disaggregation is not None:
            layouts = [w.disaggregation.prefill_parallelism or w.parallelism,
                       w.disaggregation.decode_parallelism or w.parallelism]
        if w.pools is not None:  # a mixed fleet: its largest replica (vendor: its first pool)
            layouts = [pool.parallelism for pool in w.pools]
        scale = max(layout.devices for layout in layouts)
    else:
        scale = scenario.cluster.accelerators
    return Regime(vendor=scenario.hardware.vendor, kind=scenario.kind,
                  precision=w.precision.value, moe=scenario.model.is_moe, scale=scale)
