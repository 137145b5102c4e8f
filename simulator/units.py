"""Quantities with units, parsed once at the boundary into SI floats.

A YAML value such as ``"3.35 TB/s"`` becomes ``3.35e12`` (bytes per second). A plain number
means the field's documented base unit. Inside xpusim everything is an SI float:
bytes, bytes/s, FLOP/s, W, s, J, USD.

Decimal prefixes (k, M, G, T, P, E) are powers of 1000; binary ones (Ki, Mi, Gi, Ti, Pi) are
powers of 1024. A lower-case ``b`` means bits, an upper-case ``B`` bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum


class Dimension(StrEnum):
    """What a field measures; picks the units it accepts and its base unit."""

    BYTES = "bytes"
    BANDWIDTH = "bandwidth"
    FLOP_RATE = "flop_rate"
    FLOPS = "flops"
    POWER = "power"
    ENERGY = "energy"
    TIME = "time"
    USD = "usd"
    USD_PER_HOUR = "usd_per_hour"
    USD_PER_KWH = "usd_per_kwh"
    USD_PER_KW_MONTH = "usd_per_kw_month"
    CARBON_INTENSITY = "carbon_intensity"
    FRACTION = "fraction"
    COUNT = "count"


BASE_UNIT = {
    Dimension.BYTES: "B",
    Dimension.BANDWIDTH: "B/s",
    Dimension.FLOP_RATE: "FLOP/s",
    Dimension.FLOPS: "FLOP",
    Dimension.POWER: "W",
    Dimension.ENERGY: "J",
    Dimension.TIME: "s",
    Dimension.USD: "USD",
    Dimension.USD_PER_HOUR: "USD/h",
    Dimension.USD_PER_KWH: "USD/kWh",
    Dimension.USD_PER_KW_MONTH: "USD/kW/month",
    Dimension.CARBON_INTENSITY: "kg/kWh",
    Dimension.FRACTION: "",
    Dimension.COUNT: "",
}

_DECIMAL = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_BINARY = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50}
_HOUR = 3600.0
_MONTH = 365.25 * 24 * _HOUR / 12


def _prefixed(symbols: tuple[str, ...], scale: float = 1.0,
              binary: bool = False) -> dict[str, float]:
    table: dict[str, float] = {}
    prefixes = {**_DECIMAL, **(_BINARY if binary else {})}
    for prefix, factor in prefixes.items():
        for symbol in symbols:
            table[prefix + symbol] = factor * scale
    return table


def _build_units() -> dict[Dimension, dict[str, float]]:
    units: dict[Dimension, dict[str, float]] = {}
    units[Dimension.BYTES] = {
        **_prefixed(("B",), binary=True),
        **_prefixed(("b", "bit"), scale=1 / 8, binary=True),
    }
    units[Dimension.BANDWIDTH] = {
        **_prefixed(("B/s", "Bps"), binary=True),
        **_prefixed(("b/s", "bps", "bit/s"), scale=1 / 8, binary=True),
    }
    units[Dimension.FLOP_RATE] = _prefixed(("FLOPS", "FLOP/s", "flops", "OPS", "OP/s", "ops"))
    units[Dimension.FLOPS] = _prefixed(("FLOP", "flop", "OP"))
    units[Dimension.POWER] = _prefixed(("W",))
    units[Dimension.ENERGY] = {**_prefixed(("J",)), **_prefixed(("Wh",), scale=_HOUR)}
    units[Dimension.TIME] = {
        "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9,
        "min": 60.0, "h": _HOUR, "hour": _HOUR, "hours": _HOUR, "d": 86400.0, "day": 86400.0,
        "days": 86400.0, "y": 365.25 * 86400.0, "year": 365.25 * 86400.0,
        "years": 365.25 * 86400.0,
    }
    units[Dimension.USD] = {"USD": 1.0, "$": 1.0, "kUSD": 1e3, "MUSD": 1e6}
    units[Dimension.USD_PER_HOUR] = {"USD/h": 1.0, "$/h": 1.0, "USD/hour": 1.0, "$/hour": 1.0}
    units[Dimension.USD_PER_KWH] = {"USD/kWh": 1.0, "$/kWh": 1.0, "USD/MWh": 1e-3, "$/MWh": 1e-3}
    units[Dimension.USD_PER_KW_MONTH] = {"USD/kW/month": 1.0, "$/kW/month": 1.0}
    units[Dimension.CARBON_INTENSITY] = {"kg/kWh": 1.0, "g/kWh": 1e-3, "kgCO2/kWh": 1.0,
                                         "gCO2/kWh": 1e-3}
    units[Dimension.FRACTION] = {"": 1.0, "%": 0.01}
    units[Dimension.COUNT] = {"": 1.0}
    return units


UNITS: dict[Dimension, dict[str, float]] = _build_units()

# Every unit symbol we know, so that a unit of the wrong dimension gets a precise message.
_ALL_SYMBOLS: dict[str, Dimension] = {
    symbol: dim for dim, table in UNITS.items() for symbol in table if symbol
}

_QUANTITY = re.compile(
    r"^\s*(?P<number>[-+]?(\d[\d_,]*\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*$"
)
# Currency written before the number: "$2.10/h", "$15,000".
_DOLLAR_FIRST = re.compile(r"^\s*\$\s*(?P<number>[\d_,]*\.?\d+([eE][-+]?\d+)?)\s*(?P<rest>.*)$")


class UnitError(ValueError):
    """A quantity whose unit is unknown or belongs to another dimension."""


@dataclass(frozen=True)
class Parsed:
    """A quantity split into its number and its unit text, before the unit is checked."""

    number: float
    unit: str


def _split(text: str) -> Parsed:
    dollar = _DOLLAR_FIRST.match(text)
    if dollar:
        number = float(dollar["number"].replace(",", "").replace("_", ""))
        return Parsed(number, "$" + dollar["rest"].strip())
    match = _QUANTITY.match(text)
    if not match:
        raise UnitError(f"cannot read {text!r} as a number with an optional unit")
    return Parsed(float(match["number"].replace(",", "").replace("_", "")), match["unit"])


def allowed_units(dimension: Dimension, limit: int = 12) -> str:
    """A short, readable list of the units a dimension accepts (for error messages)."""
    preferred = {
        Dimension.BYTES: "B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, Gb",
        Dimension.BANDWIDTH: "B/s, MB/s, GB/s, TB/s, GiB/s, Gb/s, Tb/s",
        Dimension.FLOP_RATE: "FLOPS, GFLOPS, TFLOPS, PFLOPS, TOPS (also FLOP/s)",
        Dimension.FLOPS: "FLOP, GFLOP, TFLOP, PFLOP",
        Dimension.POWER: "W, kW, MW",
        Dimension.ENERGY: "J, kJ, MJ, Wh, kWh, MWh",
        Dimension.TIME: "ns, us, ms, s, min, h, d, y",
        Dimension.USD: "USD, $",
        Dimension.USD_PER_HOUR: "USD/h, $/h",
        Dimension.USD_PER_KWH: "USD/kWh, $/kWh, USD/MWh",
        Dimension.USD_PER_KW_MONTH: "USD/kW/month",
        Dimension.CARBON_INTENSITY: "kg/kWh, g/kWh",
        Dimension.FRACTION: "a plain number, or a percentage such as 80%",
        Dimension.COUNT: "a plain number",
    }
    return preferred.get(dimension) or ", ".join(list(UNITS[dimension])[:limit])


def parse_quantity(value: object, dimension: Dimension) -> float:
    """Return ``value`` in the SI base unit of ``dimension``.

    ``value`` is a number (already in the base unit) or a string such as ``"80 GB"``.
    Raises :class:`UnitError` naming what is allowed.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a quantity in {BASE_UNIT[dimension] or 'plain numbers'}, "
                        f"got a boolean")
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        parsed = _split(value)
        table = {"": 1.0, **UNITS[dimension]}  # a bare number ("1e9" is text to YAML 1.1)
        unit = parsed.unit
        if unit not in table:
            other = _ALL_SYMBOLS.get(unit)
            if other is not None and other is not dimension:
                raise UnitError(
                    f"unit {unit!r} measures {other.value.replace('_', ' ')}, not "
                    f"{dimension.value.replace('_', ' ')}; use {allowed_units(dimension)}"
                )
            raise UnitError(f"unknown unit {unit!r}; use {allowed_units(dimension)}")
        result = parsed.number * table[unit]
    else:
        raise UnitError(
            f"expected a number or a string such as '{_example(dimension)}', "
            f"got {type(value).__name__}"
        )
    if not math.isfinite(result):
        raise UnitError("must be a finite number")
    return result


