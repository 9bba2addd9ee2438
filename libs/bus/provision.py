"""Create or update, idempotently, the streams and KV buckets of DESIGN §3.

Every service calls `provision()` at start, several at once, against a broker that may already hold
an older layout: creating is first-writer-wins, and an existing stream or bucket is updated in place
to the current settings (the server refuses only changes that cannot be made live, such as the storage
type; those surface as BusError naming the stream).

KV buckets are built as nats-py's `create_key_value` builds them (`KV_<bucket>` streams on `$KV.<bucket>.>`,
rollup headers, deny delete, discard new), so `js.key_value(bucket)` opens them as usual. All of them
allow per-message TTL (nats-py always sets it); the lease buckets also get a subject delete marker TTL, so
a watcher sees a lease expire as a PURGE marker instead of silence.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext, api

from libs.bus.connection import bus_errors, describe
from libs.errors import BusError

log = logging.getLogger(__name__)

PROVISION_BUDGET_S = 120.0  # patience per stream for transient failures at start-up
_CLUSTER_UNAVAILABLE = (10008,)  # JSClusterNotAvailErr: no meta leader / quorum yet
HOUR = 3600.0
DAY = 24 * HOUR

# Buckets (names of DESIGN §3)
LEADER = "baton_leader"
MASTERS = "baton_masters"
DOWNTIME = "baton_downtime"
CANDIDATES = "baton_candidates"
BLOCKS = "baton_blocks"
SHARDS = "baton_shards"
INSTANCES = "baton_instances"
SETTINGS = "baton_settings"
RECOVERIES = "baton_recoveries"
FENCES = "baton_fences"
TAGS = "baton_tags"
MAINTENANCE = "baton_maintenance"

_STREAM_EXISTS = 10058  # "stream name already in use with a different configuration"


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    description: str
    max_age_s: float
    max_msgs_per_subject: int = -1
    duplicate_window_s: float = 120.0


@dataclass(frozen=True)
class BucketSpec:
    bucket: str
    description: str
    history: int = 1
    marker_ttl_s: float | None = None  # subject delete marker TTL: watchers see per-message TTL expiry


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec("BATON_SNAPSHOTS", ("baton.snapshot.>",), "latest probe snapshots per instance", HOUR, 5),
    StreamSpec("BATON_DETECTIONS", ("baton.detection.>",), "problems found by analyzers", 30 * DAY, -1, 600),
    StreamSpec("BATON_RECOVERIES", ("baton.recovery.>",), "recovery lifecycle events", 90 * DAY, -1, 600),
    StreamSpec("BATON_AUDIT", ("baton.audit.>",), "audit of everything else", 30 * DAY, -1, 600),
)

BUCKETS: tuple[BucketSpec, ...] = (
    BucketSpec(LEADER, "recovery leader lease (per-message TTL; epoch = acquiring sequence)", 1, 60),
    BucketSpec(MASTERS, "current master per cluster", 10),
    BucketSpec(DOWNTIME, "downtimed instances (per-message TTL)", 1),
    BucketSpec(CANDIDATES, "promotion rules per instance", 1),
    BucketSpec(BLOCKS, "recovery blocks and acks (per-message TTL)", 1, 60),
    BucketSpec(SHARDS, "prober shard leases (per-message TTL)", 1, 60),
    BucketSpec(INSTANCES, "registry of known instances (discover adds, forget deletes)", 1),
    BucketSpec(SETTINGS, "global switches (e.g. recoveries disabled)", 5),
    BucketSpec(RECOVERIES, "latest recovery record per cluster (open ones are resumed)", 10),
    BucketSpec(FENCES, "failed masters kept read-only until an operator ends the watch", 5),
    BucketSpec(TAGS, "instance tags (tag/untag): {name: value} per instance", 1),
    BucketSpec(MAINTENANCE, "maintenance locks per instance (per-message TTL)", 1, 60),
)


def stream_config(spec: StreamSpec, replicas: int) -> api.StreamConfig:
    return api.StreamConfig(
        name=spec.name,
        description=spec.description,
        subjects=list(spec.subjects),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        discard=api.DiscardPolicy.OLD,
        max_age=spec.max_age_s,
        max_msgs_per_subject=spec.max_msgs_per_subject,
        duplicate_window=min(spec.duplicate_window_s, spec.max_age_s),
        num_replicas=replicas,
    )


def bucket_config(spec: BucketSpec, replicas: int) -> api.StreamConfig:
    """The stream behind a KV bucket, field for field as nats-py 2.16's create_key_value makes it."""
    return api.StreamConfig(
        name=f"KV_{spec.bucket}",
        description=spec.description,
        subjects=[f"$KV.{spec.bucket}.>"],
        allow_rollup_hdrs=True,
        allow_msg_ttl=True,
        deny_delete=True,
        discard=api.DiscardPolicy.NEW,
        duplicate_window=120.0,
        max_consumers=-1,
        max_msgs=-1,
        max_msgs_per_subject=spec.history,
        num_replicas=replicas,
        storage=api.StorageType.FILE,
        subject_delete_marker_ttl=spec.marker_ttl_s,
    )


