"""The JSON report's time stamp rounding gives exactly what ``round(ts, 6)`` gives."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailtrace.render.json import _round

MICROSECONDS = st.tuples(st.integers(0, 2**32), st.integers(0, 999_999)).flatmap(
    lambda t: st.sampled_from([t[0] + t[1] / 1e6, t[0] + t[1] * 1e-6, float(f"{t[0]}.{t[1]:06d}"),
                               -(t[0] + t[1] / 1e6), (t[0] % 1000) + t[1] / 1e6]))


@settings(max_examples=5000, deadline=None)
@given(st.one_of(MICROSECONDS, st.floats(allow_nan=False)))
def test_round_as_round(value: float) -> None:
    assert repr(_round(value)) == repr(round(value, 6))


@pytest.mark.parametrize("value", [0.0, -0.0, 1700000000.249128, 1700000000.2491285, 2147483647.999999,
                                   2147483648.0, 4294967295.999999, 0.0000005, 0.0000015, 5e-324, 1e300])
def test_round_examples(value: float) -> None:
    assert repr(_round(value)) == repr(round(value, 6))


def test_round_of_infinities_and_nan() -> None:
    assert _round(math.inf) == math.inf and _round(-math.inf) == -math.inf
    assert math.isnan(_round(math.nan))
