"""Publishing the new master in `baton_masters/<kv_key(alias)>`, fenced by epoch.

The value is a `MasterRecord`. A write never replaces a value written under a *newer* epoch (a leader
that lost the lease and did not notice yet cannot undo its successor's work): read, compare epochs,
then write by compare-and-set on the revision read, retrying when someone wrote in between.
`create` (the leader's seeding, `libs/recovery/seeding.py`) writes only a key that holds nothing: the
first writer wins, so a seed can never replace a failover's record.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext

from libs.bus import kvread
from libs.bus.connection import bus_errors
from libs.bus.provision import MASTERS
from libs.bus.subjects import kv_key
from libs.errors import BatonError, StaleEpoch
from libs.models import InstanceKey, MasterRecord

log = logging.getLogger(__name__)


class MasterPublisher(Protocol):
    async def __call__(self, record: MasterRecord) -> None: ...


class MasterBook(MasterPublisher, Protocol):
    """baton_masters as a whole: publish (epoch-fenced), create-only, and read every record."""

    async def create(self, record: MasterRecord) -> bool:
        """Write `record` only if its key holds nothing; False when a record is there already."""

    async def records(self) -> dict[str, MasterRecord]:
        """Every record, by KV key."""


def master_record(
    cluster: str, alias: str, master: InstanceKey, epoch: int, recovery_uid: str | None
) -> MasterRecord:
    """The record for `master`; ipv4/ipv6 are filled when the host is an address literal (name
    resolution is the kvpublisher's business, in the data center that serves it)."""
    ipv4 = ipv6 = ""
    try:
        address = ipaddress.ip_address(master.host)
    except ValueError:
        pass
    else:
        if address.version == 4:
            ipv4 = master.host
        else:
            ipv6 = master.host
    return MasterRecord(
        cluster=cluster,
        alias=alias,
        master=master,
        hostname=master.host,
        ipv4=ipv4,
        ipv6=ipv6,
        epoch=epoch,
        recovery_uid=recovery_uid,
    )


class KVMasterPublisher:
    def __init__(self, js: JetStreamContext, bucket: str = MASTERS) -> None:
        self.js, self.bucket = js, bucket

    async def create(self, record: MasterRecord) -> bool:
        key = kv_key(record.alias)
        with bus_errors(f"opening KV {self.bucket}"):
            kv = await self.js.key_value(self.bucket)
        with bus_errors(f"creating the master record of {record.alias}"):
            try:
                await kv.create(key, record.model_dump_json().encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                return False
        return True

    async def records(self) -> dict[str, MasterRecord]:
        out = {}
        for entry in await kvread.scan(self.js, self.bucket):
            try:
                out[entry.key] = MasterRecord.model_validate_json(entry.value)
            except ValueError:
                log.warning("%s/%s is not a MasterRecord: ignored", self.bucket, entry.key)
        return out

    async def __call__(self, record: MasterRecord) -> None:
        """Write `record`; StaleEpoch if a newer epoch already wrote the cluster's master."""
        key, value = kv_key(record.alias), record.model_dump_json().encode()
        with bus_errors(f"opening KV {self.bucket}"):
            kv = await self.js.key_value(self.bucket)
        for _ in range(5):
            with bus_errors(f"publishing master of {record.alias}"):
                try:
                    entry = await kv.get(key)
                except nats.js.errors.KeyNotFoundError:
                    entry = None
                try:
                    if entry is None or entry.value is None:
                        await kv.create(key, value)
                        return
                    current = MasterRecord.model_validate_json(entry.value)
                    if current.epoch > record.epoch:
                        raise StaleEpoch(
                            f"{self.bucket}/{key} holds epoch {current.epoch} > {record.epoch}: not replaced"
                        )
                    await kv.update(key, value, last=entry.revision)
                    return
                except nats.js.errors.KeyWrongLastSequenceError:
                    continue
        raise BatonError(f"could not publish the master of {record.alias}: too much contention")


class MemoryMasterBook:
    """MasterBook in memory, same rules (unit tests)."""

    def __init__(self, records: dict[str, MasterRecord] | None = None) -> None:
        self.values: dict[str, MasterRecord] = dict(records or {})

    async def __call__(self, record: MasterRecord) -> None:
        key = kv_key(record.alias)
        current = self.values.get(key)
        if current is not None and current.epoch > record.epoch:
            raise StaleEpoch(f"{key} holds epoch {current.epoch} > {record.epoch}: not replaced")
        self.values[key] = record

    async def create(self, record: MasterRecord) -> bool:
        key = kv_key(record.alias)
        if key in self.values:
            return False
        self.values[key] = record
        return True

    async def records(self) -> dict[str, MasterRecord]:
        return dict(self.values)
