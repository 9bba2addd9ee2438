"""orchestrator's read routes: clusters, instances, topology[-tabulated], masters, downtimed,
replication-analysis.

All answer from the in-memory fleet (the read model's instances) plus the KV mirrors; nothing here
touches MySQL. Bare JSON on success (as orchestrator), the ERROR envelope on failure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request

from libs.topology.analysis import analyze
from libs.topology.render import ascii_tree, tabulated_tree
from libs.topology.succession import Directory, tops
from libs.topology.view import ClusterView
from services.api import deps
from services.api.auth import reader
from services.api.envelope import not_found, ok
from services.api.shapes import analysis_json, cluster_info_json

router = APIRouter(prefix="/api", tags=["orchestrator: read"], dependencies=[Depends(reader)])
Render = Callable[[ClusterView, datetime, timedelta], str]  # ascii_tree, tabulated_tree


def _info(request: Request, view: ClusterView) -> dict[str, Any]:
    s = deps.runtime(request).settings
    return cluster_info_json(view, s.RecoverMasterClusterFilters, s.RecoverIntermediateMasterClusterFilters)


def _instances(request: Request, view: ClusterView) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    return [deps.instance_doc(rt, s, view) for s in view.instances]


def _master_doc(request: Request, view: ClusterView, directory: Directory) -> dict[str, Any] | None:
    """The cluster's live master (libs/topology/succession.py): never a server that does not answer."""
    rt = deps.runtime(request)
    master = directory.master(view, rt.now(), rt.params.stale_after)
    return deps.instance_doc(rt, master, view) if master is not None else None


@router.get("/clusters", summary="Names of all clusters")
async def clusters(request: Request) -> list[str]:
    return [v.name for v in deps.runtime(request).views()]


@router.get("/clusters-info", summary="All clusters (ClusterInfo)")
async def clusters_info(request: Request) -> list[dict[str, Any]]:
    return [_info(request, v) for v in deps.runtime(request).views()]


@router.get("/cluster/{name}", summary="Instances of a cluster (alias, name or member instance)")
async def cluster(request: Request, name: str) -> list[dict[str, Any]]:
    return _instances(request, deps.cluster(deps.runtime(request), name))


@router.get("/cluster/alias/{alias}", summary="Instances of a cluster by alias")
async def cluster_by_alias(request: Request, alias: str) -> list[dict[str, Any]]:
    return _instances(request, deps.cluster(deps.runtime(request), alias))


@router.get("/cluster-info/{name}", summary="ClusterInfo of a cluster")
async def cluster_info(request: Request, name: str) -> dict[str, Any]:
    return _info(request, deps.cluster(deps.runtime(request), name))


@router.get("/cluster-info/alias/{alias}", summary="ClusterInfo by alias")
async def cluster_info_by_alias(request: Request, alias: str) -> dict[str, Any]:
    return _info(request, deps.cluster(deps.runtime(request), alias))


def _drawn(request: Request, view: ClusterView, render: Render) -> Any:
    """A topology route's answer: the envelope with the drawn tree as `Details`."""
    rt = deps.runtime(request)
    return ok(f"Topology for {view.name}", render(view, rt.now(), rt.params.stale_after))


def _view_of(request: Request, host: str, port: str) -> ClusterView:
    return deps.known(deps.runtime(request), deps.parse_key(host, port))[1]


@router.get("/topology/{name}", summary="ASCII tree of a cluster (envelope, Details = text)")
async def topology(request: Request, name: str) -> Any:
    return _drawn(request, deps.cluster(deps.runtime(request), name), ascii_tree)


@router.get("/topology/{host}/{port}", summary="ASCII tree of the cluster of an instance")
async def topology_of_instance(request: Request, host: str, port: str) -> Any:
    return _drawn(request, _view_of(request, host, port), ascii_tree)


