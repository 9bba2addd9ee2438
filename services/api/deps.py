"""Shared route helpers: the runtime, instance/cluster lookups with orchestrator's 4xx answers."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from fastapi import Request

from libs.models import InstanceKey
from libs.topology.errant_view import instance_errant
from libs.topology.succession import Directory
from libs.topology.view import ClusterView, InstanceState
from services.api.envelope import ApiError, bad_request, not_found
from services.api.numbers import is_number
from services.api.runtime import Runtime
from services.api.shapes import Extras, instance_json, problems_of

# Both GET (orchestrator's way, what orchestrator-client sends) and POST are served.
BOTH = ["GET", "POST"]


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def principal_name(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    return str(getattr(principal, "name", "anonymous"))


def parse_key(host: str, port: str) -> InstanceKey:
    """`host` + `port` path segments → InstanceKey; 400 for a bad port or host."""
    if not is_number(port) or not 1 <= int(port) <= 65535:
        raise bad_request(f"bad port {port!r}: expected 1-65535")
    try:
        return InstanceKey.parse(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def parse_instance_text(text: str) -> InstanceKey:
    try:
        return InstanceKey.parse(text)
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def known(rt: Runtime, key: InstanceKey) -> tuple[InstanceState, ClusterView]:
    """The instance and its cluster; 404 when Baton does not know it."""
    view = rt.directory().containing(key)
    state = view.get(key) if view else None
    if view is None or state is None:
        raise not_found(f"instance {key}")
    return state, view


def cluster(rt: Runtime, name: str, directory: Directory | None = None) -> ClusterView:
    """A cluster by alias, name or member instance; 404 when unknown."""
    view = (directory or rt.directory()).find(name)
    if view is None:
        raise not_found(f"cluster {name}")
    return view


def extras(rt: Runtime, key: InstanceKey, state: InstanceState) -> Extras:
    downtime = rt.downtimes().get(key)
    candidate = rt.candidates().get(key)
    problems = problems_of(
        state, rt.now(), rt.poll, rt.params.stale_after, float(rt.settings.ReasonableReplicationLagSeconds)
    )
    return Extras(
        downtime_reason=downtime.reason if downtime else "",
        downtime_owner=downtime.owner if downtime else "",
        downtime_start=downtime.started_at if downtime else None,
        downtime_end=downtime.ends_at if downtime else None,
        promotion_rule=candidate.rule if candidate else None,
        problems=tuple(problems),
    )


def instance_doc(rt: Runtime, state: InstanceState, view: ClusterView) -> dict[str, object]:
    return instance_json(
        state,
        view,
        now=rt.now(),
        poll=rt.poll,
        stale=rt.params.stale_after,
        extras=replace(extras(rt, state.key, state), gtid_errant=instance_errant(state.key, view.by_key)),
    )


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")


def parse_duration(text: str, default: timedelta) -> timedelta:
    """orchestrator's downtime durations: `30s`, `10m`, `1h30m`, `2d`, a bare number of seconds; `0` or
    empty = the default. 400 on anything else, or more than a year."""
    text = text.strip()
    if text in ("", "0"):
        return default
    if is_number(text):
        value = timedelta(seconds=int(text))
    else:
        pos, total = 0, timedelta()
        for match in _DURATION.finditer(text):
            if match.start() != pos:
                break
            number, unit = float(match[1]), match[2]
            total += {
                "ms": timedelta(milliseconds=number),
                "s": timedelta(seconds=number),
                "m": timedelta(minutes=number),
                "h": timedelta(hours=number),
                "d": timedelta(days=number),
            }[unit]
            pos = match.end()
        if pos != len(text) or pos == 0:
            raise bad_request(f"bad duration {text!r}: expected e.g. 30s, 10m, 1h30m")
        value = total
    if value <= timedelta() or value > timedelta(days=366):
        raise bad_request(f"bad duration {text!r}: must be positive and at most a year")
    return value


def require_comment(comment: str | None) -> str:
    if not comment or not comment.strip():
        raise ApiError(400, "comment is mandatory (?comment=...)")
    return comment.strip()
