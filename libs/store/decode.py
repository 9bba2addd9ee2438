"""Turn stream payloads into the models the read model stores, tolerating both shapes a producer may
use: the bare model (`InstanceSnapshot`, `Detection`) or an `Event` envelope whose `data` holds it.

Pure functions; each raises `ValueError` with one line when a payload is not what its stream carries.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from libs.models import Event, InstanceSnapshot
from libs.topology.detection import Detection

DETECTION_SOURCE = "analyzer"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"


def snapshot(data: bytes) -> InstanceSnapshot:
    """A snapshot message: the bare `InstanceSnapshot`, or an Event with it in `data`."""
    try:
        return InstanceSnapshot.model_validate_json(data)
    except ValidationError as exc:
        try:
            event = Event.model_validate_json(data)
        except ValidationError:
            raise ValueError(f"not an InstanceSnapshot ({_first_error(exc)})") from None
        inner = event.data.get("snapshot", event.data)
        try:
            return InstanceSnapshot.model_validate(inner)
        except ValidationError as exc2:
            raise ValueError(f"not an InstanceSnapshot ({_first_error(exc2)})") from None


def detection(data: bytes) -> tuple[Detection, Event]:
    """A detection message, and the Event it is shown as on SSE (the producer's, or one built from it:
    id = the detection's message id, type `detection.<state>`)."""
    try:
        found = Detection.model_validate_json(data)
    except ValidationError as exc:
        try:
            event = Event.model_validate_json(data)
        except ValidationError:
            raise ValueError(f"not a Detection ({_first_error(exc)})") from None
        inner = event.data.get("detection", event.data)
        try:
            return Detection.model_validate(inner), event
        except ValidationError as exc2:
            raise ValueError(f"not a Detection ({_first_error(exc2)})") from None
    finding = found.finding
    wrapped = Event(
        id=found.message_id,
        type=f"detection.{found.state.value}",
        time=found.detected_at,
        cluster=finding.cluster,
        instance=str(finding.instance),
        source=DETECTION_SOURCE,
        data=found.model_dump(mode="json"),
    )
    return found, wrapped


def event(data: bytes) -> Event:
    try:
        return Event.model_validate_json(data)
    except ValidationError as exc:
        raise ValueError(f"not an Event ({_first_error(exc)})") from None


def recovery_record(event_: Event) -> dict[str, Any] | None:
    """The recovery record (JSON dict) an event on `baton.recovery.>` carries, if any: `data.record`, or
    `data` itself when it looks like a record (has `uid` and `started_at`)."""
    data = event_.data
    record = data.get("record")
    if isinstance(record, dict) and "uid" in record:
        return record
    if "uid" in data and "started_at" in data:
        return data
    return None
