"""In-memory status of one data center's publishing, for the API and `baton.cmd.kvpublisher.status`.

Plain data updated by the worker; `as_dict()` is JSON-ready. Times are passed in (UTC), so the record
keeping is pure and testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class DCStatus:
    dc: str
    store: str  # repr of the store (address only; never a token)
    pending: int = 0
    consecutive_failures: int = 0
    published: int = 0  # records written
    unchanged: int = 0  # publishes that found the keys already right
    failed: int = 0  # failed attempts
    stale: int = 0  # records refused as older than what is held
    last_success: dict[str, Any] | None = None
    last_error: dict[str, Any] | None = None
    last_reconcile: dict[str, Any] | None = None
    reconciles: int = 0
    ahead: list[str] = field(default_factory=list)  # clusters whose store holds a newer epoch

    def success(self, at: datetime, cluster: str, value: str, epoch: int, *, written: bool) -> None:
        if written:
            self.published += 1
        else:
            self.unchanged += 1
        self.consecutive_failures = 0
        self.last_success = {"at": at.isoformat(), "cluster": cluster, "value": value, "epoch": epoch}

    def failure(self, at: datetime, cluster: str | None, error: str) -> None:
        self.failed += 1
        self.consecutive_failures += 1
        self.last_error = {"at": at.isoformat(), "cluster": cluster, "error": error}

    def refused_stale(self) -> None:
        self.stale += 1

    def reconciled(
        self,
        at: datetime,
        *,
        checked: int,
        repairs: int,
        ahead: list[str],
        error: str | None = None,
    ) -> None:
        self.reconciles += 1
        self.ahead = sorted(ahead)
        self.last_reconcile = {
            "at": at.isoformat(),
            "ok": error is None,
            "checked": checked,
            "repairs": repairs,
            "error": error,
        }

    @property
    def healthy(self) -> bool:
        """No failure since the last success, and the last reconcile (if any) completed."""
        reconcile_ok = self.last_reconcile is None or bool(self.last_reconcile["ok"])
        return self.consecutive_failures == 0 and reconcile_ok

    def as_dict(self) -> dict[str, Any]:
        return {
            "dc": self.dc,
            "store": self.store,
            "healthy": self.healthy,
            "pending": self.pending,
            "consecutive_failures": self.consecutive_failures,
            "published": self.published,
            "unchanged": self.unchanged,
            "failed": self.failed,
            "stale": self.stale,
            "last_success": self.last_success,
            "last_error": self.last_error,
            "last_reconcile": self.last_reconcile,
            "reconciles": self.reconciles,
            "ahead": list(self.ahead),
        }
