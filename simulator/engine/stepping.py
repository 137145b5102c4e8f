"""Running a SimPy environment as both engines do: counting its events, collector paused."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import simpy


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector, then restore it as it was.

    A simulation makes hundreds of thousands of short-lived events and no lasting reference
    cycles (an event's callbacks are dropped once it is processed), so the collector would
    only rescan them and the request log over and over: a quarter of a training step's time.
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def run_counting(env: simpy.Environment, every: Callable[[], None] | None = None) -> int:
    """``env.run()`` with a counter: the same events in the same order. Calls ``every``
    (a progress report) each 2,048 events; returns the number of events processed, what
    simulating costs."""
    step = env.step
    events = 0
    try:
        if every is None:
            while True:
                step()
                events += 1
        while True:
            step()
            events += 1
            if not events & 2047:
                every()
    except simpy.core.EmptySchedule:
        pass
    return events
