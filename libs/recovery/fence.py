"""The fencing check every mutating step makes: am I still the leader of epoch N?

`Fence` is what the pipeline and the executor see; `LeaseFence` answers from a `LeaseKeeper` (lease still
ours *and* its deadline not passed, on the monotonic clock). A leader that failed to renew stops acting
at once: the next `check()` raises LeadershipLost, before any further statement is sent.
"""

from __future__ import annotations

from typing import Protocol

from libs.bus.lease import LeaseKeeper
from libs.errors import LeadershipLost


class Fence(Protocol):
    @property
    def epoch(self) -> int: ...

    @property
    def held(self) -> bool: ...

    def check(self) -> None:
        """Raise LeadershipLost unless still leading under `epoch`."""


class LeaseFence:
    """A Fence over a running LeaseKeeper."""

    def __init__(self, keeper: LeaseKeeper) -> None:
        self.keeper = keeper

    @property
    def epoch(self) -> int:
        return self.keeper.epoch

    @property
    def held(self) -> bool:
        return self.keeper.held

    def check(self) -> None:
        if not self.keeper.held:
            why = self.keeper.reason or "lease deadline passed"
            raise LeadershipLost(f"no longer the recovery leader of epoch {self.epoch}: {why}")


class StaticFence:
    """A fence that holds until `lose()` (tests, single-process tools)."""

    def __init__(self, epoch: int = 1) -> None:
        self._epoch = epoch
        self._held = True

    @property
    def epoch(self) -> int:
        return self._epoch

    @property
    def held(self) -> bool:
        return self._held

    def lose(self) -> None:
        self._held = False

    def check(self) -> None:
        if not self._held:
            raise LeadershipLost(f"no longer the recovery leader of epoch {self._epoch}")
