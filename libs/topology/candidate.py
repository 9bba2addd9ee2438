"""Who replaces a dead master: a pure choice over a frozen `ClusterView`.

The goal, in order: lose as few replicas (and so as few transactions) as possible, never promote a
server that cannot stay master, then honour preferences (promotion rule, format, data center). Data
comes first because a replica that is ahead of the new master holds transactions the cluster would
silently drop; that is why the most up-to-date replica may serve as a two-step *intermediate* when it
is not fit to stay master itself: the successor catches up from its binary logs, so nothing is lost.

Every replica that is not chosen gets a sentence saying why, for the audit and the API.
No I/O and no clock reads: `now` is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from libs.models import Flavor, InstanceKey, InstanceSnapshot, PromotionRule
from libs.topology.gtid import GtidSet, gtid_compare, more_up_to_date
from libs.topology.plan import CandidateRules, Plan, ReplicaReason
from libs.topology.view import ClusterView, InstanceState

_RULE_RANK = {
    PromotionRule.MUST: 0,
    PromotionRule.PREFER: 1,
    PromotionRule.NEUTRAL: 2,
    PromotionRule.PREFER_NOT: 3,
    PromotionRule.MUST_NOT: 4,
}
# A replica can re-log what it applies only in a format at least as expressive as its source's.
_FORMAT_RANK = {"STATEMENT": 0, "MIXED": 1, "ROW": 2}


def effective_rule(state: InstanceState, rules: CandidateRules, now: datetime) -> PromotionRule:
    """A registered, unexpired rule wins over the one `DetectPromotionRuleQuery` reported."""
    registered = rules.registered.get(state.key)
    if registered is not None and registered.expires_at > now:
        return registered.rule
    return state.info.promotion_rule


def why_not_promotable(
    state: InstanceState, failed_master_info: InstanceSnapshot | None, rules: CandidateRules, now: datetime
) -> str | None:
    """Why this replica can never be the *final* master, or None if it may be.

    - unreachable or stale: we cannot act on it, nor trust what we know of it;
    - `must_not`, or a host matching PromotionIgnoreHostnameFilters: the operator said so;
    - no binary logs: no replica could follow it;
    - `log_slave_updates` off: its binary logs lack what it replicated, so replicas behind it cannot
      catch up from it (GTID auto-positioning would ask for transactions its binlogs never had);
    - SQL_Delay > 0: it is hours behind by design; promoting it silently drops that much data;
    - other data center / region while the Prevent… option is on: clients and latency budgets are
      built around the master's location.
    Relative flaws (versions, formats, lost replicas) depend on the siblings: see `choose_candidate`.
    """
    key, probe, info = state.key, state.last_probe, state.info
    if not probe.reachable:
        return f"{key} is unreachable: {probe.error or 'no answer'}"
    age = (now - probe.probed_at).total_seconds()
    if age > rules.stale_after.total_seconds():
        return (
            f"{key} was last probed {age:.0f} s ago (stale after {rules.stale_after.total_seconds():.0f} s)"
        )
    rule = effective_rule(state, rules, now)
    if rule is PromotionRule.MUST_NOT:
        return f"{key} has promotion rule must_not"
    names = {key.host, info.hostname or "", info.report_host or ""} - {""}
    for pattern in rules.promotion_ignore_hostname_filters:
        if any(re.search(pattern, name) for name in names):
            return f"{key} matches PromotionIgnoreHostnameFilters {pattern!r}"
    if not info.log_bin:
        return f"{key} has no binary logs"
    if not info.log_slave_updates:
        return f"{key} has log_slave_updates off: its binary logs lack the replicated transactions"
    delay = info.replication.sql_delay if info.replication else 0
    if delay > 0:
        return f"{key} is delayed by {delay} s"
    master_dc = failed_master_info.data_center if failed_master_info else ""
    if rules.prevent_cross_data_center_master_failover and info.data_center != master_dc:
        return (
            f"{key} is in {info.data_center or 'no data center'}, failed master in "
            f"{master_dc or 'no data center'} and PreventCrossDataCenterMasterFailover is on"
        )
    master_region = failed_master_info.region if failed_master_info else ""
    if rules.prevent_cross_region_master_failover and info.region != master_region:
        return (
            f"{key} is in region {info.region or '(none)'}, failed master in "
            f"{master_region or '(none)'} and PreventCrossRegionMasterFailover is on"
        )
    return None


def _version(info: InstanceSnapshot) -> tuple[int, ...] | None:
    text = info.version.removeprefix("5.5.5-")  # MariaDB's handshake prefix, should it leak in
    parts = text.split("-", 1)[0].split(".")[:2]
    return tuple(int(p) for p in parts) if len(parts) == 2 and all(p.isdigit() for p in parts) else None


def _product(info: InstanceSnapshot) -> str:
    names = {Flavor.MARIADB: "MariaDB ", Flavor.MYSQL: "MySQL "}
    version = _version(info)
    return (names[info.flavor] if info.flavor else "") + (
        ".".join(map(str, version)) if version else info.version
    )


def can_replicate_from(replica: InstanceSnapshot, source: InstanceSnapshot) -> str | None:
    """Why `replica` cannot follow `source`, or None.

    An older server cannot parse a newer one's binary logs; MySQL and MariaDB GTIDs do not mix; a
    replica that re-logs (log_bin + log_slave_updates) in STATEMENT format cannot re-log the row events
    a ROW or MIXED source sends (ER_BINLOG_ROW_INJECTION_AND_STMT_MODE). MIXED replicas can (orchestrator
    rejects them too; that is stricter than the servers are). Equal server ids break replication.
    """
    if replica.key == source.key:
        return None
    if not source.log_bin:
        return f"{source.key} has no binary logs for {replica.key} to follow"
    if replica.server_id is not None and replica.server_id == source.server_id:
        return f"{replica.key} has the same server_id {replica.server_id} as {source.key}"
    if replica.flavor and source.flavor and replica.flavor is not source.flavor:
        return (
            f"{replica.key} runs {replica.flavor.value} and cannot follow {source.flavor.value} {source.key}"
        )
    replica_version, source_version = _version(replica), _version(source)
    if replica_version and source_version and replica_version < source_version:
        return f"{_product(source)} on {source.key} cannot serve {_product(replica)} replica {replica.key}"
    source_format = source.binlog_format.upper()
    relogs = replica.log_bin and replica.log_slave_updates
    if relogs and replica.binlog_format.upper() == "STATEMENT" and source_format in ("MIXED", "ROW"):
        return f"{replica.key} logs STATEMENT and cannot re-log the {source_format} events of {source.key}"
    return None


# -- how up to date a replica is ---------------------------------------------------------------------
# (kept here until gtid.py grows snapshot-level helpers; only the string arithmetic lives there)


def _executed(info: InstanceSnapshot) -> str:
    """What the replica has applied. MariaDB: `gtid_slave_pos`, which counts only replicated
    transactions (`gtid_current_pos` would rank a replica's own errant writes as progress)."""
    if info.flavor is Flavor.MARIADB:
        return info.gtid_slave_pos or info.gtid_current_pos
    return info.gtid_executed or (info.replication.executed_gtid_set if info.replication else "")


def _received(info: InstanceSnapshot) -> str:
    """What the replica will have applied once its relay log is drained."""
    replication = info.replication
    if replication is None:
        return ""
    if info.flavor is Flavor.MARIADB:
        return replication.gtid_io_pos
    try:
        return str(GtidSet.parse(_executed(info)) | GtidSet.parse(replication.retrieved_gtid_set))
    except ValueError:
        return ""


def _coordinates_cmp(a: InstanceSnapshot, b: InstanceSnapshot) -> int:
    """Executed coordinates in the shared master's binlog; 0 when they are not comparable."""
    ra, rb = a.replication, b.replication
    if ra is None or rb is None or ra.master != rb.master or not ra.relay_master_log_file:
        return 0
    left = (ra.relay_master_log_file, ra.exec_master_log_pos)
    right = (rb.relay_master_log_file, rb.exec_master_log_pos)
    return (left > right) - (left < right)


def _gtid_cmp(a: str, b: str, flavor: Flavor | None) -> tuple[bool, int | None]:
    """(True, `gtid_compare`), or (False, 0) when GTIDs cannot tell: mixed flavors, no positions,
    unparsable text."""
    if flavor is None or not (a or b):
        return False, 0
    try:
        return True, gtid_compare(a, b, flavor)
    except ValueError:
        return False, 0


def compare_progress(a: InstanceSnapshot, b: InstanceSnapshot) -> int | None:
    """1: `a` has applied everything `b` has and more; -1: the reverse; 0: level; None: diverged
    (each has transactions the other lacks). GTIDs when both share a flavor, else coordinates."""
    known, cmp = _gtid_cmp(_executed(a), _executed(b), a.flavor if a.flavor is b.flavor else None)
    return cmp if known else _coordinates_cmp(a, b)


def covers(source: InstanceSnapshot, replica: InstanceSnapshot) -> bool:
    """Can `replica` be repointed under `source` without having transactions `source` lacks?"""
    return compare_progress(source, replica) in (0, 1)


def _beats(a: InstanceSnapshot, b: InstanceSnapshot) -> bool:
    """Strictly more up to date: applied more; if level, received more (its relay log will add it);
    if still level, further in the shared master's binlog. Diverged positions compare by volume."""
    cmp = compare_progress(a, b)
    if cmp is None:
        flavor = a.flavor or Flavor.MYSQL
        try:
            return more_up_to_date(_executed(a), _executed(b), flavor)
        except ValueError:
            return False
    if cmp != 0:
        return cmp == 1
    _, received = _gtid_cmp(_received(a), _received(b), a.flavor if a.flavor is b.flavor else None)
    if received:  # None (diverged relay logs) and 0 tell nothing
        return received == 1
    return _coordinates_cmp(a, b) == 1


def progress_rank(infos: list[InstanceSnapshot]) -> dict[InstanceKey, int]:
    """0 for the most up to date, higher further behind; level replicas share a rank. A round robin
    of `_beats` (rank = wins of the best minus own wins) stays a total, deterministic order even when
    positions have diverged and the pairwise relation stops being transitive."""
    wins = {i.key: sum(_beats(i, other) for other in infos) for i in infos}
    best = max(wins.values(), default=0)
    return {key: best - n for key, n in wins.items()}


# -- choosing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One way to end with `successor` as master (through `intermediate` if set) and its cost."""

    successor: InstanceState
    intermediate: InstanceState | None
    keep: tuple[InstanceKey, ...]
    lost: tuple[ReplicaReason, ...]
    downgrade: str | None
    score: tuple[object, ...]


def _downgrade(successor: InstanceSnapshot, followers: list[InstanceSnapshot]) -> str | None:
    """ROW replication keeps replicas identical even under non-deterministic statements; a STATEMENT or
    MIXED master above ROW servers takes that guarantee away from all of them."""
    mine = _FORMAT_RANK.get(successor.binlog_format.upper())
    theirs = [f for f in (s.binlog_format.upper() for s in followers) if f in _FORMAT_RANK]
    if mine is None or not theirs:
        return None
    best = max(theirs, key=_FORMAT_RANK.__getitem__)
    if _FORMAT_RANK[best] <= mine:
        return None
    return f"{successor.key} logs {successor.binlog_format.upper()} and would downgrade {best} replicas to it"


class _Chooser:
    """Scores every (successor, intermediate?) option. The score, lowest best, says what matters most:

    1. replicas lost (a lost replica is lost data or lost capacity; this is also how version mixes are
       decided: promote the version that keeps the most replicas);
    2. no RBR→SBR downgrade; 3. promotion rule; 4. the failed master's data center, 5. region;
    6. not downtimed; 7. one step rather than two (faster); 8. most up-to-date data, 9. successor;
    10. older major version (it can serve more servers); 11. address (determinism).
    """

    def __init__(
        self, view: ClusterView, failed_master: InstanceKey, rules: CandidateRules, now: datetime
    ) -> None:
        failed = view.get(failed_master)
        self.failed_info = failed.info if failed is not None else None
        self.rules, self.now = rules, now
        self.replicas = view.replicas_of(failed_master)
        self.by_key = {s.key: s for s in self.replicas}
        self.blocked = {s.key: why_not_promotable(s, self.failed_info, rules, now) for s in self.replicas}
        self.valid = [s for s in self.replicas if s.is_valid(now, rules.stale_after)]
        self.position = progress_rank([s.info for s in self.valid])
        self._valid_ids = {id(s) for s in self.valid}
        self._cmps: dict[tuple[int, int], int | None] = {}
        self._follows: dict[tuple[int, int], str | None] = {}

    def _cmp(self, a: InstanceSnapshot, b: InstanceSnapshot) -> int | None:
        """`compare_progress`, memoised: options compare the same pairs many times over."""
        pair = (id(a), id(b))  # snapshots live as long as the chooser; pydantic hashing is slow
        if pair not in self._cmps:
            self._cmps[pair] = cmp = compare_progress(a, b)
            self._cmps[(id(b), id(a))] = None if cmp is None else -cmp
        return self._cmps[pair]

    def _follow(self, replica: InstanceSnapshot, source: InstanceSnapshot) -> str | None:
        pair = (id(replica), id(source))
        if pair not in self._follows:
            self._follows[pair] = can_replicate_from(replica, source)
        return self._follows[pair]

    def _covers(self, source: InstanceSnapshot, replica: InstanceSnapshot) -> bool:
        return self._cmp(source, replica) in (0, 1)

    def options(self) -> list[_Option]:
        """All options worth scoring, best first. An intermediate must be strictly ahead of the
        successor, hold everything it applied in its binlogs (log_bin + log_slave_updates), and be
        followable by it. Only successors behind someone need one, and of the fitting intermediates
        only those no other fitting one covers (a covered one can only save fewer replicas)."""
        out = []
        for successor in self.valid:
            if self.blocked[successor.key] is not None:
                continue
            out.append(self._option(successor, None))
            target = successor.info
            if all(self._covers(target, other.info) for other in self.valid):
                continue
            fitting = [
                mid.info
                for mid in self.valid
                if mid.info.log_bin
                and mid.info.log_slave_updates
                and self._cmp(mid.info, target) == 1
                and self._follow(target, mid.info) is None
            ]
            # level intermediates cover the same replicas: keep one, preferably one that can follow
            fitting.sort(key=lambda m: (self._follow(m, target) is not None, m.key.host, m.key.port))
            chosen: list[InstanceSnapshot] = []
            for mid in fitting:
                if not any(self._cmp(o, mid) == 1 for o in fitting) and all(
                    self._cmp(c, mid) != 0 for c in chosen
                ):
                    chosen.append(mid)
            out.extend(self._option(successor, self.by_key[mid.key]) for mid in chosen)
        return sorted(out, key=lambda o: o.score)

    def _lost_reason(self, replica: InstanceState, successor: InstanceState, data: InstanceSnapshot) -> str:
        if id(replica) not in self._valid_ids:
            return f"{self.blocked[replica.key]}; it cannot be repointed now"
        why = self._follow(replica.info, successor.info)
        if why is None and not self._covers(data, replica.info):
            why = f"{replica.key} has transactions {successor.key} will not have"
        return why or ""

    def _option(self, successor: InstanceState, intermediate: InstanceState | None) -> _Option:
        data = (intermediate or successor).info
        keep, lost = [], []
        for replica in self.replicas:
            if replica.key == successor.key:
                continue
            why = self._lost_reason(replica, successor, data)
            if why:
                lost.append(ReplicaReason(key=replica.key, reason=why))
            else:
                keep.append(replica.key)
        followers = [self.by_key[k].info for k in keep]
        if self.failed_info is not None:
            followers.append(self.failed_info)  # the format the cluster ran with
        downgrade = _downgrade(successor.info, followers)
        master_dc = self.failed_info.data_center if self.failed_info else ""
        master_region = self.failed_info.region if self.failed_info else ""
        score = (
            len(lost),
            downgrade is not None,
            _RULE_RANK[effective_rule(successor, self.rules, self.now)],
            bool(master_dc) and successor.info.data_center != master_dc,
            bool(master_region) and successor.info.region != master_region,
            successor.downtimed,
            intermediate is not None,
            self.position[data.key],
            self.position[successor.key],
            _version(successor.info) or (),
            (successor.key.host, successor.key.port),
        )
        return _Option(successor, intermediate, tuple(keep), tuple(lost), downgrade, score)

    def why_worse(self, loser: _Option, winner: _Option) -> str:
        """The first score component `loser` is worse on, as a sentence for the audit."""
        lk, wk = loser.successor.key, winner.successor.key
        rule = effective_rule(loser.successor, self.rules, self.now)
        win_rule = effective_rule(winner.successor, self.rules, self.now)
        failed_dc = self.failed_info.data_center if self.failed_info else ""
        texts = [  # cheap enough to build eagerly
            (
                f"promoting {lk} would lose {_replicas(len(loser.lost))} "
                f"({_first_new(loser.lost, winner.lost)}); promoting {wk} loses {len(winner.lost)}"
            ),
            loser.downgrade or "",
            f"{lk} has promotion rule {rule}, {wk} has {win_rule}",
            (
                f"{lk} is in {loser.successor.info.data_center or 'no data center'}, "
                f"{wk} shares the failed master's {failed_dc}"
            ),
            (
                f"{lk} is in region {loser.successor.info.region or '(none)'}, "
                f"{wk} shares the failed master's region"
            ),
            f"{lk} is downtimed",
            f"{lk} is less up to date than {wk} and would need a two-step promotion",
            f"{lk} is less up to date than {wk}",
            f"{lk} is less up to date than {wk}",
            (f"{lk} runs {_product(loser.successor.info)}, {wk} the older {_product(winner.successor.info)}"),
        ]
        for i, text in enumerate(texts):
            if loser.score[i] != winner.score[i]:
                return text
        return f"{lk} is as suitable as {wk}, which wins the tie by address"


def _replicas(n: int) -> str:
    return f"{n} replica" if n == 1 else f"{n} replicas"


def _first_new(lost: tuple[ReplicaReason, ...], other: tuple[ReplicaReason, ...]) -> str:
    """The first reason `lost` has that `other` does not share: what makes the difference."""
    others = {r.key for r in other}
    return next((r.reason for r in lost if r.key not in others), lost[0].reason if lost else "")


def _lag_guards(data: InstanceState, rules: CandidateRules) -> str | None:
    """The lag guards look at the replica whose data the new master ends up with (the intermediate in
    a two-step promotion): promoting it loses whatever it had not yet received or applied."""
    info, minutes = data.info, rules.fail_master_promotion_on_lag_minutes
    replication = info.replication
    lag = info.replication_lag_seconds
    if lag is None and replication is not None:
        lag = replication.seconds_behind_master
    if minutes > 0 and lag is not None and lag >= minutes * 60:
        return f"{data.key} lags {lag / 60:.1f} min, at or over FailMasterPromotionOnLagMinutes={minutes:g}"
    if (
        rules.fail_master_promotion_if_sql_thread_not_up_to_date
        and replication
        and not replication.relay_log_applied
    ):
        return (
            f"{data.key} has not applied its relay log (read {replication.read_master_log_file}:"
            f"{replication.read_master_log_pos}, executed {replication.relay_master_log_file}:"
            f"{replication.exec_master_log_pos}) and FailMasterPromotionIfSQLThreadNotUpToDate is on"
        )
    return None


def choose_candidate(
    view: ClusterView, failed_master: InstanceKey, rules: CandidateRules, now: datetime
) -> Plan:
    """Plan the replacement of `failed_master` among its direct replicas in `view`.

    Prefers the plan that loses the fewest replicas, then the best-fitting successor (see `_Chooser`).
    When the most up-to-date replica cannot or should not stay master (must_not, delayed, no
    log_slave_updates, worse rule or place), the plan has two steps so its transactions survive.
    The plan fails (ok=False, with the reason) when nobody may be promoted or a lag guard trips.
    `wait_for_relay_log_apply` is set whenever DelayMasterPromotionIfSQLThreadNotUpToDate is on: the
    snapshot may predate the last events, and waiting for an already drained relay log costs nothing.
    """
    chooser = _Chooser(view, failed_master, rules, now)

    def failed(reason: str, passed: dict[InstanceKey, str]) -> Plan:
        return Plan(
            failed_master=failed_master,
            cluster=view.name,
            ok=False,
            reason=reason,
            passed_over=tuple(ReplicaReason(key=k, reason=v) for k, v in sorted(passed.items())),
        )

    blocked = {k: v for k, v in chooser.blocked.items() if v is not None}
    if not chooser.replicas:
        return failed(f"{failed_master} has no replicas", {})
    if not chooser.valid:
        return failed(f"no reachable replicas of {failed_master}", blocked)
    options = chooser.options()
    if not options:
        if all(effective_rule(s, rules, now) is PromotionRule.MUST_NOT for s in chooser.valid):
            return failed("all reachable replicas are must_not", blocked)
        return failed("no replica can be promoted: " + "; ".join(blocked.values()), blocked)
    best = options[0]
    best_of: dict[InstanceKey, _Option] = {}
    for option in options:  # sorted: the first option per successor is its best
        best_of.setdefault(option.successor.key, option)
    passed = {
        s.key: blocked.get(s.key) or chooser.why_worse(best_of[s.key], best)
        for s in chooser.replicas
        if s.key != best.successor.key
    }
    data = best.intermediate or best.successor
    guard = _lag_guards(data, rules)
    if guard is not None:
        return failed(guard, {**passed, best.successor.key: f"chosen, but the promotion is refused: {guard}"})
    if best.intermediate is not None:
        mid = best.intermediate.key
        passed[mid] += f"; it serves {best.successor.key} as the two-step intermediate"
    return Plan(
        failed_master=failed_master,
        cluster=view.name,
        ok=True,
        intermediate=best.intermediate.key if best.intermediate else None,
        successor=best.successor.key,
        replicas_to_repoint=tuple(sorted(best.keep)),
        lost=best.lost,
        passed_over=tuple(ReplicaReason(key=k, reason=v) for k, v in sorted(passed.items())),
        wait_for_relay_log_apply=rules.delay_master_promotion_if_sql_thread_not_up_to_date,
    )
