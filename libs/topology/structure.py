"""Structure warnings: facts about a topology that make a failover harder or riskier.

Independent of the primary code (any number may apply to one instance). Conditions follow
orchestrator's `StructureAnalysis`, with two changes. Errant GTID is computed by Baton for both flavors
(orchestrator's relies on MySQL's `gtid_subtract()`): see `errant_gtids`. Failover support (GTID in
use) is judged on every replica's last known settings, not only on the reachable ones, so a cluster
whose replicas are all unreachable does not also get a NoFailoverSupport warning.
"""

from __future__ import annotations

from libs.topology.codes import Analysis as A
from libs.topology.context import AnalysisContext
from libs.topology.errant import ErrantGtid, errant_gtids

_FORMAT_PAIRS = (
    ("STATEMENT", "MIXED", A.STATEMENT_AND_MIXED_LOGGING_REPLICAS),
    ("STATEMENT", "ROW", A.STATEMENT_AND_ROW_LOGGING_REPLICAS),
    ("MIXED", "ROW", A.MIXED_AND_ROW_LOGGING_REPLICAS),
)


def structure_warnings(c: AnalysisContext) -> tuple[tuple[A, ...], tuple[ErrantGtid, ...]]:
    """The warnings that apply to instance `c`, and the errant GTIDs found on its replicas.

    Works from the replica facts `build_context` gathered in its one pass over the replicas.
    """
    warnings: list[A] = []
    errant: list[ErrantGtid] = []
    info = c.info
    if c.replica_count:
        chain = c.index.chain(c.key) if c.errant_suspects else ()
        for replica in c.errant_suspects:
            # Something differs; judge again without the chain above, whose writes may be in flight.
            gtids = errant_gtids(replica.last_seen or replica.last_probe, info, chain)
            if gtids:
                errant.append(ErrantGtid(replica=replica.key, gtids=gtids))
        formats = c.logging_formats
        if len(formats) > 1:
            formats = {f.upper() for f in formats}
        if c.is_master and c.replica_count > 1:
            if not formats:
                warnings.append(A.NO_LOGGING_REPLICAS)
            if c.gtid_replicas < c.known_replicas:
                warnings.append(A.NO_FAILOVER_SUPPORT)
        if c.is_master and len(formats) > 1:
            warnings.extend(code for x, y, code in _FORMAT_PAIRS if x in formats and y in formats)
        if c.is_master:
            versions = c.logging_versions
            if len(versions) > 1 and len({_major(v) for v in versions}) > 1:
                warnings.append(A.MULTIPLE_MAJOR_VERSIONS_LOGGING_REPLICAS)
        modes = c.replica_gtid_modes
        mode = info.gtid_mode
        if mode and modes and modes != {mode} and {m.upper() for m in modes} != {mode.upper()}:
            warnings.append(A.DIFFERENT_GTID_MODES)
        if errant:
            warnings.append(A.ERRANT_GTID)
    if c.is_master and c.valid:
        if info.read_only:
            warnings.append(A.NO_WRITEABLE_MASTER)
        semi = info.semi_sync
        wait = semi.master_wait_for_replica_count
        if semi.master_enabled and not semi.master_status and wait > 0 and semi.master_clients < wait:
            warnings.append(A.NOT_ENOUGH_VALID_SEMI_SYNC_REPLICAS)
    return tuple(warnings), tuple(errant)


def _major(version: str) -> str:
    """`10.11` from `10.11.6-MariaDB-log` (as `InstanceSnapshot.major_version`)."""
    return ".".join(version.split("-", 1)[0].split(".")[:2])
