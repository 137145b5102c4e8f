"""The serving system: arrivals, routers, the replica pools and the hand-offs between them.

Requests arrive at their times (all requests of one instant together), are dropped if no
replica could ever hold them, else routed to a replica of the first pool. A replica reports
what each iteration ended; finished requests leave the system, and on a prefill replica the
requests whose prompt is done are routed to a decode replica and their KV cache sent there.

With closed-loop clients (``arrivals.process: closed``) only each client's first request
has a time in advance; a request that ends (completed or dropped) releases the next one,
after the clients' think time, as a new arrival. Multi-turn sessions (``workload.sessions``)
work alike: only a session's first turn has a time in advance, and each turn's end sends
the next after the think time; a dropped turn drops the rest of its session.

The system counts the requests in it over time (the integral of its in-system count), which
the summary checks against Little's law computed from the per-request records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import simpy
from simpy.events import Timeout

from simulator.engine.serving.disaggregation import KVTransfer
from simulator.engine.serving.metrics import Series
from simulator.engine.serving.replica import Replica
from simulator.engine.serving.requests import COMPLETED, DROPPED, Requests
from simulator.engine.serving.router import RoutingPolicy


@dataclass(slots=True)
class InSystem:
    """Requests arrived and not yet finished, integrated over time."""

    count: int = 0
    area: float = 0.0
    last: float = 0.0

    def move(self, t: float, delta: int) -> None:
        """``delta`` requests enter (or leave, if negative) at ``t``."""
        self.area += self.count * (t - self.last)
        self.last = t
        self.count += delta


class ServingSystem:
    """Pools of replicas and what moves between them. ``decode`` is empty unless the
    deployment is disaggregated (then ``replicas`` is the prefill pool)."""

    def __init__(self, *, env: simpy.Environment, requests: Requests, series: Series,
                 routers: tuple[RoutingPolicy, RoutingPolicy | None], droppable: np.ndarray,
                 transfer: KVTransfer | None = None,
                 closed: tuple[int, float] | None = None,
                 sessions: tuple[int, float] | None = None):
        self.env = env
        self.requests = requests
        self.series = series
        self.router, self.decode_router = routers
        self.droppable = droppable.tolist()
        self.transfer = transfer
        self.replicas: list[Replica] = []
        self.decode: list[Replica] = []
        # outstanding requests per replica of each pool, as the routers see them
        self.loads: list[int] = []
        self.decode_loads: list[int] = []
        self.in_system = InSystem()
        self.dropped = 0
        # closed loop: (clients, think time); the next request no client has sent yet
        self.closed = closed
        self._unsent = min(closed[0], len(requests)) if closed else len(requests)
        # multi-turn sessions: (turns, think time); a turn's end sends the session's next
        self.sessions = sessions
        # a router that looks the request up (cache-aware), else None
        self._by_request = getattr(self.router, "choose_request", None)
        # autoscaling: told (replica, time) when a first-pool replica's load goes down
        self.drained: Callable[[int, float], None] | None = None

    def add(self, replica: Replica, decode: bool = False) -> None:
        """Add a replica to the first pool (or the decode pool)."""
        pool, loads = (self.decode, self.decode_loads) if decode else (self.replicas, self.loads)
        replica.slot, replica.decode_pool = len(pool), decode
        pool.append(replica)
        loads.append(0)

    # ---- arrivals ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the arrivals (an immediate event, as a SimPy process would start)."""
        turns = self.sessions[0] if self.sessions else 1
        self._times = self.requests.arrival_s[:self._unsent:turns].tolist()
        self._turns = turns
        self._next = 0
        start = self.env.event()
        start.callbacks.append(self._arrivals)
        start.succeed(False)

    def _arrivals(self, event: simpy.Event) -> None:
        """The requests of each arrival instant up to the present; then a timeout until the
        next one (whose value is True: when it fires, its requests are arriving)."""
        times, i = self._times, self._next
        n = len(times)
        now = self.env.now
        due = event.value
        arrive: Callable[[int, float], None] = self._arrive
        if self._turns > 1:  # the times are the sessions' first turns
            arrive = self._first_turn_arrive
        while i < n:
            t = times[i]
            if not due and t > now:
                self._next = i
                Timeout(self.env, t - now, True).callbacks.append(self._arrivals)
                return
            due = False
            while i < n and times[i] == t:  # one request arrives
                arrive(i, t)
                i += 1
        self._next = i

    def _first_turn_arrive(self, i: int, t: float) -> None:
        """Session ``i``'s first turn arrives at ``t``."""
        self._arrive(i * self._turns, t)

    def _next_turns(self, finished: list[int], t: float) -> None:
        """Sessions: each finished turn sends its session's next one after the think
        time (an event of its own, as a closed-loop client's next request)."""
        assert self.sessions is not None
        turns, think = self.sessions
        arrival = self.requests.arrival_s
        for r in finished:
            nxt = r + 1
            if nxt % turns:
                at = t + think
                arrival[nxt] = at
                Timeout(self.env, max(0.0, at - self.env.now)).callbacks.append(
                    self._arrival_of(nxt, at))

    def _drop_session_rest(self, r: int, t: float) -> None:
        """A dropped turn ends its session: the later turns (longer still) are dropped at
        ``t`` too, so that every request completes or is dropped."""
        assert self.sessions is not None
        turns = self.sessions[0]
        reqs = self.requests
        for later in range(r + 1, (r // turns + 1) * turns):
            reqs.arrival_s[later] = t
            reqs.status[later] = DROPPED
            self.dropped += 1

    def _send_next(self, n: int, t: float) -> None:
        """Closed loop: ``n`` clients had their answers at ``t``; each sends its next request
        after the think time. The arrival is an event of its own, after whatever is
        reporting now has planned its next iteration (as an open-loop arrival at that
        instant would be)."""
        assert self.closed is not None
        think, reqs = self.closed[1], self.requests
        for _ in range(n):
            r = self._unsent
            if r >= len(reqs):
                return
            self._unsent = r + 1
            at = t + think
            reqs.arrival_s[r] = at
            event = Timeout(self.env, max(0.0, at - self.env.now))
            event.callbacks.append(self._arrival_of(r, at))

    def _arrival_of(self, r: int, at: float) -> Callable[[simpy.Event], None]:
        """The callback of ``r``'s arrival event."""
        def arrive(_event: simpy.Event) -> None:
            """Route ``r`` when its arrival event fires."""
            self._arrive(r, at)
        return arrive

    def _arrive(self, r: int, t: float) -> None:
        """Request ``r`` arrives at ``t``: dropped if no replica could ever hold it (a
        closed-loop client then sends its next one), else routed."""
        reqs = self.requests
        if self.droppable[r]:
            reqs.status[r] = DROPPED
            self.dropped += 1
            if self.closed:
                self._send_next(1, t)
            elif self.sessions:
                self._drop_session_rest(r, t)
            return
        self.in_system.move(t, +1)
        loads = self.loads
        by_request = self._by_request
        k = self.router.choose(loads) if by_request is None else by_request(r, loads)
        loads[k] += 1
        reqs.replica[r] = k
        self.replicas[k].enqueue(r, t)

    # ---- what replicas report -----------------------------------------------------------------
    def on_outcome(self, replica: Replica, finished: list[int], handoff: list[int],
                   t: float) -> None:
        """``replica``'s iteration (or run) ended at ``t``: ``finished`` requests completed,
        ``handoff`` requests' prompts are done (on a prefill replica)."""
        reqs = self.requests
        if replica.decode_pool:
            loads, router = self.decode_loads, self.decode_router
            assert router is not None
        else:
            loads, router = self.loads, self.router
        slot = replica.slot
        if finished:
            n = len(finished)
            for r in finished:
                reqs.finish_s[r] = t
                reqs.status[r] = COMPLETED
            self.in_system.move(t, -n)  # what n moves at one time add up to, exactly
            loads[slot] -= n
            router.lowered(slot, loads[slot])
            replica.stats.completed += n
            replica.meter.completed += n
            if self.closed:
                self._send_next(n, t)
            elif self.sessions:
                self._next_turns(finished, t)
            if self.drained is not None:
                self.drained(slot, t)
        for r in handoff:
            loads[slot] -= 1
            router.lowered(slot, loads[slot])
            self._hand_off(replica, r, t)

    def _hand_off(self, source: Replica, r: int, t: float) -> None:
        """Route ``r``, whose prompt ``source`` has done, to a decode replica and send its
        KV cache there; it is queued there when the transfer ends."""
        assert self.transfer is not None and self.decode_router is not None
        reqs = self.requests
        d = self.decode_router.choose(self.decode_loads)
        self.decode_loads[d] += 1
        target = self.decode[d]
        reqs.decode_replica[r] = target.index
        start, end = self.transfer.schedule(source.index, d, reqs.prompt_len[r], t)
        reqs.transfer_s[r] = end - start
        source.stats.handed_off += 1
        source.stats.transfer_s += end - start
        target.stats.transfer_s += end - start

        def deliver(_event: simpy.Event) -> None:
            """The KV cache has arrived: ``r`` joins the decode replica's queue."""
            source.handed_off(r, end)
            reqs.target[r] = 0  # arrives with its KV cache
            reqs.done[r] = 0
            target.enqueue(r, end)

        self.env.timeout(max(0.0, end - self.env.now)).callbacks.append(deliver)
