"""When to look again at the replicas of a master that does not answer: the moment their silence crosses.

The heartbeat rule (`context.py`) counts a replica silent once it has received nothing from its master
for more than `heartbeat_periods_silent` heartbeat periods, measured from the first probe that saw its
current received mark (`AnalysisHistory.received_since`; the later bound, so never longer than it was).
That silence can only be seen by a probe that *starts* after the threshold; the regular polls and
probe-now rounds land at arbitrary moments after it, and the difference went straight into the
detection time. For a suspect M (its latest probe failed or went stale), `silence_check_at` names the
moment the last of M's listening replicas crosses, plus a small margin: a probe of those replicas then
sees them all silent if M is hung, and sees their marks moved if M is merely slow (then the next
crossing is later). It changes what is measured, never the rule: the silence is still measured from the
later bound, over the same number of periods.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from libs.models import InstanceKey, IOThreadState
from libs.topology.context import AnalysisHistory, AnalysisParams
from libs.topology.view import ClusterView

# How long after the computed crossing the probe starts: the silence must be *more than* N periods,
# and the probe's own start time is what is compared.
CHECK_MARGIN = timedelta(milliseconds=20)


def silence_check_at(
    view: ClusterView,
    key: InstanceKey,
    history: AnalysisHistory,
    params: AnalysisParams,
    now: datetime,
    margin: timedelta = CHECK_MARGIN,
) -> datetime | None:
    """When to probe the replicas of suspect `key` so that the probe sees all of them past the silence
    threshold; None when no such probe is worth making: the rule is off, M answers (valid), a listening
    replica's silence cannot be measured (heartbeats off, mark unknown), no replica listens, or every
    listening replica has already been probed after its own crossing (the analysis has what it needs).

    Listening replicas are the valid ones whose IO thread says Yes (the only ones the rule concerns;
    replicas with a broken IO thread already vote "dead"). The answer is the latest crossing among them
    plus `margin`: one probe round then settles all of them."""
    periods = params.heartbeat_periods_silent
    state = view.get(key)
    if periods <= 0 or state is None:
        return None
    valid_since = now - params.stale_after
    probe = state.last_probe
    if probe.reachable and probe.probed_at >= valid_since:
        return None
    latest: datetime | None = None
    pending = False
    for replica in view.replicas_of(key):
        snap = replica.last_probe
        if not snap.reachable or snap.probed_at < valid_since:
            continue
        replication = snap.replication
        if replication is None or replication.io_state is not IOThreadState.YES:
            continue
        mark = replication.received_mark
        seen = history.received_since.get(replica.key)
        if mark is None or replication.heartbeat_period <= 0 or seen is None or seen.mark != mark:
            return None  # this replica will never be counted silent: DeadMaster cannot come from silence
        crossing = seen.since + timedelta(seconds=periods * replication.heartbeat_period) + margin
        if snap.probed_at < crossing:
            pending = True
        latest = crossing if latest is None else max(latest, crossing)
    return latest if pending else None
