"""orchestrator-client's `-c` verbs as `baton <verb>`, talking to Baton's HTTP API.

    baton clusters                      baton topology -a mycluster
    baton topology-tabulated -a mycluster
    baton instance -i db1:3306          baton which-master -i db2
    baton recover -i db1:3306           baton graceful-master-takeover -a mycluster -d db2:3306
    baton begin-downtime -i db3 --duration 30m --reason "disk swap"

Every command takes `--api URL` (env BATON_API, default http://127.0.0.1:3000) and `--json` (print
the API's JSON instead of text). Output and options follow orchestrator-client; exit codes: 0 done,
1 the API refused or failed it, 2 bad usage, 3 API unreachable, 4 not authorised.
"""

from __future__ import annotations

import getpass
import json
import re
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from libs.cli.client import DEFAULT_API, ApiClient, ApiClientError
from libs.models import InstanceKey

Api = Annotated[str, typer.Option("--api", envvar="BATON_API", help="Baton API URL")]
Json = Annotated[bool, typer.Option("--json", help="print the API's JSON")]
Inst = Annotated[str, typer.Option("-i", "--instance", help="host[:port]")]
OptInst = Annotated[str | None, typer.Option("-i", "--instance", help="host[:port]")]
Alias = Annotated[str | None, typer.Option("-a", "--alias", help="cluster alias or name")]
Dest = Annotated[str | None, typer.Option("-d", "--destination", help="designated host[:port]")]
Reason = Annotated[str, typer.Option("-r", "--reason", help="why (mandatory)")]

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_STATUS_STYLE = {"ok": "green", "nonreplicating": "yellow", "unreachable": "bold red", "downtimed": "magenta"}
_FACTS = re.compile(r"\[([^\]]*)\]\s*$")


def hostport(text: str) -> str:
    try:
        key = InstanceKey.parse(text)
    except ValueError as exc:
        raise ApiClientError(f"bad instance {text!r}: {exc}", 2) from None
    return f"{key.host}/{key.port}"


def _target(alias: str | None, instance: str | None) -> str:
    if not (alias or instance):
        raise ApiClientError("give a cluster with -a ALIAS or an instance with -i HOST:PORT", 2)
    return alias or str(InstanceKey.parse(instance or ""))


def _key(doc: Any) -> str:
    if not isinstance(doc, dict) or not doc.get("Hostname"):
        return ""
    return f"{doc['Hostname']}:{doc['Port']}"


def _run(api: str, as_json: bool, action: Callable[[ApiClient], Any], show: Callable[[Any], None]) -> None:
    try:
        with ApiClient(api) as client:
            result = action(client)
    except ApiClientError as exc:
        err.print(f"baton: error: {exc}", markup=False)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        out.print_json(json.dumps(result))
    else:
        show(result)


def _lines(values: list[str]) -> None:
    for value in values:
        out.print(value, markup=False)


def _facts(line: str) -> list[str]:
    """A tree line's facts (lag, status, version, rw/ro, ...), bracketed (`topology`) or in
    `|`-separated columns (`topology-tabulated`)."""
    match = _FACTS.search(line)
    if match:
        return match.group(1).split(",")
    return [cell.strip() for cell in line.split("|")[1:]]


def colour_tree(text: str) -> None:
    """orchestrator's ascii tree (either layout), coloured by each instance's status (and writable
    masters bold)."""
    for line in text.splitlines():
        facts = _facts(line)
        style = _STATUS_STYLE.get(facts[1], "") if len(facts) > 1 else ""
        if len(facts) > 3 and facts[3] == "rw":
            style = f"bold {style}".strip()
        out.print(Text(line, style=style))


