"""orchestrator-client's questions, tags, maintenance and operations verbs as `baton <verb>`.

    baton is-replicating -i db2:3306         baton which-broken-replicas -i db1
    baton search -i db                       baton dominant-dc
    baton which-gtid-errant -i db3           baton locate-gtid-errant -i db3
    baton tag -i db3 -t role=backup          baton tagged -t role=backup
    baton begin-maintenance -i db3 -r "disk swap"    baton end-maintenance -i db3
    baton raft-leader                        baton reload-configuration

Same options, output and exit codes as libs/cli/api_commands.py (`--api`, `--json`; 0 done, 1 the API
refused or failed it, 2 bad usage, 3 API unreachable, 4 not authorised). Output follows
orchestrator-client: one `host:port` per line, or the value asked for.
"""

from __future__ import annotations

import getpass
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any

import typer

from libs.cli.api_commands import (
    Alias,
    Api,
    Inst,
    Json,
    OptInst,
    _key,
    _lines,
    _run,
    _target,
    colour_tree,
    hostport,
)
from libs.cli.client import DEFAULT_API, ApiClient, ApiClientError

Tag = Annotated[str, typer.Option("-t", "--tag", help="tag: name, name=value (tagged: ~name, a,b=c)")]
Owner = Annotated[str, typer.Option("-o", "--owner", help="who (default: your user name)")]
Why = Annotated[str, typer.Option("-r", "--reason", help="why (mandatory)")]


def _keys(docs: Any) -> list[str]:
    return [_key(d.get("Key", d)) for d in docs]


def _replicating(doc: dict[str, Any], state: int) -> bool:
    return doc.get("ReplicationSQLThreadState") == state and doc.get("ReplicationIOThreadState") == state


def _broken(doc: dict[str, Any]) -> bool:
    """orchestrator-client's filter_broken_replicas."""
    stopped = doc.get("ReplicationSQLThreadRuning") is False or doc.get("ReplicationIOThreadRuning") is False
    return stopped and bool(doc.get("LastSQLError") or doc.get("LastIOError"))


def dominant_dc(masters: list[dict[str, Any]]) -> str:
    """The data center where most masters are (ties: the first in name order, as `sort | uniq -c`)."""
    counts = Counter(m.get("DataCenter", "") for m in masters)
    if not counts:
        return ""
    return str(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0])


