"""Shared test configuration.

Fixtures that start real servers live in `tests/fixtures/` and are loaded as plugins here. Tests are
marked by tier automatically from their folder: tests/unit → unit, tests/integration → integration,
tests/chaos → chaos.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

pytest_plugins: list[str] = [
    "tests.fixtures.sandbox",
    "tests.fixtures.consul",
    "tests.fixtures.nats",
]

_TIERS = {"unit", "integration", "chaos"}


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI time limit, `timeout`) stops the run like Ctrl-C: pytest unwinds and every fixture's
    teardown runs, so the mariadbd and nats-server the tests started (in sessions of their own) are
    stopped instead of left running. (Python's default for SIGTERM ends the process on the spot.)"""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupted)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier in _TIERS:
            if tier in parts and "tests" in parts:
                item.add_marker(getattr(pytest.mark, tier))
