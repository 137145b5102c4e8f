"""Argument types for the study commands: each value is checked as argparse reads it.

A bad value ends the command with exit 2 and one line that names the flag and what it
allows (``error: argument --tp: 0 is not a whole number from 1 to 1000000000``), before
any scenario is read or simulated.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import NoReturn

from simulator.profiles.numbers import MAX_ACCELERATORS, MAX_COUNT, MAX_REAL
from simulator.units import Dimension, UnitError, parse_quantity

ArgType = Callable[[str], object]


def _whole(text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a whole number from {low} "
                                         f"to {high}")
    return value


def whole(low: int = 1, high: int = MAX_COUNT) -> ArgType:
    """One whole number in ``[low, high]``."""
    def parse(text: str) -> int:
        """The flag's text as a whole number in range, or argparse's one-line error."""
        return _whole(text, low, high)

    parse.__name__ = "whole number"
    return parse


def wholes(low: int = 1, high: int = MAX_COUNT) -> ArgType:
    """Comma-separated whole numbers, each in ``[low, high]``; at least one."""
    def parse(text: str) -> list[int]:
        """The flag's text as whole numbers in range, or argparse's one-line error."""
        values = [_whole(v, low, high) for v in text.split(",") if v.strip()]
        if not values:
            raise argparse.ArgumentTypeError("expected comma-separated whole numbers")
        return values

    parse.__name__ = "list of whole numbers"
    return parse


def accelerator_counts() -> ArgType:
    """Comma-separated cluster sizes, 1 to the largest scenario cluster."""
    return wholes(1, MAX_ACCELERATORS)


def choices(allowed: Iterable[str]) -> ArgType:
    """Comma-separated words, each one of ``allowed``; at least one."""
    names = list(allowed)

    def parse(text: str) -> list[str]:
        """The flag's text as allowed names, or an error naming the first that is not."""
        words = [v.strip() for v in text.split(",") if v.strip()]
        bad = [w for w in words if w not in names]
        if bad or not words:
            shown = repr(bad[0]) if bad else "nothing"
            raise argparse.ArgumentTypeError(f"{shown} is not one of {', '.join(names)}")
        return words

    parse.__name__ = "list of choices"
    return parse


def _number(text: str) -> float:
    """``text`` as a float; NaN (which every range check refuses) when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return math.nan


def positive_number(text: str) -> float:
    """A finite number above zero (a rate, a factor)."""
    value = _number(text)
    if not (math.isfinite(value) and 0 < value <= MAX_REAL):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number above 0")
    return value


def fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a relative perturbation)."""
    value = _number(text)
    if not 0 < value < 1:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1 "
                                         f"(e.g. 0.1)")
    return value


def duration(text: str) -> float:
    """A time above zero with its unit, e.g. ``30 d`` or ``720 h``."""
    try:
        value = parse_quantity(text, Dimension.TIME)
    except UnitError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time above zero (e.g. '30 d')")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``error:`` line, like every other bad input
    (argparse would print the whole usage first)."""

    def error(self, message: str) -> NoReturn:
        """Print ``error: PROG: MESSAGE (see PROG --help)`` and exit 2."""
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
