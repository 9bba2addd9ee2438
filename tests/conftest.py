"""Shared test configuration.

Fixtures that start real servers live in `tests/fixtures/` and are loaded as plugins here. Tests are
marked by tier automatically from their folder: tests/unit → unit, tests/integration → integration,
tests/chaos → chaos.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins: list[str] = [
    "tests.fixtures.sandbox",
    "tests.fixtures.consul",
    "tests.fixtures.nats",
]

_TIERS = {"unit", "integration", "chaos"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts and "tests" in parts:
                item.add_marker(getattr(pytest.mark, tier))
