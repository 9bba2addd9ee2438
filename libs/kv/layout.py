"""orchestrator's published key layout, plus Baton's fencing key — a pure function of the record.

orchestrator (go/inst/cluster.go `GetClusterMasterKVPairs`) writes, for a cluster with an alias,
under `KVClusterMasterPrefix` normalised to end in `/`:

    <prefix><alias>           = host:port        (InstanceKey.StringCode: no brackets, even for IPv6)
    <prefix><alias>/hostname  = host
    <prefix><alias>/port      = port
    <prefix><alias>/ipv4      = resolved IPv4, "" if none   } written whenever its hostname→IP
    <prefix><alias>/ipv6      = resolved IPv6, "" if none   } lookup did not fail, i.e. nearly always

Baton always writes all five: a sub-key left out would keep the *previous* master's address and so
publish a mixed record. No DNS here: ipv4/ipv6 come from the record, or from the host itself when it
is an IP literal (orchestrator's resolver returns a literal unchanged).

Baton adds one key, `<prefix><alias>/baton-epoch` = the decimal fencing epoch, written in the same
transaction. It sits beside the keys it guards so one recursive read sees both in one snapshot and
one ACL rule (`key_prefix "mysql/master/"`) covers both. Templates that read named keys (`key`) or
list clusters (`ls "mysql/master"`, which skips nested keys) are unaffected; a template that walks
`tree "mysql/master/<alias>"` and prints every entry will also see `baton-epoch` — such templates
should select the sub-keys they need by name.
"""

from __future__ import annotations

import ipaddress

from libs.models.events import MasterRecord

DEFAULT_PREFIX = "mysql/master"
EPOCH_SUBKEY = "baton-epoch"
ORCHESTRATOR_SUBKEYS = ("hostname", "port", "ipv4", "ipv6")


def normalize_prefix(prefix: str) -> str:
    """orchestrator's rule: the prefix ends in `/` (an empty prefix stays empty); no leading `/`."""
    stripped = prefix.lstrip("/")
    if stripped and not stripped.endswith("/"):
        stripped += "/"
    return stripped


def cluster_alias(record: MasterRecord) -> str:
    """The alias the keys are named after: the record's alias, else its cluster name."""
    alias = record.alias or record.cluster
    if not alias or "/" in alias:
        raise ValueError(f"cluster alias {alias!r} cannot name a key (empty or contains '/')")
    return alias


def cluster_master_key(prefix: str, alias: str) -> str:
    return f"{normalize_prefix(prefix)}{alias}"


def epoch_key(prefix: str, alias: str) -> str:
    return f"{cluster_master_key(prefix, alias)}/{EPOCH_SUBKEY}"


def _literal_ips(host: str) -> tuple[str, str]:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "", ""
    return (str(ip), "") if ip.version == 4 else ("", str(ip))


def cluster_master_kv_pairs(record: MasterRecord, prefix: str = DEFAULT_PREFIX) -> dict[str, str]:
    """Every key Baton writes for `record`, in orchestrator's write order, the epoch key last."""
    alias = cluster_alias(record)
    main = cluster_master_key(prefix, alias)
    host, port = record.master.host, record.master.port
    literal_v4, literal_v6 = _literal_ips(host)
    return {
        main: f"{host}:{port}",
        f"{main}/hostname": record.hostname or host,
        f"{main}/port": str(port),
        f"{main}/ipv4": record.ipv4 or literal_v4,
        f"{main}/ipv6": record.ipv6 or literal_v6,
        epoch_key(prefix, alias): str(record.epoch),
    }
