"""Strict number parsing for path and header values: `str.isdigit()` accepts `¹` and `٣`, which
`int()` then refuses — a 500 the fuzzer found. Only ASCII digits are numbers here."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]{1,18}")


def is_number(text: str) -> bool:
    """True for 1 to 18 ASCII digits (fits an int64), nothing else."""
    return _DIGITS.fullmatch(text) is not None
