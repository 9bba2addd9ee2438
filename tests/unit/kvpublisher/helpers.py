"""Records for the kvpublisher unit tests."""

from __future__ import annotations

from libs.models.events import MasterRecord
from libs.models.instance import InstanceKey


def rec(host: str, epoch: int, *, alias: str = "shop", port: int = 3306) -> MasterRecord:
    return MasterRecord(
        cluster="db-1:3306", alias=alias, master=InstanceKey(host=host, port=port), epoch=epoch
    )
