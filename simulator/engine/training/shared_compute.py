"""A stage's compute while its data-parallel collectives hold some of its SMs.

On a GPU a collective is a kernel: NCCL (and RCCL) run one thread block per channel, each
on its own SM (CU), moving and reducing the data. While a gradient reduce-scatter or a
parameter all-gather overlaps a pass, the pass's kernels (a persistent GEMM sizes its grid
to the SMs it finds free) run on the others, so the overlap is not free: the pass does
``1 - share`` of its work per second for as long as the stage's data-parallel channel is
busy (``efficiency.collective_sm_share`` of the hardware profile). Parts with TPUs,
Trainium or Gaudi move collectives with dedicated engines and leave the share out (0).

:class:`SharedCompute` times a part of a pass that starts while the channel is busy as a
fluid at that rate, re-timed when the channel runs dry (as :mod:`.links` re-times a
transfer when another leaves its link), and counts the wall seconds the stage lost, which
the stage books as compute (the kernels ran, slower). A part that starts with the channel
idle stays alone to its end (the stage starts its channel only between parts) and costs
one timer, as without the share: the 405B step simulates with 3% more events.
"""

from __future__ import annotations

import simpy
from simpy.events import Event, Timeout


class SharedCompute:
    """One stage's compute units, shared with its data-parallel channel's kernels."""

    __slots__ = ("busy", "done", "env", "idle_until", "lost_s", "rate", "remaining", "share",
                 "since", "started", "timer", "work_s")

    def __init__(self, env: simpy.Environment, share: float):
        if not 0.0 <= share < 1.0:
            raise ValueError(f"collective SM share must be in [0, 1), got {share}")
        self.env, self.share = env, share
        self.busy = False  # the data-parallel channel has a collective running
        self.done: Event | None = None  # the running part's end, if a part is running
        self.timer: Timeout | None = None
        self.remaining = self.rate = self.since = self.started = self.work_s = 0.0
        self.idle_until = 0.0  # end of the part running on a plain timer, if any
        self.lost_s = 0.0  # wall seconds the collectives' SMs have cost the stage so far

    def run(self, seconds: float) -> Event:
        """Start ``seconds`` of work (its time on the whole device); the event fires when
        it is done.

        A part that starts with the channel idle runs alone to its end, on a plain timer:
        the channel only starts when its stage issues buckets, which the stage does between
        parts, never during one (``set_busy`` checks it)."""
        if not self.busy:
            self.idle_until = self.env.now + seconds
            return Timeout(self.env, seconds)
        done = self.done = Event(self.env)
        self.remaining = self.work_s = seconds
        self.since = self.started = self.env.now
        self.rate = self._rate()
        self._arm()
        return done

    def set_busy(self, busy: bool) -> None:
        """The channel started (``True``) or finished (``False``) its collectives: the
        running part, if any, goes on at the new rate."""
        if busy == self.busy:
            return
        if busy and self.env.now < self.idle_until:
            raise RuntimeError("a data-parallel collective started during a pass that began "
                               "with the channel idle: buckets are issued between parts")
        self.busy = busy
        if self.done is None:
            return
        now = self.env.now
        self.remaining = max(0.0, self.remaining - (now - self.since) * self.rate)
        self.since, self.rate = now, self._rate()
        self._arm()

    def _rate(self) -> float:
        """The share of the device the compute has now."""
        return 1.0 - self.share if self.busy else 1.0

    def _arm(self) -> None:
        """A timer for the running part's end at the current rate (an older one, from
        before a re-timing, then fires unheeded)."""
        timer = self.timer = Timeout(self.env, self.remaining / self.rate)
        timer.callbacks.append(self._finish)

    def _finish(self, event: Event) -> None:
        """A timer fired: if it is the latest, the part is done."""
        if event is not self.timer or self.done is None:
            return
        done, self.done = self.done, None
        self.lost_s += max(0.0, self.env.now - self.started - self.work_s)
        done.succeed()
