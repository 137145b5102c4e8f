"""The nominal mean of a token-length distribution, used wherever a mean length sizes things."""

import pytest

from simulator.profiles.inference import TokenDistribution, mean_tokens


@pytest.mark.parametrize(("spec", "mean"), [
    ({"dist": "fixed", "value": 128}, 128.0),
    ({"dist": "uniform", "low": 100, "high": 300}, 200.0),
    ({"dist": "normal", "mean": 500, "std": 50}, 500.0),
    ({"dist": "lognormal", "mean": 1000, "std": 600}, 1000.0),
    ({"dist": "empirical", "values": [100, 400], "weights": [3, 1]}, 175.0),
    ({"dist": "empirical", "values": [100, 400]}, 250.0),
])
def test_nominal_mean_by_hand(spec, mean):
    d = TokenDistribution.model_validate(spec)
    assert d.nominal_mean == pytest.approx(mean)
    assert mean_tokens(d) == pytest.approx(mean)


def test_a_plain_count_is_its_own_mean():
    assert mean_tokens(256) == 256.0