@router.get("/topology-tabulated/{name}", summary="The ASCII tree with its facts in |-separated columns")
async def topology_tabulated(request: Request, name: str) -> Any:
    return _drawn(request, deps.cluster(deps.runtime(request), name), tabulated_tree)


@router.get("/topology-tabulated/{host}/{port}", summary="The tabulated tree of the cluster of an instance")
async def topology_tabulated_of_instance(request: Request, host: str, port: str) -> Any:
    return _drawn(request, _view_of(request, host, port), tabulated_tree)


@router.get("/instance/{host}/{port}", summary="One instance (orchestrator's Instance)")
async def instance(request: Request, host: str, port: str) -> dict[str, Any]:
    rt = deps.runtime(request)
    state, view = deps.known(rt, deps.parse_key(host, port))
    return deps.instance_doc(rt, state, view)


@router.get("/instance-replicas/{host}/{port}", summary="Direct replicas of an instance")
async def instance_replicas(request: Request, host: str, port: str) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    state, view = deps.known(rt, deps.parse_key(host, port))
    return [deps.instance_doc(rt, r, view) for r in view.replicas_of(state.key)]


@router.get("/master/{name}", summary="The master of a cluster")
async def master(request: Request, name: str) -> Any:
    rt = deps.runtime(request)
    directory = rt.directory()
    view = deps.cluster(rt, name, directory)
    doc = _master_doc(request, view, directory)
    if doc is None:
        down = ", ".join(str(s.key) for s in tops(view))
        raise not_found(f"master of cluster {view.name}: no live master ({down} not answering)")
    return doc


@router.get("/masters", summary="The master of every cluster")
async def masters(request: Request) -> list[dict[str, Any]]:
    directory = deps.runtime(request).directory()  # built once, not once per cluster
    docs = (_master_doc(request, v, directory) for v in directory.views)
    return [d for d in docs if d is not None]


@router.get("/all-instances", summary="Every known instance")
async def all_instances(request: Request) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for view in deps.runtime(request).views():
        out.extend(_instances(request, view))
    return out


@router.get("/downtimed", summary="Downtimed instances")
async def downtimed(request: Request) -> list[dict[str, Any]]:
    return await _downtimed(request, None)


@router.get("/downtimed/{name}", summary="Downtimed instances of a cluster")
async def downtimed_in(request: Request, name: str) -> list[dict[str, Any]]:
    return await _downtimed(request, name)


async def _downtimed(request: Request, name: str | None) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    views = [deps.cluster(rt, name)] if name else rt.views()
    down = rt.downtimes()
    return [deps.instance_doc(rt, s, v) for v in views for s in v.instances if s.key in down]


def _analysis(request: Request, views: list[ClusterView]) -> list[dict[str, Any]]:
    rt = deps.runtime(request)
    now = rt.now()
    out: list[dict[str, Any]] = []
    for view in views:
        info = _info(request, view)
        out.extend(analysis_json(f, view, info, now) for f in analyze(view, now, rt.params))
    return out


@router.get("/replication-analysis", summary="Problems in every cluster, computed now (envelope)")
async def replication_analysis(request: Request) -> Any:
    return ok("Analysis", _analysis(request, deps.runtime(request).views()))


@router.get("/replication-analysis/{name}", summary="Problems in one cluster (envelope)")
async def replication_analysis_cluster(request: Request, name: str) -> Any:
    return ok("Analysis", _analysis(request, [deps.cluster(deps.runtime(request), name)]))


@router.get("/replication-analysis/instance/{host}/{port}", summary="Problems of one instance (envelope)")
async def replication_analysis_instance(request: Request, host: str, port: str) -> Any:
    rt = deps.runtime(request)
    state, view = deps.known(rt, deps.parse_key(host, port))
    entries = [
        e
        for e in _analysis(request, [view])
        if e["AnalyzedInstanceKey"]["Port"] == state.key.port
        and e["AnalyzedInstanceKey"]["Hostname"] == state.key.host
    ]
    return ok("Analysis", entries)
