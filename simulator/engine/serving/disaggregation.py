"""Prefill/decode disaggregation: where the pools sit, and what moving a KV cache costs.

Replicas take consecutive accelerators, prefill replicas first, then decode replicas. A
request's KV cache goes from its prefill replica to its decode replica when its prompt is
done: each prefill device sends its share (its K/V heads, or the whole MLA latent) and each
decode device receives its own share, as point-to-point transfers priced by
:func:`simulator.perf.collectives.collective_time` on the scale-up fabric when both replicas
sit in one scale-up domain, else on the scale-out network. The slower side decides.
Transfers into one decode replica, and out of one prefill replica, queue one after another
(each link carries one transfer at a time), except that a replica with attention DP ranks
has one lane per rank (a request's cache lives on one rank, whose devices have their own
links); the prefill replica keeps the blocks until its transfer ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.perf.collectives import collective_time
from simulator.perf.local_attention import kv_held_fraction
from simulator.perf.memory import kv_bytes_per_token
from simulator.perf.ops import Collective, Group
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.inference import InferenceParallelism
from simulator.profiles.model import ModelProfile
from simulator.profiles.precision import Precision


@dataclass(frozen=True)
class Placement:
    """The accelerators a replica occupies: ``first`` .. ``first + devices - 1``."""

    first: int
    devices: int

    def domains(self, domain_size: int) -> set[int]:
        """The scale-up domains (of ``domain_size`` devices) its devices sit in."""
        return {d // domain_size for d in range(self.first, self.first + self.devices)}


def place(layouts: list[InferenceParallelism]) -> list[Placement]:
    """Consecutive placements of replicas with the given layouts."""
    out, first = [], 0
    for par in layouts:
        out.append(Placement(first, par.devices))
        first += par.devices
    return out


@dataclass(kw_only=True)
class KVTransfer:
    """Prices and queues KV-cache transfers between a prefill and a decode pool."""

    hw: HardwareProfile
    model: ModelProfile
    kv_precision: Precision
    prefill: InferenceParallelism
    decode: InferenceParallelism
    prefill_places: list[Placement]
    decode_places: list[Placement]

    def __post_init__(self) -> None:
        # one lane per attention DP rank: each rank's devices have links of their own
        self._out_free = [[0.0] * self.prefill.attention_dp for _ in self.prefill_places]
        self._in_free = [[0.0] * self.decode.attention_dp for _ in self.decode_places]
        self._send = kv_bytes_per_token(self.model, self.kv_precision, self.prefill.tp,
                                        self.prefill.pp)
        self._recv = kv_bytes_per_token(self.model, self.kv_precision, self.decode.tp,
                                        self.decode.pp)

    def fabric(self, p: int, d: int) -> str:
        """``scale_up`` if prefill ``p`` and decode ``d`` share one scale-up domain, else
        ``scale_out``."""
        size = self.hw.scale_up.domain_size.value
        both = (self.prefill_places[p].domains(size) | self.decode_places[d].domains(size))
        return "scale_up" if len(both) == 1 else "scale_out"

    def duration(self, p: int, d: int, tokens: int) -> float:
        """Seconds to move ``tokens`` tokens of KV cache from prefill ``p`` to decode ``d``
        (sliding-window layers send only their window: perf.local_attention)."""
        tokens_sent = tokens * kv_held_fraction(self.model, tokens)
        up = self.fabric(p, d) == "scale_up"
        group = Group(2, 1 if up else self.hw.scale_up.domain_size.value)
        send = collective_time(self.hw, Collective.SEND_RECV, self._send * tokens_sent, group)
        recv = collective_time(self.hw, Collective.SEND_RECV, self._recv * tokens_sent, group)
        return max(send.time_s, recv.time_s)

    def schedule(self, p: int, d: int, tokens: int, ready_s: float) -> tuple[float, float]:
        """Queue a transfer ready at ``ready_s`` on the earliest free lane (attention DP
        rank) of each side; returns its (start, end)."""
        out, into = self._out_free[p], self._in_free[d]
        o, i = out.index(min(out)), into.index(min(into))
        start = max(ready_s, out[o], into[i])
        end = start + self.duration(p, d, tokens)
        out[o] = into[i] = end
        return start, end
