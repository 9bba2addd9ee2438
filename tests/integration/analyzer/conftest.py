"""Fixtures for the analyzer's integration tests: a nats-server, a sandbox, probing, analyzers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from libs.bus.connection import Bus
from libs.bus.server import NatsServer
from libs.config import Settings
from libs.sandbox import Sandbox
from services.analyzer.service import Analyzer
from tests.integration.analyzer.harness import (
    LoopProber,
    RealProber,
    analyzer_settings,
    bus_for,
    keys_of,
    use_real_prober,
)

StartAnalyzer = Callable[..., Awaitable[Analyzer]]


class Env:
    def __init__(self, nats: NatsServer, bus: Bus) -> None:
        self.nats = nats
        self.bus = bus
        self.prober: LoopProber | RealProber | None = None
        self.analyzers: list[Analyzer] = []

    def settings(self, **extra: Any) -> Settings:
        return analyzer_settings(self.nats.url, **extra)

    async def probe(self, sandbox: Sandbox, poll_s: float = 1.0) -> LoopProber | RealProber:
        """Probe the sandbox: with the real prober service when present, else the test-only loop."""
        if use_real_prober():
            real = RealProber(self.nats.url, sandbox, poll_s)
            self.prober = real
            await real.start()
            await real.wait_probing(keys_of(sandbox))
            return real
        creds = sandbox.topology_creds
        self.prober = LoopProber(self.bus, keys_of(sandbox), creds, poll_s).start()
        return self.prober

    async def analyzer(self, node: str = "analyzer-1", **extra: Any) -> Analyzer:
        assert self.prober is not None, "start probing first"
        if isinstance(self.prober, LoopProber):
            analyzer = Analyzer(self.settings(**extra), node=node, probe_now=self.prober.probe_now)
        else:
            analyzer = Analyzer(self.settings(**extra), node=node)
        await analyzer.start()
        self.analyzers.append(analyzer)
        return analyzer

    async def close(self) -> None:
        """Stop everything; an analyzer that does not stop in time fails the test."""
        stuck: list[str] = []
        for analyzer in self.analyzers:
            try:
                await asyncio.wait_for(analyzer.stop(), 20)
            except TimeoutError:
                stuck.append(analyzer.node)
        if self.prober is not None:
            # Bounded: the real prober's stop can hang on a watch of a master that was SIGSTOPped.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.prober.stop(), 5)
        await self.bus.close()
        assert not stuck, f"analyzers that did not stop within 20 s: {stuck}"


@pytest.fixture
async def env(nats_server: NatsServer) -> AsyncIterator[Env]:
    environment = Env(nats_server, await bus_for(nats_server.url))
    try:
        yield environment
    finally:
        await environment.close()
