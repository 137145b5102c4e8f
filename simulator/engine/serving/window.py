"""Where the steady window of a serving run lies (docs/serving.md, "The steady window").

A run starts with an empty fleet and, after its last arrival, drains it. Neither transient
belongs in a figure meant to describe the fleet under its load, so the steady figures are
taken over a window that leaves both out:

- **end: the last arrival.** After it no work comes in and the batch empties: open-loop
  (Poisson, gamma, constant), trace and closed-loop arrivals alike (a closed-loop run's
  clients stop sending at its last request).
- **start: flow balance.** A steady fleet holds a steady number of sequences in its
  batches and sends requests out at a steady rate. Starting empty, the occupancy (sequences
  in the batches, time-averaged per time-series bin) ramps up over the first requests'
  lifetime, and completions begin only when the first requests leave. The window starts at
  the first bin from which both have reached :data:`SETTLED` of their steady level: the
  occupancy at the first bin reaching it, the completions at the first bin reaching it
  (whichever comes later). The steady level of each is its median over the second half of
  the arrivals' span, the part furthest from the empty start and still before the drain:
  the steady level of an open-loop run below capacity, the full batch and the service rate
  of one above it, the clients' requests in flight of a closed loop. It needs no guess of
  the latency; a crossing at 90% is the usual "settling" point of a ramp.

**The check: token balance.** In a steady state the fleet produces tokens (prompt and
output) as fast as the requests it completes carry them away. A window still in the
fill-up (its levels measured over a span too short to settle, as when every request lives
longer than the arrivals last) produces far more than leaves: such a window is refused when
the two differ by more than :data:`BALANCE` (steady windows of the shipped scenarios are
within 6%, the statistical noise of a few hundred completions; fill-ups are off by
factors).

Both edges fall on the time-series bins (the start at a bin's start, the end at the start
of the bin holding the last arrival), so what the window holds is read exactly from the
bins: every iteration counts in the bin it ends in. A window of fewer than
:data:`MIN_BINS` bins (arrivals all at once, or ending before the ramp is over) is no
window: the figures are then the whole run's, flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SETTLED = 0.9  # the ramp is over once occupancy reaches this fraction of its median level
MIN_BINS = 8  # fewer bins than this (an eighth of the arrivals' span or less): no window
BALANCE = 0.15  # tokens produced vs carried off by completions, at most this far apart


@dataclass(frozen=True)
class Window:
    """The bins ``first`` to ``stop`` (exclusive) and the times they span, or none."""

    found: bool
    basis: str
    first: int
    stop: int
    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Seconds the window spans."""
        return self.end_s - self.start_s


def _settled(values: np.ndarray) -> tuple[int, float]:
    """The first bin of ``values`` reaching :data:`SETTLED` of its steady level (the median
    of its second half), and that level. A bin of none is never settled: with a level of
    none (fewer completions than bins), the first bin with any."""
    level = float(np.median(values[len(values) // 2:]))
    reached = np.flatnonzero((values >= SETTLED * level) & (values > 0))
    return (int(reached[0]) if len(reached) else len(values)), level


def find_window(occupancy: np.ndarray, completions: np.ndarray, width: float,
                first_arrival: float, last_arrival: float) -> Window:
    """The steady window from the bins' ``occupancy`` (sequences running, time-averaged per
    bin of ``width`` seconds) and ``completions`` (requests completed in each bin), and the
    first and last arrival times."""
    lo = int(first_arrival / width)
    stop = min(int(last_arrival / width), len(occupancy))
    if stop - lo < MIN_BINS:
        return _none(lo, stop, "the requests arrive within a few bins of each other "
                     "(all at once, or in a span too short to hold a warm-up and a "
                     "measurement)")
    occupied, level = _settled(occupancy[lo:stop])
    flowing, rate = _settled(completions[lo:stop])
    first = lo + max(occupied, flowing)
    if stop - first < MIN_BINS:
        return _none(lo, stop, f"the fleet reaches flow balance at {first * width:.4g} s, "
                     f"too close to the last arrival at {last_arrival:.4g} s for a steady "
                     f"window")
    start = max(first * width, first_arrival)
    return Window(found=True, first=first, stop=stop, start_s=start, end_s=stop * width,
                  basis=f"from flow balance ({SETTLED:.0%} of the steady "
                        f"{level:.4g} sequences in the batches and "
                        f"{rate / width:.4g} completions/s) to the last arrival, on the "
                        f"time-series bins of {width:.4g} s")


def balanced(window: Window, produced: float, completed: float) -> Window:
    """``window``, or none if the tokens it produced (``produced``) and those the requests
    it completed carried (``completed``) differ by more than :data:`BALANCE`."""
    if completed > 0 and abs(produced / completed - 1) <= BALANCE:
        return window
    t = window.duration_s
    return _none(window.first, window.stop, (
        f"the fleet is not steady before the arrivals end: from {window.start_s:.4g} s "
        f"to {window.end_s:.4g} s it produced {produced / t:,.0f} tokens/s while the "
        f"requests it completed carried {completed / t:,.0f} tokens/s (a steady fleet's "
        f"agree within {BALANCE:.0%})"))


def varying_load(why: str) -> Window:
    """No steady window for a load or a pool that varies in time (``why``): a fleet under
    a daily curve, a growth trend or an autoscaler never settles, so its whole run (or a
    window chosen with start_s and duration_s) is the measurement."""
    return _none(0, 0, f"{why}, so the fleet has no steady state")


def _none(lo: int, stop: int, why: str) -> Window:
    """No steady window: the figures are the whole run's."""
    return Window(found=False, first=lo, stop=max(lo, stop), start_s=math.nan,
                  end_s=math.nan, basis=f"no steady window: {why}; the steady figures are "
                                        f"the whole run's")
