"""The shared bisection: the smallest integer where a monotone predicate turns true, and
the exact probes it makes (the studies simulate one point per probe, so the probe order is
part of what they report)."""

from simulator.search import first_true


def test_first_true_finds_the_threshold_and_probes_the_midpoints():
    probes: list[int] = []

    def at_least_6(n: int) -> bool:
        probes.append(n)
        return n >= 6

    # (0, 10]: mid 5 fails -> (5, 10]; mid 7 holds -> (5, 7]; mid 6 holds -> (5, 6]
    assert first_true(at_least_6, 0, 10) == 6
    assert probes == [5, 7, 6]


def test_first_true_with_adjacent_bounds_probes_nothing():
    def never_called(n: int) -> bool:
        raise AssertionError(n)

    assert first_true(never_called, 3, 4) == 4


def test_first_true_at_the_bottom_of_the_range():
    # (0, 8]: mid 4 holds, mid 2 holds, mid 1 holds -> 1
    assert first_true(lambda n: n >= 1, 0, 8) == 1