def register(app: typer.Typer) -> None:
    """Add the question verbs to the root `baton` app."""

    def cmd(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        return app.command(name, rich_help_panel="API (orchestrator-client questions)")

    def instance_get(path: str, instance: str) -> Callable[[ApiClient], Any]:
        return lambda c: c.get(f"{path}/{hostport(instance)}")

    @cmd("is-replicating")
    def is_replicating(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Print the instance if both replication threads run (nothing otherwise)."""
        show = lambda r: _lines([_key(r["Key"])] if _replicating(r, 1) else [])  # noqa: E731
        _run(api, as_json, instance_get("instance", instance), show)

    @cmd("is-replication-stopped")
    def is_replication_stopped(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Print the instance if both replication threads are stopped (nothing otherwise)."""
        show = lambda r: _lines([_key(r["Key"])] if _replicating(r, 0) else [])  # noqa: E731
        _run(api, as_json, instance_get("instance", instance), show)

    @cmd("which-broken-replicas")
    def which_broken_replicas(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Direct replicas whose replication stopped with an error."""
        show = lambda r: _lines([_key(d["Key"]) for d in r if _broken(d)])  # noqa: E731
        _run(api, as_json, instance_get("instance-replicas", instance), show)

    @cmd("which-cluster-alias")
    def which_cluster_alias(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """The alias of a cluster."""
        show = lambda r: _lines([r["ClusterAlias"]])  # noqa: E731
        _run(api, as_json, lambda c: c.get(f"cluster-info/{_target(alias, instance)}"), show)

    @cmd("which-gtid-errant")
    def which_gtid_errant(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The instance's errant GTIDs (empty when none)."""
        _run(api, as_json, instance_get("instance", instance), lambda r: _lines([r.get("GtidErrant", "")]))

    def can_replicate_command(verb: str) -> None:
        @cmd(verb)
        def can_replicate(
            instance: Inst,
            destination: Annotated[str, typer.Option("-d", "--destination", help="the would-be source")],
            api: Api = DEFAULT_API,
            as_json: Json = False,
        ) -> None:
            """Prints the source when the instance can replicate from it; the reason (exit 1) when not."""
            action = lambda c: c.get(f"{verb}/{hostport(instance)}/{hostport(destination)}")  # noqa: E731
            _run(api, as_json, action, lambda r: _lines([_key(r.get("Details"))]))

    can_replicate_command("can-replicate-from")
    can_replicate_command("can-replicate-from-gtid")

    @cmd("locate-gtid-errant")
    def locate_gtid_errant(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The binary logs holding the instance's errant GTIDs (read by the recovery leader)."""
        action = lambda c: c.details(f"locate-gtid-errant/{hostport(instance)}")  # noqa: E731
        _run(api, as_json, action, lambda r: _lines(list(r or [])))

    @cmd("search")
    def search(instance: Annotated[str, typer.Option("-i", "--instance", help="search text")],
               api: Api = DEFAULT_API, as_json: Json = False) -> None:  # fmt: skip
        """Instances whose host, cluster, alias, version or data center contain the text."""
        _run(api, as_json, lambda c: c.get("search", {"s": instance}), lambda r: _lines(_keys(r)))

    @cmd("which-cluster-osc-replicas")
    def which_cluster_osc_replicas(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Replicas fit to control an online schema change (orchestrator's heuristic)."""
        action = lambda c: c.get(f"cluster-osc-replicas/{_target(alias, instance)}")  # noqa: E731
        _run(api, as_json, action, lambda r: _lines(_keys(r)))

    @cmd("which-cluster-osc-running-replicas")
    def which_cluster_osc_running_replicas(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """The OSC control replicas whose replication threads both run."""
        action = lambda c: c.get(f"cluster-osc-replicas/{_target(alias, instance)}")  # noqa: E731

        def running(d: dict[str, Any]) -> bool:
            return d["ReplicationSQLThreadRuning"] is True and d["ReplicationIOThreadRuning"] is True

        _run(api, as_json, action, lambda r: _lines(_keys([d for d in r if running(d)])))

    @cmd("dominant-dc")
    def dominant(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The data center where most masters are."""
        _run(api, as_json, lambda c: c.get("masters"), lambda r: _lines([dominant_dc(r)] if r else []))

    @cmd("topology-tags")
    def topology_tags(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """A cluster's replication tree with each instance's tags."""
        _run(api, as_json, lambda c: c.details(f"topology-tags/{_target(alias, instance)}"), colour_tree)

    @cmd("snapshot-topologies")
    def snapshot_topologies(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Record every instance's master now (an audit event, topology.snapshot)."""
        _run(api, as_json, lambda c: c.details("snapshot-topologies"), lambda r: _lines([str(r)]))

    @cmd("forget-cluster")
    def forget_cluster(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Forget every instance of a cluster (they come back if discovered again)."""
        action = lambda c: c.get(f"forget-cluster/{_target(alias, instance)}")  # noqa: E731
        _run(api, as_json, action, lambda r: _lines([r.get("Message", "")]))

    # -- tags ------------------------------------------------------------------------------------------
    @cmd("tags")
    def tags(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """An instance's tags (name=value)."""
        _run(api, as_json, instance_get("tags", instance), lambda r: _lines(list(r)))

    @cmd("tag-value")
    def tag_value(instance: Inst, tag: Tag, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The value of a tag on an instance."""
        action = lambda c: c.get(f"tag-value/{hostport(instance)}", {"tag": tag})  # noqa: E731
        _run(api, as_json, action, lambda r: _lines([str(r)]))

    @cmd("tag")
    def tag_(instance: Inst, tag: Tag, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Tag an instance: name or name=value."""
        action = lambda c: c.details(f"tag/{hostport(instance)}", {"tag": tag})  # noqa: E731
        _run(api, as_json, action, lambda r: _lines([_key(r)]))

    @cmd("untag")
    def untag(instance: Inst, tag: Tag, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Remove a tag from an instance."""
        action = lambda c: c.details(f"untag/{hostport(instance)}", {"tag": tag})  # noqa: E731
        _run(api, as_json, action, lambda r: _lines(_keys(r)))

    @cmd("untag-all")
    def untag_all(tag: Tag, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Remove name=value from every instance."""
        _run(api, as_json, lambda c: c.details("untag-all", {"tag": tag}), lambda r: _lines(_keys(r)))

    @cmd("tagged")
    def tagged(tag: Tag, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Instances tagged by every tag of a comma-separated list (name, name=value, ~name)."""
        _run(api, as_json, lambda c: c.get("tagged", {"tag": tag}), lambda r: _lines(_keys(r)))

    # -- maintenance -----------------------------------------------------------------------------------
    @cmd("begin-maintenance")
    def begin_maintenance(
        instance: Inst, reason: Why, owner: Owner = "", api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Lock an instance for maintenance (no refactoring on it; expires after 10 minutes)."""
        who = owner or getpass.getuser()

        def action(c: ApiClient) -> Any:
            if not reason.strip():
                raise ApiClientError("--reason is mandatory", 2)
            return c.details(f"begin-maintenance/{hostport(instance)}/{who}/{reason}")

        _run(api, as_json, action, lambda r: _lines([_key(r)]))

    @cmd("end-maintenance")
    def end_maintenance(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """End an instance's maintenance."""
        action = lambda c: c.details(f"end-maintenance/{hostport(instance)}")  # noqa: E731
        _run(api, as_json, action, lambda r: _lines([_key(r)]))

    # -- operations ------------------------------------------------------------------------------------
    @cmd("reload-configuration")
    def reload_configuration(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Have the API re-read its config file (what changed live, what needs a restart)."""
        action = lambda c: c.get("reload-configuration")  # noqa: E731
        _run(api, as_json, action, lambda r: _lines([r.get("Message", "")]))

    @cmd("raft-leader")
    def raft_leader(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The recovery leader (Baton's equivalent of orchestrator's raft leader)."""
        _run(api, as_json, lambda c: c.get("raft-leader"), lambda r: _lines([str(r)]))

    @cmd("raft-health")
    def raft_health(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """ "healthy" when a recovery leader holds the lease and answers (exit 1 otherwise)."""
        _run(api, as_json, lambda c: c.get("raft-health"), lambda r: _lines([str(r)]))
