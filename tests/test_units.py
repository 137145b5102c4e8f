"""Units are parsed once into SI floats; unknown or mismatched units are clear errors."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.units import Dimension, UnitError, format_si, format_time, parse_quantity

CASES = [
    ("80 GB", Dimension.BYTES, 80e9),
    ("141 GiB", Dimension.BYTES, 141 * 2**30),
    ("50 MB", Dimension.BYTES, 50e6),
    ("3.35 TB/s", Dimension.BANDWIDTH, 3.35e12),
    ("900 GB/s", Dimension.BANDWIDTH, 900e9),
    ("400 Gb/s", Dimension.BANDWIDTH, 50e9),
    ("400 Gbps", Dimension.BANDWIDTH, 50e9),
    ("989 TFLOPS", Dimension.FLOP_RATE, 989e12),
    ("1979 TOPS", Dimension.FLOP_RATE, 1979e12),
    ("2.5 PFLOP/s", Dimension.FLOP_RATE, 2.5e15),
    ("700 W", Dimension.POWER, 700.0),
    ("132 kW", Dimension.POWER, 132e3),
    ("1.5 us", Dimension.TIME, 1.5e-6),
    ("1.5 µs", Dimension.TIME, 1.5e-6),
    ("20 ms", Dimension.TIME, 0.02),
    ("50700 h", Dimension.TIME, 50700 * 3600.0),
    ("2.10 USD/h", Dimension.USD_PER_HOUR, 2.10),
    ("$2.10/h", Dimension.USD_PER_HOUR, 2.10),
    ("$15,000", Dimension.USD, 15000.0),
    ("30000 USD", Dimension.USD, 30000.0),
    ("0.08 USD/kWh", Dimension.USD_PER_KWH, 0.08),
    ("1.5 kWh", Dimension.ENERGY, 1.5 * 3.6e6),
    ("80%", Dimension.FRACTION, 0.8),
    ("1e3 GB", Dimension.BYTES, 1e12),
]


@pytest.mark.parametrize(("text", "dimension", "expected"), CASES)
def test_parses_to_si(text, dimension, expected):
    assert parse_quantity(text, dimension) == pytest.approx(expected, rel=1e-12)


def test_plain_number_is_the_base_unit():
    assert parse_quantity(3.35e12, Dimension.BANDWIDTH) == 3.35e12
    assert parse_quantity(8, Dimension.COUNT) == 8.0


@pytest.mark.parametrize(("text", "dimension", "fragment"), [
    ("80 GQ", Dimension.BYTES, "unknown unit 'GQ'"),
    ("700 W", Dimension.BYTES, "measures power, not bytes"),
    ("80 GB", Dimension.BANDWIDTH, "measures bytes, not bandwidth"),
    ("fast", Dimension.TIME, "cannot read 'fast'"),
    ("inf GB", Dimension.BYTES, "cannot read"),
])
def test_bad_units_name_what_is_allowed(text, dimension, fragment):
    with pytest.raises(UnitError, match=fragment.replace("(", r"\(")) as info:
        parse_quantity(text, dimension)
    if "unknown" in fragment or "measures" in fragment:
        assert "use " in str(info.value)


def test_booleans_and_other_types_are_rejected():
    with pytest.raises(UnitError, match="boolean"):
        parse_quantity(True, Dimension.BYTES)
    with pytest.raises(UnitError, match="got list"):
        parse_quantity([1], Dimension.BYTES)


@given(st.floats(min_value=1e-3, max_value=1e18, allow_nan=False, allow_infinity=False),
       st.sampled_from(["B", "KB", "MB", "GB", "TB", "KiB", "GiB"]))
def test_round_trip_through_text(number, unit):
    """A number written with a unit and read back is the same number scaled by the unit."""
    factor = {"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1024,
              "GiB": 2**30}[unit]
    assert math.isclose(parse_quantity(f"{number!r} {unit}", Dimension.BYTES), number * factor,
                        rel_tol=1e-12)


def test_formatting():
    assert format_si(3.35e12, "B/s") == "3.35 TB/s"
    assert format_si(989.4e12, "FLOP/s") == "989 TFLOP/s"
    assert format_si(12, "W") == "12 W"
    assert format_time(0.0125) == "12.5 ms"
    assert format_time(3.2) == "3.2 s"
    assert format_time(54 * 86400) == "54 d"
    assert format_time(2e-6) == "2 µs"