async def ensure_stream(js: JetStreamContext, config: api.StreamConfig) -> str:
    """Create the stream, or update it to `config` if it exists. Returns "created" or "updated"."""
    name = config.name
    with bus_errors(f"provisioning stream {name}"):
        try:
            await js.stream_info(str(name))
        except nats.js.errors.NotFoundError:
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_EXISTS:
                    raise
                # Another process created it between our look and our create: converge on ours.
            else:
                return "created"
        await js.update_stream(config)
        return "updated"


def _transient(exc: BaseException | None) -> bool:
    """A failure that a busy or still-forming cluster gives and that the same request may not give a
    moment later: no answer in time, nobody answering yet, JetStream temporarily unavailable (503) or
    without a meta leader / stream quorum (10008 cluster not available)."""
    if isinstance(exc, TimeoutError | nats.errors.TimeoutError | nats.errors.NoRespondersError):
        return True
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code == 503 or exc.err_code in _CLUSTER_UNAVAILABLE
    return False


def transient_chain(exc: BaseException) -> bool:
    """`exc` was caused (directly or further down its `__cause__` chain) by a transient failure."""
    cause = exc.__cause__
    while cause is not None:
        if _transient(cause):
            return True
        cause = cause.__cause__
    return False


async def ensure_stream_patiently(
    js: JetStreamContext, config: api.StreamConfig, budget_s: float = PROVISION_BUDGET_S
) -> str:
    """`ensure_stream`, retried with bounded back-off (0.2 s doubling to 5 s) while the failure is
    transient and the budget lasts. Creating is idempotent (a create whose reply was lost shows up as
    an existing stream on the next try), so retrying is always safe. Any other failure, or a transient
    one past the budget, is raised as the BusError naming the stream."""
    deadline = time.monotonic() + budget_s
    delay = 0.2
    while True:
        try:
            return await ensure_stream(js, config)
        except BusError as exc:
            if not _transient(exc.__cause__) or time.monotonic() + delay > deadline:
                raise
            log.warning("%s; retrying in %.1fs", exc, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def provision(
    js: JetStreamContext, replicas: int = 1, *, budget_s: float = PROVISION_BUDGET_S
) -> dict[str, str]:
    """Ensure every stream and bucket of DESIGN §3 exists with the current settings.

    Safe to call from any number of processes, any number of times. Returns {stream name: action}.
    Each stream gets `budget_s` of patience for transient failures: a dozen services creating R3
    streams at once on a loaded machine time out now and then, and a service must not die of it.
    """
    if replicas not in (1, 3, 5):
        raise BusError(f"replicas must be 1, 3 or 5, not {replicas}")
    done: dict[str, str] = {}
    for spec in STREAMS:
        done[spec.name] = await ensure_stream_patiently(js, stream_config(spec, replicas), budget_s)
    for bspec in BUCKETS:
        name = f"KV_{bspec.bucket}"
        done[name] = await ensure_stream_patiently(js, bucket_config(bspec, replicas), budget_s)
    return done


async def wait_for_jetstream(js: JetStreamContext, timeout_s: float = 10.0) -> None:
    """Wait until JetStream answers API requests (a cluster needs a meta leader first)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            await js.account_info()
        except (nats.errors.Error, TimeoutError) as exc:
            last = exc
            await asyncio.sleep(0.1)
        else:
            return
    raise BusError(f"JetStream not available after {timeout_s:g}s: {describe(last) if last else 'no answer'}")