def register(app: typer.Typer) -> None:
    """Add the API verbs to the root `baton` app."""

    def cmd(name: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
        return app.command(name, rich_help_panel="API (orchestrator-client verbs)")

    @cmd("clusters")
    def clusters(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """List cluster names."""
        _run(api, as_json, lambda c: c.get("clusters-info"), lambda r: _lines([i["ClusterName"] for i in r]))

    @cmd("clusters-alias")
    def clusters_alias(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """List clusters as name,alias."""
        show = lambda r: _lines([f"{i['ClusterName']},{i['ClusterAlias']}" for i in r])  # noqa: E731
        _run(api, as_json, lambda c: c.get("clusters-info"), show)

    @cmd("topology")
    def topology(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Draw a cluster's replication tree."""
        _run(api, as_json, lambda c: c.details(f"topology/{_target(alias, instance)}"), colour_tree)

    @cmd("topology-tabulated")
    def topology_tabulated(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Draw a cluster's replication tree with its facts in |-separated columns."""
        _run(api, as_json, lambda c: c.details(f"topology-tabulated/{_target(alias, instance)}"), colour_tree)

    @cmd("instance")
    def instance_(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Show an instance (its canonical host:port)."""
        _run(
            api,
            as_json,
            lambda c: c.get(f"instance/{hostport(instance)}"),
            lambda r: _lines([_key(r["Key"])]),
        )

    @cmd("which-master")
    def which_master(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The master of an instance."""
        show = lambda r: _lines([_key(r["MasterKey"]) or ":0"])  # noqa: E731
        _run(api, as_json, lambda c: c.get(f"instance/{hostport(instance)}"), show)

    @cmd("which-replicas")
    def which_replicas(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The direct replicas of an instance."""
        show = lambda r: _lines([_key(i["Key"]) for i in r])  # noqa: E731
        _run(api, as_json, lambda c: c.get(f"instance-replicas/{hostport(instance)}"), show)

    @cmd("which-cluster")
    def which_cluster(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """The cluster of an instance (or alias)."""
        _run(
            api,
            as_json,
            lambda c: c.get(f"cluster-info/{_target(alias, instance)}"),
            lambda r: _lines([r["ClusterName"]]),
        )

    @cmd("which-cluster-master")
    def which_cluster_master(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """The master of a cluster."""
        _run(
            api,
            as_json,
            lambda c: c.get(f"master/{_target(alias, instance)}"),
            lambda r: _lines([_key(r["Key"])]),
        )

    @cmd("which-cluster-instances")
    def which_cluster_instances(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Every instance of a cluster."""
        show = lambda r: _lines([_key(i["Key"]) for i in r])  # noqa: E731
        _run(api, as_json, lambda c: c.get(f"cluster/{_target(alias, instance)}"), show)

    @cmd("all-instances")
    def all_instances(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Every known instance."""
        _run(api, as_json, lambda c: c.get("all-instances"), lambda r: _lines([_key(i["Key"]) for i in r]))

    @cmd("all-clusters-masters")
    def all_masters(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """The master of every cluster."""
        _run(api, as_json, lambda c: c.get("masters"), lambda r: _lines([_key(i["Key"]) for i in r]))

    @cmd("downtimed")
    def downtimed(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Downtimed instances."""
        _run(api, as_json, lambda c: c.get("downtimed"), lambda r: _lines([_key(i["Key"]) for i in r]))

    @cmd("replication-analysis")
    def replication_analysis(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Problems found in every cluster."""

        def show(entries: list[dict[str, Any]]) -> None:
            for e in entries:
                code = e["Analysis"] if e["Analysis"] != "NoProblem" else (e["StructureAnalysis"] or [""])[0]
                style = "bold red" if e.get("IsActionableRecovery") else "yellow"
                head = f"{_key(e['AnalyzedInstanceKey'])} (cluster {e['ClusterDetails']['ClusterName']}): "
                out.print(Text(head) + Text(code, style=style))

        _run(api, as_json, lambda c: c.details("replication-analysis"), show)

    @cmd("begin-downtime")
    def begin_downtime(
        instance: Inst,
        reason: Reason,
        duration: Annotated[str, typer.Option("-u", "--duration", help="e.g. 30m, 2h")] = "10m",
        owner: Annotated[str, typer.Option("-o", "--owner")] = "",
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        """Downtime an instance: no automated recovery while it lasts."""
        who = owner or getpass.getuser()
        path = f"begin-downtime/{hostport(instance)}/{_seg(who)}/{_seg(reason)}/{_seg(duration)}"
        _run(api, as_json, lambda c: c.details(path), lambda r: _lines([_key(r)]))

    @cmd("end-downtime")
    def end_downtime(instance: Inst, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """End an instance's downtime."""
        _run(
            api,
            as_json,
            lambda c: c.details(f"end-downtime/{hostport(instance)}"),
            lambda r: _lines([_key(r)]),
        )

    @cmd("register-candidate")
    def register_candidate(
        instance: Inst,
        rule: Annotated[
            str, typer.Option("-R", "--promotion-rule", help="prefer, neutral, prefer_not, must_not")
        ],
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        """Register a promotion rule for an instance."""
        path = f"register-candidate/{hostport(instance)}/{_seg(rule)}"
        _run(api, as_json, lambda c: c.details(path), lambda r: _lines([_key(r)]))

    def _failover(api: str, as_json: bool, path: str, cluster: str, what: str) -> None:
        def action(client: ApiClient) -> Any:
            stop = threading.Event()
            if not as_json:
                threading.Thread(target=_follow, args=(api, cluster, stop), daemon=True).start()
            try:
                with err.status(f"{what} {cluster} ..."):
                    return client.details(path)
            finally:
                stop.set()

        def show(r: Any) -> None:
            successor = _key(r.get("SuccessorKey")) if isinstance(r, dict) else _key(r)
            if isinstance(r, dict) and r.get("BatonWriteOutageMs") is not None:
                err.print(f"write outage: {r['BatonWriteOutageMs']:.0f} ms")
            _lines([successor or "(no successor)"])

        _run(api, as_json, action, show)

    @cmd("recover")
    def recover(
        instance: Inst, destination: Dest = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Recover a failed instance (forced), optionally promoting the given candidate."""
        path = f"recover/{hostport(instance)}" + (f"/{hostport(destination)}" if destination else "")
        _failover(api, as_json, path, instance, "recovering")

    @cmd("force-master-failover")
    def force_master_failover(
        alias: Alias = None, instance: OptInst = None, api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """Fail over a cluster's master as if it were dead."""
        target = _target(alias, instance)
        _failover(api, as_json, f"force-master-failover/{target}", target, "failing over")

    @cmd("force-master-takeover")
    def force_master_takeover(
        alias: Alias = None,
        instance: OptInst = None,
        destination: Dest = None,
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        """Fail over a cluster's master as if it were dead, promoting the designated direct replica."""
        target = _target(alias, instance)
        if not destination:
            raise ApiClientError("force-master-takeover needs the replica to promote: -d HOST:PORT", 2)
        path = f"force-master-takeover/{target}/{hostport(destination)}"
        _failover(api, as_json, path, target, "failing over")

    @cmd("graceful-master-takeover")
    def graceful(
        alias: Alias = None,
        instance: OptInst = None,
        destination: Dest = None,
        auto: Annotated[bool, typer.Option("--auto", help="old master replicates from the new one")] = False,
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        """Planned master switch (to the designated replica with -d)."""
        target = _target(alias, instance)
        verb = "graceful-master-takeover-auto" if auto else "graceful-master-takeover"
        path = f"{verb}/{target}" + (f"/{hostport(destination)}" if destination else "")
        _failover(api, as_json, path, target, "taking over")

    def _ack(api: str, as_json: bool, path: str, reason: str) -> None:
        _run(api, as_json, lambda c: c.details(path, {"comment": reason}), lambda r: _lines([str(r)]))

    @cmd("ack-cluster-recoveries")
    def ack_cluster(
        reason: Reason,
        alias: Alias = None,
        instance: OptInst = None,
        api: Api = DEFAULT_API,
        as_json: Json = False,
    ) -> None:
        """Acknowledge a cluster's recoveries (clears anti-flapping blocks)."""
        _ack(api, as_json, f"ack-recovery/cluster/{_target(alias, instance)}", reason)

    @cmd("ack-instance-recoveries")
    def ack_instance(instance: Inst, reason: Reason, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Acknowledge an instance's recoveries."""
        _ack(api, as_json, f"ack-recovery/instance/{hostport(instance)}", reason)

    @cmd("ack-all-recoveries")
    def ack_all(reason: Reason, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Acknowledge every recovery."""
        _ack(api, as_json, "ack-all-recoveries", reason)

    @cmd("submit-masters-to-kv-stores")
    def submit_masters(alias: Alias = None, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Write every cluster's master (the cluster's with -a) to baton_masters and the KV stores."""
        path = "submit-masters-to-kv-stores" + (f"/{_seg(alias)}" if alias else "")
        show = lambda r: _lines([f"{p['Key']}:{p['Value']}" for p in r or []])  # noqa: E731
        _run(api, as_json, lambda c: c.details(path), show)

    for verb in ("disable-global-recoveries", "enable-global-recoveries", "check-global-recoveries"):

        def switch(api: Api = DEFAULT_API, as_json: Json = False, verb: str = verb) -> None:
            _run(api, as_json, lambda c: c.details(verb), lambda r: _lines([str(r)]))

        switch.__doc__ = verb.replace("-", " ").capitalize() + "."
        cmd(verb)(switch)

    @cmd("audit-recovery")
    def audit_recovery(alias: Alias = None, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Recent recoveries (of a cluster with -a)."""

        def show(rows: list[dict[str, Any]]) -> None:
            for r in rows:
                entry = r.get("AnalysisEntry") or {}
                ok_ = "ok" if r.get("IsSuccessful") else ("running" if r.get("IsActive") else "failed")
                failed, successor = _key(entry.get("AnalyzedInstanceKey")), _key(r.get("SuccessorKey")) or "-"
                when, code = r.get("RecoveryStartTimestamp", ""), entry.get("Analysis", "")
                _lines([f"{r.get('UID')} {when} {code} {failed} -> {successor} {ok_}"])

        _run(
            api,
            as_json,
            lambda c: c.get(f"audit-recovery/cluster/{alias}" if alias else "audit-recovery"),
            show,
        )

    @cmd("audit-recovery-steps")
    def audit_steps(
        uid: Annotated[str, typer.Argument()], api: Api = DEFAULT_API, as_json: Json = False
    ) -> None:
        """The steps of one recovery."""
        _run(
            api,
            as_json,
            lambda c: c.get(f"audit-recovery-steps/{_seg(uid)}"),
            lambda r: _lines([f"{s['AuditAt']} {s['Message']}" for s in r]),
        )

    @cmd("audit-failure-detection")
    def audit_detection(api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Recent detections."""

        def show(r: list[dict[str, Any]]) -> None:
            for d in r:
                entry = d.get("AnalysisEntry") or {}
                when = d.get("RecoveryStartTimestamp", "")
                _lines([f"{when} {entry.get('Analysis', '')} {_key(entry.get('AnalyzedInstanceKey'))}"])

        _run(api, as_json, lambda c: c.get("audit-failure-detection"), show)

    @cmd("blocked-recoveries")
    def blocked(alias: Alias = None, api: Api = DEFAULT_API, as_json: Json = False) -> None:
        """Automated recoveries refused by an anti-flapping block (of a cluster with -a), latest first."""

        def show(r: list[dict[str, Any]]) -> None:
            for b in r:
                by = b.get("BlockingRecoveryUID") or b.get("BlockingRecoveryId")
                times = f" x{b['BlockedCount']}" if b.get("BlockedCount") else ""
                until = f" until {b['BlockedUntil']}" if b.get("BlockedUntil") else ""
                _lines(
                    [
                        f"{b['LastBlockedTimestamp']} {b['ClusterName']} {b['Analysis']} "
                        f"{_key(b['FailedInstanceKey'])} blocked by {by}{times}{until}"
                    ]
                )

        path = f"blocked-recoveries/cluster/{_seg(alias)}" if alias else "blocked-recoveries"
        _run(api, as_json, lambda c: c.get(path), show)


def _seg(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")


def _follow(api: str, cluster: str, stop: threading.Event) -> None:
    """Print recovery events of `cluster` while a command runs (best effort, stops with `stop`)."""
    try:
        with ApiClient(api) as client:
            for event in client.events({"type": "recovery.", "cluster": cluster}):
                if stop.is_set():
                    return
                data = event.get("data") or {}
                step = data.get("step") or {}
                detail = f" {step.get('name')}: {step.get('outcome')}" if step else ""
                err.print(f"  {event.get('type')}{detail}", markup=False)
    except ApiClientError:
        return
