"""Where each pipeline stage's time goes, booked as the step is simulated.

Every interval of a stage is booked in exactly one category (waiting for a transfer in
flight, for data-parallel communication, or idle) as it happens; the passes a stage runs
are counted per route and turned into compute and exposed TP/EP/CP time once, at the end
(:meth:`Ledger.settle`), so that a pass costs one addition while the step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simulator.engine.training.plan import Chunk

CATEGORIES = ("compute", "tp", "ep", "cp", "pp", "dp", "bubble")


@dataclass(slots=True)
class Ledger:
    """One stage's time by category, bytes moved and network busy time.

    ``runs[chunk][backward]`` counts the passes run of each (chunk, direction) (fractions of
    a pass count as fractions); ``order`` lists those (chunk, backward) pairs in the order
    the stage first runs them, the order ``settle`` sums them in.
    """

    time: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0.0))
    runs: list[list[float]] = field(default_factory=list)
    order: list[tuple[int, bool]] = field(default_factory=list)
    hbm_bytes: float = 0.0
    network_s: float = 0.0  # seconds the stage's links carry its traffic (sends both ways)
    slowed_s: float = 0.0  # compute seconds lost to the SMs of overlapped collectives
    end_s: float | None = None  # when its gradients are reduced (arrival at the barrier)

    def settle(self, chunks: tuple[Chunk, ...]) -> None:
        """Turn the passes run into compute and exposed communication time, HBM bytes and
        the communication's busy time."""
        time = self.time
        for c, backward in self.order:
            cost = chunks[c].backward if backward else chunks[c].forward
            runs = self.runs[c][backward]
            time["compute"] += runs * cost.compute_s
            time["tp"] += runs * cost.tp_s
            time["ep"] += runs * cost.ep_s
            time["cp"] += runs * cost.cp_s
            self.hbm_bytes += runs * cost.hbm_bytes
            self.network_s += runs * cost.comm_busy_s

    def busy_s(self) -> float:
        """Compute and exposed communication: everything but the bubble."""
        return sum(v for k, v in self.time.items() if k != "bubble")


@dataclass(frozen=True, slots=True, kw_only=True)
class StageTotals:
    """A stage's ledger at the end of the step, as plain numbers (seconds, bytes)."""

    compute_s: float
    tp_s: float
    ep_s: float
    cp_s: float
    pp_s: float
    dp_s: float
    bubble_s: float
    hbm_bytes: float
    network_s: float  # its links' busy time, sends in and out and its DP buckets
    slowed_s: float  # of compute_s: lost to the SMs its overlapped collectives held
    end_s: float  # its arrival at the barrier

    @classmethod
    def of(cls, ledger: Ledger) -> StageTotals:
        """The totals of a settled ledger."""
        t = ledger.time
        assert ledger.end_s is not None
        return cls(compute_s=t["compute"], tp_s=t["tp"], ep_s=t["ep"], cp_s=t["cp"],
                   pp_s=t["pp"], dp_s=t["dp"], bubble_s=t["bubble"],
                   hbm_bytes=ledger.hbm_bytes, network_s=ledger.network_s,
                   slowed_s=ledger.slowed_s, end_s=ledger.end_s)
