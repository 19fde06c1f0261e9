import pytest

from airinfer.experiments.stats import wilson_interval


def test_wilson_interval_known_values():
    low, high = wilson_interval(0, 100)
    assert low == 0.0 and high == pytest.approx(1.959964**2 / (100 + 1.959964**2), rel=1e-6)
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
