"""Time of collectives on a profile's scale-up and scale-out fabrics (the alpha-beta model).

Every algorithm costs ``beta + alpha``: ``beta`` is the bytes a device must push through its
links divided by the achieved ("bus") bandwidth, ``alpha`` the per-step latency times the
steps the algorithm serialises. Bus bandwidth follows the nccl-tests convention
(PERFORMANCE.md): one-way link bandwidth times the profile's measured collective efficiency,
so that a ring all-reduce of S bytes over n devices moves 2(n-1)/n·S per device.

Where a group sits decides the fabric: all members in one scale-up domain (NVSwitch, xGMI
mesh, ICI/NeuronLink torus), one member per domain (scale-out only), or several members in
each of several domains (hierarchical). ``algorithm="auto"`` returns the fastest algorithm
the fabric offers, as NCCL's tuner does. Formulas and sources: docs/modelling_collectives.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import cast

import numpy as np

from simulator.perf.collective_size import scale_up_size_factor, scale_up_size_factors
from simulator.perf.ops import Collective, CommOp, Group
from simulator.profiles.hardware import HardwareProfile
from simulator.profiles.interconnect import ScaleUpTopology
from simulator.profiles.torus_slice import slice_wraps

# NVLink SHARP (NVLS) all-reduce reaches this multiple of the ring's bus bandwidth. Measured:
# 8xH200 480/367 = 1.31, 8xB200 838/682 = 1.23, GB200 NVL72 850/680 = 1.25 (hardware_facts
# §9d, from stas00/ml-engineering). The ideal one-pass gain, 2(n-1)/n, is not reached.
NVLS_GAIN = 1.25

ALGORITHMS = ("auto", "ring", "tree", "nvls", "torus_ring", "direct", "hierarchical")


@dataclass(frozen=True, kw_only=True)
class CollectiveCost:
    """What one collective costs each member of its group.

    ``bus_bytes`` is what each device sends over its links, summed over the fabrics it uses
    (ring all-reduce: 2(n-1)/n·S; NVLS all-reduce: S). ``fabric`` says where the group sits:
    "local", "scale_up", "scale_out" or "hierarchical" (several members in each of several
    domains).
    """

    time_s: float
    fabric: str
    algorithm: str
    bus_bytes: float

    def __add__(self, other: CollectiveCost) -> CollectiveCost:
        if not isinstance(other, CollectiveCost):
            return NotImplemented
        if other.fabric == "local":
            return self
        if self.fabric == "local":
            return other
        return CollectiveCost(time_s=self.time_s + other.time_s,
                              fabric=self.fabric if self.fabric == other.fabric else "mixed",
                              algorithm=self.algorithm if self.algorithm == other.algorithm
                              else f"{self.algorithm}+{other.algorithm}",
                              bus_bytes=self.bus_bytes + other.bus_bytes)

    def __radd__(self, other: object) -> CollectiveCost:
        # lets sum() start from 0
        if other == 0:
            return self
        return NotImplemented

    def repeated(self, count: int) -> CollectiveCost:
        """``count`` identical collectives issued one after another."""
        if count == 0:
            return LOCAL
        return CollectiveCost(time_s=self.time_s * count, fabric=self.fabric,
                              algorithm=self.algorithm, bus_bytes=self.bus_bytes * count)


LOCAL = CollectiveCost(time_s=0.0, fabric="local", algorithm="none", bus_bytes=0.0)


@dataclass(frozen=True, kw_only=True)
class _Fabric:
    """One fabric as seen by the ``members`` of a group that meet on it."""

    members: int
    bw: float  # bus bandwidth per device for ring-type collectives, bytes/s
    alpha: float  # latency of one algorithm step, s
    ring_steps: int  # steps of one reduce-scatter or all-gather pass
    ring_name: str  # "ring", or "torus_ring" for per-dimension rings on a torus
    p2p_bw: float  # bandwidth to a single peer, bytes/s
    a2a_bytes: float  # all-to-all bytes sent per buffer byte (multi-hop forwarding included)
    a2a_s_per_byte: float  # all-to-all bandwidth time per buffer byte, s
    # double binary tree offered: only between domains. Inside one node NCCL's (and RCCL's)
    # Tree is a chain through the local devices (NCCL 2.4 blog), no faster than the ring.
    tree: bool = True
    nvls: bool = False
    a2a_alpha: float | None = None  # all-to-all latency floor; None: (members-1) steps


@dataclass(frozen=True, kw_only=True)
class _Part:
    """One candidate algorithm: its bytes per device, bandwidth time and latency."""

    algorithm: str
    bytes: float
    beta: float
    alpha: float

    @property
    def time(self) -> float:
        """Seconds of this part: bandwidth term plus latency term."""
        return self.beta + self.alpha


def collective_time(hw: HardwareProfile, collective: Collective | str, nbytes: float,
                    group: Group, algorithm: str = "auto", *,
                    library: bool = False) -> CollectiveCost:
    """Wall time of one collective of ``nbytes`` (nccl-tests buffer convention) over ``group``.

    ``algorithm`` forces one algorithm ("ring", "tree", "nvls", "torus_ring", "direct",
    "hierarchical"); it must be one the group's fabric offers. ``library``: the collective
    runs in NCCL/RCCL (training), so its scale-up bandwidth follows the profile's size curve
    (:mod:`simulator.perf.collective_size`); serving's own all-reduce kernels do not.
    """
    collective = Collective(collective)
    _validate(nbytes, group, collective, algorithm)
    n = group.size
    if n == 1 or nbytes == 0:
        return LOCAL
    k = group.members_per_domain(hw.scale_up.domain_size.value)
    sized = scale_up_size_factor(hw, collective, nbytes, library)
    if k >= n:
        up = _scaled(_scale_up(hw, n, group.stride), sized)
        fabric, parts = "scale_up", _parts_on(up, collective, nbytes)
    elif k == 1:
        fabric, parts = "scale_out", _parts_on(_scale_out(hw, n), collective, nbytes)
    else:
        up, out = _scaled(_scale_up(hw, k, group.stride), sized), _scale_out(hw, -(-n // k))
        fabric, parts = "hierarchical", _parts_across(up, out, collective, nbytes, group)
    part = _choose(_on_device(hw, collective, nbytes, parts), algorithm, collective, n, fabric)
    return CollectiveCost(time_s=float(part.time), fabric=fabric, algorithm=part.algorithm,
                          bus_bytes=part.bytes)


def one_fabric_times(hw: HardwareProfile, collective: Collective, nbytes: np.ndarray,
                     group: Group, *, library: bool = False) -> np.ndarray | None:
    """``collective_time(hw, collective, b, group, library=library).time_s`` for each ``b``
    of ``nbytes``, elementwise (the fastest algorithm at each size), where the group's
    members all meet on one fabric (inside one scale-up domain, or one per domain); None for
    a hierarchical group (priced one size at a time). Sizes are not validated."""
    n = group.size
    if n == 1:
        return np.zeros(len(nbytes))
    k = group.members_per_domain(hw.scale_up.domain_size.value)
    if k >= n:
        fabric = _scale_up(hw, n, group.stride)
        factors = scale_up_size_factors(hw, collective, nbytes, library)
        if factors is not None:
            fabric = replace(fabric, bw=cast(float, fabric.bw * factors))
    elif k == 1:
        fabric = _scale_out(hw, n)
    else:
        return None
    # (the algorithms' arithmetic works on arrays as on numbers)
    parts = _on_device(hw, collective, cast(float, nbytes),
                       _parts_on(fabric, collective, cast(float, nbytes)))
    one = parts[0].time
    for part in parts[1:]:
        one = np.minimum(one, part.time)
    return np.where(nbytes == 0, 0.0, one)


def comm_op_time(hw: HardwareProfile, op: CommOp, *, library: bool = False) -> CollectiveCost:
    """Cost of ``op.count`` back-to-back repeats of ``op`` (``library``: as
    :func:`collective_time`)."""
    if op.count < 0:
        raise ValueError(f"{op.name}: count must be >= 0, got {op.count}")
    return collective_time(hw, op.collective, op.bytes, op.group,
                           library=library).repeated(op.count)


def _validate(nbytes: float, group: Group, collective: Collective, algorithm: str) -> None:
    if not math.isfinite(nbytes) or nbytes < 0:
        raise ValueError(f"{collective.value}: bytes must be a finite number >= 0, got {nbytes!r}")
    if group.size < 1:
        raise ValueError(f"{collective.value}: group size must be >= 1, got {group.size}")
    if group.stride < 1:
        raise ValueError(f"{collective.value}: group stride must be >= 1, got {group.stride}")
    if collective is Collective.SEND_RECV and group.size > 2:
        raise ValueError(f"send_recv is between a pair of ranks, got a group of {group.size}")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown collective algorithm {algorithm!r}; "
                         f"choose from {', '.join(ALGORITHMS)}")


def _choose(parts: list[_Part], algorithm: str, collective: Collective, n: int,
            fabric: str) -> _Part:
    if algorithm == "auto":
        return min(parts, key=lambda p: p.time)
    for part in parts:
        if part.algorithm == algorithm or (algorithm == "ring" and part.algorithm == "torus_ring"):
            return part
    offered = ", ".join(["auto", *(p.algorithm for p in parts)])
    raise ValueError(f"algorithm {algorithm!r} is not available for {collective.value} over "
                     f"{n} ranks on {fabric}; choose from {offered}")


def _on_device(hw: HardwareProfile, collective: Collective, s: float,
               parts: list[_Part]) -> list[_Part]:
    """``parts`` with the level a device's own ranks add (``scale_up.ranks_per_device`` r > 1:
    logical cores sharing the device's links, as Trainium2's four with LNC=2).

    The r ranks of a device reduce-scatter among themselves first and all-gather last, so the
    links carry what one rank per device would; each pass adds r-1 steps of the scale-up
    latency (on Neuron a step is a DMA and a semaphore handshake driven by the collective
    cores, on the chip or across a link) and copies (r-1)·S through HBM (read and written),
    pipelined with the links as the hierarchical phases are. All-to-all and send/recv are
    left as they are.
    """
    ranks = hw.scale_up.ranks_per_device
    r = ranks.value if ranks is not None else 1
    if r == 1 or collective in (Collective.ALL_TO_ALL, Collective.SEND_RECV):
        return parts
    passes = 2 if collective is Collective.ALL_REDUCE else 1
    copy_s = passes * (r - 1) * s * 2 / (hw.hbm_bandwidth * hw.efficiency.hbm.value)
    alpha = passes * (r - 1) * hw.scale_up.latency.value
    return [_Part(algorithm=p.algorithm, bytes=p.bytes, beta=np.maximum(p.beta, copy_s),
                  alpha=p.alpha + alpha) for p in parts]


# --- fabrics -------------------------------------------------------------------------------

def _scale_up(hw: HardwareProfile, k: int, stride: int) -> _Fabric:
    """The scale-up fabric for ``k`` members ``stride`` ranks apart in one domain."""
    su, a2a = hw.scale_up, hw.efficiency.all_to_all
    link = su.bandwidth_one_way * hw.efficiency.scale_up_collective.value
    # expert all-to-all kernels reach their own fraction of the link (and a latency floor)
    a2a_link = su.bandwidth_one_way * a2a.scale_up.value if a2a else link
    floor = a2a.latency.value if a2a and a2a.latency else None
    alpha = su.latency.value
    if su.topology is ScaleUpTopology.TORUS:  # the run's slice of it (profiles.torus_slice)
        return _torus(*slice_wraps(su), link, alpha, k, stride)
    if su.topology is ScaleUpTopology.MESH:
        # Bandwidth is split evenly over direct links to every other device of the domain;
        # k members can only use the k-1 links among themselves.
        peer = link / (su.domain_size.value - 1)
        bw = peer * (k - 1)
        a2a_bw = a2a_link / (su.domain_size.value - 1) * (k - 1)
        return _Fabric(members=k, bw=bw, alpha=alpha, ring_steps=k - 1, ring_name="ring",
                       p2p_bw=peer, a2a_bytes=(k - 1) / k, a2a_s_per_byte=(k - 1) / k / a2a_bw,
                       tree=False, a2a_alpha=floor)
    # switch: every device reaches any peer at its full bandwidth
    return _Fabric(members=k, bw=link, alpha=alpha, ring_steps=k - 1, ring_name="ring", p2p_bw=link,
                   a2a_bytes=(k - 1) / k, a2a_s_per_byte=(k - 1) / k / a2a_link, tree=False,
                   nvls=su.in_network_reduction, a2a_alpha=floor)


def _scaled(f: _Fabric, factor: float) -> _Fabric:
    """``f`` with its ring bus bandwidth at ``factor`` of the large-message value."""
    return f if factor == 1.0 else replace(f, bw=f.bw * factor)


def _scale_out(hw: HardwareProfile, m: int) -> _Fabric:
    """The scale-out network between ``m`` domains, each device using its own NIC share
    (all-to-all cannot aggregate several NICs: each device's remote share leaves on its
    own)."""
    so, a2a = hw.scale_out, hw.efficiency.all_to_all
    bw = so.bandwidth_one_way * hw.efficiency.scale_out_collective.value
    a2a_bw = so.bandwidth_one_way * a2a.scale_out.value if a2a and a2a.scale_out else bw
    # all peers are sent to at once: one network latency on top of the kernel's floor
    floor = a2a.latency.value + so.latency.value if a2a and a2a.latency else None
    return _Fabric(members=m, bw=bw, alpha=so.latency.value, ring_steps=m - 1, ring_name="ring",
                   p2p_bw=bw, a2a_bytes=(m - 1) / m, a2a_s_per_byte=(m - 1) / m / a2a_bw,
                   a2a_alpha=floor)


def _torus(dims: tuple[int, ...], wraps: tuple[bool, ...], bw_one_way: float, alpha: float,
           k: int, stride: int) -> _Fabric:
    """Bidirectional rings along each torus dimension the group spans (JAX scaling book).

    One direction of one link carries bw/(2·ndims). A dimension the group fills wraps around
    where it has wraparound links (``wraps``): its ring uses both directions of two links. A
    partial or unwrapped one is a line, limited by its middle cut. Bandwidths of dims add.
    """
    link = bw_one_way / (2 * len(dims))
    spans = _torus_spans(tuple(dims), tuple(wraps), stride, k)
    ring_bw = [2 * link * (1.0 if wraps else (e - 1) / (2 * (e // 2))) for e, wraps in spans]
    # all-to-all: average ring distance floor(e²/4)/e hops per byte; the bisection of a line
    # is half that of a ring; dimension-ordered routing, so the slowest dimension decides
    hops = [(e * e // 4) / e for e, _ in spans]
    a2a_bw = [2 * link * (1.0 if wraps else 0.5) for _, wraps in spans]
    return _Fabric(members=k, bw=sum(ring_bw), alpha=alpha, ring_steps=sum(e - 1 for e, _ in spans),
                   ring_name="torus_ring", p2p_bw=link, a2a_bytes=sum(hops),
                   a2a_s_per_byte=max(h / b for h, b in zip(hops, a2a_bw, strict=True)), tree=False)


@lru_cache(maxsize=512)
def _torus_spans(dims: tuple[int, ...], wraps: tuple[bool, ...], stride: int, k: int) -> tuple:
    """(extent, wraps around) of each dimension the members occupy; dims[0] varies fastest."""
    spans, place = [], 1
    for size, wrap in zip(dims, wraps, strict=True):
        extent = len({(j * stride // place) % size for j in range(k)})
        if extent > 1:
            spans.append((extent, wrap and extent == size and size > 2))
        place *= size
    return tuple(spans)


# --- algorithms ----------------------------------------------------------------------------

def _parts_on(f: _Fabric, collective: Collective, s: float) -> list[_Part]:
    """Candidate algorithms for a group whose members all meet on one fabric."""
    k = f.members
    if collective is Collective.SEND_RECV:
        return [_Part(algorithm="direct", bytes=s, beta=s / f.p2p_bw, alpha=f.alpha)]
    if collective is Collective.ALL_TO_ALL:
        alpha = (k - 1) * f.alpha if f.a2a_alpha is None else f.a2a_alpha
        return [_Part(algorithm="direct", bytes=f.a2a_bytes * s, beta=f.a2a_s_per_byte * s,
                      alpha=alpha)]
    passes = 2 if collective is Collective.ALL_REDUCE else 1  # reduce-scatter + all-gather
    ring_bytes = passes * (k - 1) / k * s
    parts = [_Part(algorithm=f.ring_name, bytes=ring_bytes, beta=ring_bytes / f.bw,
                   alpha=passes * f.ring_steps * f.alpha)]
    if collective is Collective.ALL_REDUCE:
        depth = 2 * math.ceil(math.log2(k)) * f.alpha  # up the tree and back down
        if f.tree:
            parts.append(_Part(algorithm="tree", bytes=2 * s, beta=2 * s / f.bw, alpha=depth))
        if f.nvls and k > 2:
            # the switch reduces: each device sends S and receives S, at the measured gain
            parts.append(_Part(algorithm="nvls", bytes=s, beta=ring_bytes / (f.bw * NVLS_GAIN),
                               alpha=depth))
    return parts


def _parts_across(up: _Fabric, out: _Fabric, collective: Collective, s: float,
                  group: Group) -> list[_Part]:
    """Candidates for a group with ``up.members`` ranks in each of ``out.members`` domains."""
    k, n = up.members, group.size
    if collective is Collective.ALL_TO_ALL and group.copies:
        return [_deduplicated_all_to_all(up, out, s, group)]
    if collective is Collective.ALL_TO_ALL:
        # direct: the share of the buffer bound for same-domain peers stays on scale-up
        local, remote = s * k / n, s * (n - k) / n
        alpha = ((k - 1) * up.alpha + (n - k) * out.alpha if out.a2a_alpha is None
                 else out.a2a_alpha)
        # each device's remote share leaves on its own NIC (out: m domains, m-1 remote)
        remote_s = out.a2a_s_per_byte * out.members / (out.members - 1)
        return [_Part(algorithm="direct", bytes=up.a2a_bytes * local + remote,
                      beta=max(up.a2a_s_per_byte * local, remote * remote_s),
                      alpha=alpha)]
    passes = 2 if collective is Collective.ALL_REDUCE else 1
    # Flat ring over all n ranks, one ring per domain member so that every NIC carries 1/k of
    # the traffic; hops inside a domain run concurrently on scale-up. A chunk's latency is
    # the sum over the hops it takes one after another: of a pass's n-1 steps, m-1 cross
    # the network and the rest stay in a domain (NCCL's tuning model: ring latency =
    # intra-node steps x intra latency + inter-node steps x network latency).
    m = out.members
    ring_bytes = passes * (n - 1) / n * s
    flat = _Part(algorithm="ring", bytes=ring_bytes,
                 beta=max(ring_bytes / k / out.bw, ring_bytes * (k - 1) / k / up.bw),
                 alpha=passes * ((n - m) * up.alpha + (m - 1) * out.alpha))
    if collective is not Collective.ALL_REDUCE:
        # NCCL runs reduce-scatter and all-gather across nodes as rings only: its Tree and
        # NVLSTree are all-reduce algorithms, PAT serves one rank per node (NCCL_ALGO).
        return [flat]
    # Hierarchical: reduce-scatter in the domain, the collective across domains on S/k per
    # device (each on its own NIC), all-gather in the domain. NCCL pipelines the phases in
    # chunks, so the two fabrics' bandwidth times overlap; their latencies add.
    up_bytes = passes * (k - 1) / k * s
    up_alpha = passes * up.ring_steps * up.alpha
    hier = min(
        (_Part(algorithm="hierarchical", bytes=up_bytes + p.bytes,
               beta=max(up_bytes / up.bw, p.beta),
               alpha=up_alpha + p.alpha) for p in _parts_on(out, collective, s / k)),
        key=lambda p: p.time,
    )
    return [flat, hier]


def _deduplicated_all_to_all(up: _Fabric, out: _Fabric, s: float, group: Group) -> _Part:
    """An expert all-to-all that crosses the network once per destination domain.

    Each token's ``c = group.copies`` copies go to experts spread evenly over the ``m``
    domains (or over the ``L = max_domains`` its routing allows): it reaches
    ``D = L'·(1 - (1 - 1/L')^c)`` distinct domains, L' = min(m, L), of which (m-1)/m are
    remote, and crosses the network once to each; inside every domain each copy then takes
    one scale-up hop to its expert's rank (with probability (k-1)/k). The two fabrics work
    in a pipeline: the slower one decides.
    """
    m, k = out.members, up.members
    reach = min(m, group.max_domains) if group.max_domains else m
    domains = reach * (1.0 - (1.0 - 1.0 / reach) ** group.copies)
    remote = s / group.copies * domains * (m - 1) / m
    remote_s = out.a2a_s_per_byte * m / (m - 1)
    alpha = ((k - 1) * up.alpha + (group.size - k) * out.alpha if out.a2a_alpha is None
             else out.a2a_alpha)
    return _Part(algorithm="direct", bytes=up.a2a_bytes * s + remote,
                 beta=max(up.a2a_s_per_byte * s, remote * remote_s), alpha=alpha)
