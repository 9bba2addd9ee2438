from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.kvpublisher.backoff import Backoff


def test_doubles_from_initial_to_the_bound() -> None:
    b = Backoff(initial=0.1, maximum=5.0, jitter=0.0)
    assert [b.delay(n) for n in range(1, 9)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_huge_attempt_counts_stay_at_the_bound() -> None:
    assert Backoff().delay(10_000, 0.99) == 5.0


@given(st.integers(min_value=-3, max_value=500), st.floats(min_value=0, max_value=0.999999))
def test_jitter_stays_within_its_band_and_the_bound(attempt: int, rand: float) -> None:
    b = Backoff(initial=0.1, maximum=5.0, jitter=0.2)
    base = b.base(attempt)
    d = b.delay(attempt, rand)
    assert 0 < d <= 5.0
    assert base * 0.8 - 1e-9 <= d <= base * 1.2 + 1e-9


def test_jitter_spreads_the_delays() -> None:
    b = Backoff(jitter=0.2)
    assert b.delay(3, 0.0) < b.delay(3, 0.5) < b.delay(3, 0.99)


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 6, "maximum": 5}, {"factor": 0.5}, {"jitter": 1.0}]
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)
