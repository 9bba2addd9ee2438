"""ClusterNameToAlias on real servers: a top master (whose `host:port` names its cluster) gets the alias of
the first regex matching that name, unless DetectClusterAliasQuery answers; a replica gets none."""

from __future__ import annotations

from libs.mysql.connection import ConnectionPool, ProbeSettings
from libs.mysql.probe import probe
from libs.sandbox import Sandbox


async def test_cluster_name_to_alias(sandbox4: Sandbox) -> None:
    port = sandbox4.key("master").port
    mapping = {r"^10\.": "elsewhere", rf"^127\.0\.0\.1:{port}$": "orders", r"127": "too-late"}
    pool = ConnectionPool()
    try:

        async def aliases(settings: ProbeSettings) -> tuple[str, str]:
            master = await probe(sandbox4.key("master"), sandbox4.topology_creds, settings, pool=pool)
            replica = await probe(sandbox4.key("replica1"), sandbox4.topology_creds, settings, pool=pool)
            assert master.reachable and replica.reachable
            return master.cluster_alias, replica.cluster_alias

        assert await aliases(ProbeSettings()) == ("", "")
        assert await aliases(ProbeSettings(cluster_name_to_alias=mapping)) == ("orders", "")
        assert await aliases(ProbeSettings(cluster_name_to_alias={r"^10\.": "elsewhere"})) == ("", "")
        query = ProbeSettings(cluster_name_to_alias=mapping, detect_cluster_alias_query="SELECT 'from-query'")
        assert await aliases(query) == ("from-query", "from-query")
    finally:
        pool.close()
