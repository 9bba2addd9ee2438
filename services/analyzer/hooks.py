"""OnFailureDetectionProcesses for a new detection, and their audit on `baton.audit.hooks`.

Run only by the analyzer whose publish of the `active` detection was stored first (the PubAck was not a
duplicate), so two analyzers side by side run the hooks once. The audit event's id is derived from the
incident, so a retried audit publish is stored once too.
"""

from __future__ import annotations

import logging
import os

from nats.js import JetStreamContext

from libs.bus.messages import publish_event
from libs.bus.subjects import audit_subject
from libs.config import Settings
from libs.errors import BusError
from libs.hooks import HookContext, HookKind, HookResult, failed, run_hooks
from libs.models.events import Event
from libs.topology.detection import Detection

log = logging.getLogger(__name__)
AUDIT_KIND = "hooks"
EVENT_TYPE = "hooks.on-failure-detection"


def instance_type(detection: Detection) -> str:
    f = detection.finding
    if f.is_co_master:
        return "co-master"
    if f.is_master:
        return "master"
    return "intermediate-master"


def hook_context(detection: Detection) -> HookContext:
    f = detection.finding
    description = detection.facts.description if detection.facts else ""
    return HookContext(
        failure_type=f.code.value,
        instance_type=instance_type(detection),
        is_master=f.is_master,
        is_co_master=f.is_co_master,
        failure_description=description or f.reason,
        command=detection.facts.command_hint if detection.facts else "",
        failed_host=f.instance.host,
        failed_port=f.instance.port,
        failure_cluster=f.cluster,
        failure_cluster_alias=f.alias,
        count_replicas=f.replica_count,
        is_downtimed=f.downtimed,
        orchestrator_host=detection.node,
        recovery_uid=detection.incident,
        replica_hosts=tuple(str(r) for r in f.replicas),
    )


def audit_event(detection: Detection, results: list[HookResult]) -> Event:
    f = detection.finding
    return Event(
        id=f"{detection.incident}:on-failure-detection",
        type=EVENT_TYPE,
        cluster=f.cluster,
        instance=str(f.instance),
        source="analyzer",
        node=detection.node or "?",
        data={
            "incident": detection.incident,
            "analysis": f.code.value,
            "kind": HookKind.ON_FAILURE_DETECTION.value,
            "failed": failed(results),
            "results": [r.model_dump(mode="json") for r in results],
        },
    )


async def run_detection_hooks(
    js: JetStreamContext, settings: Settings, detection: Detection
) -> list[HookResult]:
    """Run the configured hooks for `detection` and publish their audit. Never raises for a hook."""
    commands = settings.OnFailureDetectionProcesses
    if not commands:
        return []
    results = await run_hooks(
        HookKind.ON_FAILURE_DETECTION,
        commands,
        hook_context(detection),
        settings.BatonHookTimeoutSeconds,
        shell=settings.ProcessesShellCommand,
        base_env=settings.environment_without_secrets(os.environ),
    )
    try:
        await publish_event(js, audit_subject(AUDIT_KIND), audit_event(detection, results))
    except BusError as exc:
        log.error("could not audit hooks of incident %s: %s", detection.incident, exc)
    if failed(results):
        log.warning(
            "OnFailureDetectionProcesses failed for %s on %s",
            detection.finding.code,
            detection.finding.instance,
        )
    return results
