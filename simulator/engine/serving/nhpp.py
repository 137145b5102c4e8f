"""Arrival times of a non-homogeneous Poisson process, by thinning piece by piece.

On each piece of the rate curve (:class:`~simulator.profiles.rate_curve.Pieces`) a
homogeneous Poisson process at the piece's bound ``B`` is drawn exactly: a Poisson count of
mean ``B x width``, placed uniformly (the order statistics of a Poisson process). Each
candidate at ``t`` is kept with probability ``rate(t) / B`` (Lewis and Shedler 1979). The
kept points are a Poisson process of intensity ``rate(t)``, whatever the bound, so the
count in any window is Poisson with mean the rate's integral over it. With a piece's
level constant and its growth monotone, ``B`` is the larger end, so few candidates are
thrown away. Pieces are drawn in chunks of about :data:`CHUNK` candidates, in time order, and
the draw stops once ``requests`` are kept: a cap early in a long window costs little. One
generator draws everything in a fixed order, so a seed fixes the times.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from simulator.profiles.rate_curve import Pieces, RateCurve

CHUNK = 1 << 18  # expected candidates per batch of pieces


def _batches(pieces: Pieces, mass: np.ndarray) -> Iterator[Pieces]:
    """The pieces in time order, grouped (or a heavy one split into equal parts) so each
    batch expects at most about :data:`CHUNK` candidates."""
    i, n = 0, len(pieces)
    ends = np.cumsum(mass)
    while i < n:
        if mass[i] > CHUNK:
            parts = int(np.ceil(mass[i] / CHUNK))
            width = pieces.width[i] / parts
            for k in range(parts):  # the bound of the whole piece holds on each part
                start = pieces.start[i] + k * width
                yield Pieces(start=np.array([start]), width=np.array([width]),
                             level=pieces.level[i:i + 1],
                             growth_start=pieces.growth_start[i:i + 1],
                             growth_end=pieces.growth_end[i:i + 1])
            i += 1
            continue
        before = ends[i] - mass[i]
        j = int(np.searchsorted(ends, before + CHUNK, side="right"))
        j = max(j, i + 1)
        yield Pieces(start=pieces.start[i:j], width=pieces.width[i:j], level=pieces.level[i:j],
                     growth_start=pieces.growth_start[i:j], growth_end=pieces.growth_end[i:j])
        i = j


def _thinned(curve: RateCurve, batch: Pieces, rng: np.random.Generator) -> np.ndarray:
    """The kept arrival times (timeline time, sorted) on one batch of pieces."""
    bound = batch.bound
    counts = rng.poisson(bound * batch.width)
    piece = np.repeat(np.arange(len(batch)), counts)
    times = batch.start[piece] + rng.random(piece.size) * batch.width[piece]
    order = np.argsort(times, kind="stable")
    times, piece = times[order], piece[order]
    rate = batch.level[piece] * curve.growth_at(times)
    keep = rng.random(times.size) * bound[piece] < rate
    return times[keep]


def nhpp_times(curve: RateCurve, *, start_s: float, duration_s: float,
               requests: int | None, rng: np.random.Generator) -> np.ndarray:
    """Arrival times in [0, duration_s] (seconds from the run's start, sorted) of a Poisson
    process of intensity ``curve.rate(start_s + t)``, at most ``requests`` of them."""
    pieces = curve.pieces(start_s, start_s + duration_s)
    mass = pieces.bound * pieces.width
    kept: list[np.ndarray] = []
    count = 0
    for batch in _batches(pieces, mass):
        times = _thinned(curve, batch, rng)
        kept.append(times)
        count += len(times)
        if requests is not None and count >= requests:
            break
    every = np.concatenate(kept) if kept else np.zeros(0)
    if requests is not None:
        every = every[:requests]
    return np.clip(every - start_s, 0.0, duration_s)
