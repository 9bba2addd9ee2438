"""When gtid-errant-inject-empty may log a replica's errant MariaDB GTIDs on the cluster's master (pure).

orchestrator refuses the verb on anything but Oracle GTID. MariaDB logs no empty transaction, but a
statement that changes nothing can carry a chosen GTID (`libs/mysql/errant_sql.mariadb_injection`), and
once the master has logged `d-s-n` the replica's `d-s-n` is no longer errant (`errant.errant_gtids`
compares per (domain, server_id)) and every other replica receives it. That is sound only when:

1. the errant GTID carries the replica's own server_id: the replica's IO thread then skips the injected
   event (`replicate_same_server_id=0`), as it already has it. Under another server_id the event would
   come back to it and be applied a second time (refused by gtid_strict_mode, or logged twice);
2. the master has not reached seq n in domain d: MariaDB orders GTIDs within a domain, so n cannot be
   logged after a higher or equal seq (gtid_strict_mode refuses it; without it replicas would take it
   for an old position);
3. the replica has applied everything the master logged in domain d: its own errant seq is past them,
   so with gtid_strict_mode it cannot apply them (its SQL thread stops with 1950) and injecting cannot
   mend that. Nothing else can either but `gtid-errant-reset-master`, which is named in the refusal.

Only the last errant GTID of each domain is injected: the errant check looks at the last seq per
(domain, server_id), and seq numbers may have gaps.
"""

from __future__ import annotations

from libs.models import Flavor, InstanceSnapshot
from libs.topology.gtid import MariadbGtid, mariadb_domain_seqs, parse_mariadb

VERB = "gtid-errant-inject-empty"


def mariadb_injections(
    replica: InstanceSnapshot, master: InstanceSnapshot, errant: str
) -> tuple[list[MariadbGtid], str | None]:
    """The GTIDs to log on `master` (the cluster's master) so `replica` has no errant GTID left, or the
    refusal (rules in the module docstring). `errant` is the replica's errant list (`d-s-n,...`)."""
    key = replica.key
    if master.flavor is not Flavor.MARIADB:
        return [], f"{VERB} requested for {key} but the cluster's master {master.key} is not MariaDB"
    last: dict[int, MariadbGtid] = {}
    for gtid in parse_mariadb(errant):
        if gtid.server_id != replica.server_id:
            return [], (
                f"{VERB} will not operate on {key}: its errant GTID {gtid} was logged under server_id "
                f"{gtid.server_id}, not its own ({replica.server_id}); injected on {master.key} it would "
                f"replicate back to {key} and be applied there a second time: use gtid-errant-reset-master"
            )
        if gtid.seq > last.get(gtid.domain, MariadbGtid(gtid.domain, 0, -1)).seq:
            last[gtid.domain] = gtid
    logged = mariadb_domain_seqs(master.gtid_binlog_pos)
    applied = mariadb_domain_seqs(replica.gtid_slave_pos)
    for domain, gtid in sorted(last.items()):
        at = logged.get(domain)
        if at is None:
            continue
        if at >= gtid.seq:
            return [], (
                f"{VERB} will not operate on {key}: {master.key} already logged seq {at} in domain "
                f"{domain}, and MariaDB orders GTIDs within a domain, so {gtid} cannot be logged there "
                "after it: use gtid-errant-reset-master"
            )
        if applied.get(domain, -1) < at:
            return [], (
                f"{VERB} will not operate on {key}: {master.key} logged domain {domain} up to seq {at}, "
                f"which {key} has not applied (its own {gtid} is ahead of them, so with gtid_strict_mode it "
                "cannot): use gtid-errant-reset-master"
            )
    return [last[d] for d in sorted(last)], None


def still_injectable(master_binlog_pos: str, replica_slave_pos: str, gtids: list[MariadbGtid]) -> str | None:
    """Rules 2 and 3 again, on the master's and the replica's positions read right before the injection
    (the master may have written since the decision): the reason not to inject, else None. A write in
    the domain between these reads and the injection itself is not excluded (it would stop the replica's
    SQL thread on its own, injection or not)."""
    logged = mariadb_domain_seqs(master_binlog_pos)
    applied = mariadb_domain_seqs(replica_slave_pos)
    for gtid in gtids:
        at = logged.get(gtid.domain, -1)
        if at >= gtid.seq:
            return f"the master logged seq {at} in domain {gtid.domain} meanwhile: {gtid} not injected"
        if at > applied.get(gtid.domain, -1):
            return (
                f"the master logged seq {at} in domain {gtid.domain}, which the replica has not applied: "
                f"{gtid} not injected"
            )
    return None