def _example(dimension: Dimension) -> str:
    return {
        Dimension.BYTES: "80 GB",
        Dimension.BANDWIDTH: "3.35 TB/s",
        Dimension.FLOP_RATE: "989 TFLOPS",
        Dimension.FLOPS: "1.2 PFLOP",
        Dimension.POWER: "700 W",
        Dimension.ENERGY: "1.5 kWh",
        Dimension.TIME: "1.5 us",
        Dimension.USD: "30000 USD",
        Dimension.USD_PER_HOUR: "2.10 USD/h",
        Dimension.USD_PER_KWH: "0.08 USD/kWh",
        Dimension.USD_PER_KW_MONTH: "150 USD/kW/month",
        Dimension.CARBON_INTENSITY: "0.4 kg/kWh",
        Dimension.FRACTION: "0.8",
        Dimension.COUNT: "8",
    }[dimension]


_SI_PREFIXES = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def format_si(value: float, unit: str, digits: int = 3) -> str:
    """Format ``value`` with a decimal prefix: ``format_si(3.35e12, 'B/s') == '3.35 TB/s'``."""
    magnitude = abs(value)
    for factor, prefix in _SI_PREFIXES:
        if magnitude >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def format_time(seconds: float) -> str:
    """Human-friendly duration: '850 µs', '12.5 ms', '3.2 s', '4.1 h', '54.0 d'."""
    s = abs(seconds)
    if s == 0:
        return "0 s"
    if s < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if s < 1:
        return f"{seconds * 1e3:.3g} ms"
    if s < 120:
        return f"{seconds:.3g} s"
    if s < 2 * _HOUR:
        return f"{seconds / 60:.3g} min"
    if s < 2 * 86400:
        return f"{seconds / _HOUR:.3g} h"
    return f"{seconds / 86400:.3g} d"
