"""Publishing the new master in `baton_masters/<kv_key(alias)>`, fenced by epoch.

The value is a `MasterRecord`. A write never replaces a value written under a *newer* epoch (a leader
that lost the lease and did not notice yet cannot undo its successor's work): read, compare epochs,
then write by compare-and-set on the revision read, retrying when someone wrote in between.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

import nats.js.errors
from nats.js import JetStreamContext

from libs.bus.connection import bus_errors
from libs.bus.provision import MASTERS
from libs.bus.subjects import kv_key
from libs.errors import BatonError, StaleEpoch
from libs.models import InstanceKey, MasterRecord


class MasterPublisher(Protocol):
    async def __call__(self, record: MasterRecord) -> None: ...


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
