"""No date arithmetic that breaks on a calendar edge: a designated candidate's rules expire a year on,
computed with timedelta, on every day (29 February included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from libs.topology.designation import DESIGNATED_RULE_TTL, designated_rule_expiry


def _a_year_on(now: datetime) -> datetime:
    """The same wall-clock moment one calendar year later (29 February → 1 March)."""
    try:
        return now.replace(year=now.year + 1)
    except ValueError:
        return now.replace(year=now.year + 1, month=3, day=1)


def _check(now: datetime) -> None:
    until = designated_rule_expiry(now)
    assert until >= now + DESIGNATED_RULE_TTL
    assert until >= _a_year_on(now)


def test_every_day_of_several_years_including_leap_days_and_2100() -> None:
    for start in (datetime(2023, 1, 1, 23, 59, 59, tzinfo=UTC), datetime(2099, 1, 1, 0, 0, tzinfo=UTC)):
        day = start
        while day < start.replace(year=start.year + 6):
            _check(day)
            day += timedelta(days=1)
    for edge in (
        datetime(2028, 2, 29, 12, tzinfo=UTC),
        datetime(2100, 2, 28, 12, tzinfo=UTC),
        datetime(2024, 2, 29, tzinfo=UTC),
    ):
        _check(edge)


@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9990, 12, 31), timezones=st.just(UTC)))
def test_any_moment(now: datetime) -> None:
    _check(now)
