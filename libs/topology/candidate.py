"""Who replaces a dead master: a pure choice over a frozen `ClusterView`.

The goal, in order: lose as few replicas (and so as few transactions) as possible, never promote a
server that cannot stay master, then honour preferences (promotion rule, format, data center). Data
comes first because a replica that is ahead of the new master holds transactions the cluster would
silently drop; that is why the replica holding the most may serve as a two-step *intermediate* when it
is not fit to stay master itself: the successor catches up from its binary logs, so nothing is lost.

"Ahead" is about what a replica *holds* (`holdings.py`): what it applied plus what it received and has
yet to apply, from its upstream only — errant transactions never count as progress. Broken replicas
(SQL thread error, IO error other than losing the dead master) are never candidates.

Every replica that is not chosen gets a sentence saying why, for the audit and the API.
No I/O and no clock reads: `now` is passed in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from libs.models import Flavor, InstanceKey, InstanceSnapshot, PromotionRule
from libs.topology.context import is_connect_error
from libs.topology.errant import ErrantGtid
from libs.topology.holdings import (
    Coordinates,
    Holding,
    ahead_on_applied,
    compare_applied,
    compare_held,
    holding,
    holds,
    judged_errant,
    rank,
    sql_error,
)
from libs.topology.plan import CandidateRules, DrainState, Plan, ReplicaReason
from libs.topology.view import ClusterView, InstanceState

# Promotion rules in orchestrator's order of preference (candidate choice, intermediate relocation and
# the semi-sync replica order share it).
RULE_RANK = {
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


def why_broken(info: InstanceSnapshot) -> str | None:
    """Why this replica's replication is broken, or None: its SQL thread stopped with an error (it
    cannot apply what it received), or its IO thread failed for another reason than losing its master
    (`is_connect_error`: refused, unknown host, lost connection — what a dead master causes)."""
    replication = info.replication
    if replication is None:
        return None
    error = sql_error(info)
    if error is not None:
        return f"{info.key} has a broken SQL thread (error {error}): it cannot apply what it received"
    if (replication.last_io_errno or replication.last_io_error) and not is_connect_error(replication):
        text = replication.last_io_error or "no message"
        return f"{info.key} has a broken IO thread (error {replication.last_io_errno}: {text})"
    return None


def why_not_promotable(
    state: InstanceState,
    failed_master_info: InstanceSnapshot | None,
    rules: CandidateRules,
    now: datetime,
    *,
    errant: str | None = None,
) -> str | None:
    """Why this replica can never be the *final* master, or None if it may be.

    - unreachable or stale: we cannot act on it, nor trust what we know of it;
    - broken replication (`why_broken`): a replica that cannot apply, or whose IO thread failed for
      another reason than the master's death, may be missing or misapplying anything;
    - `must_not`, or a host matching PromotionIgnoreHostnameFilters: the operator said so;
    - no binary logs: no replica could follow it;
    - `log_slave_updates` off: its binary logs lack what it replicated, so replicas behind it cannot
      catch up from it (GTID auto-positioning would ask for transactions its binlogs never had);
    - SQL_Delay > 0: it is hours behind by design; promoting it silently drops that much data;
    - other data center / region while the Prevent… option is on: clients and latency budgets are
      built around the master's location;
    - errant GTIDs while BatonPromoteReplicasWithErrantGTID is `never` (`errant`: the set if already
      known, else judged against the failed master alone).
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
    broken = why_broken(info)
    if broken is not None:
        return broken
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
    if rules.promote_errant == "never":
        if errant is None and failed_master_info is not None:
            errant = judged_errant(info, failed_master_info, (failed_master_info,))
        if errant:
            return _errant_refused(key, errant)
    return None


def _errant_refused(key: InstanceKey, errant: str) -> str:
    return f"{key} has errant GTIDs {errant} and BatonPromoteReplicasWithErrantGTID is never"


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


def can_replicate_from(
    replica: InstanceSnapshot, source: InstanceSnapshot, *, verify_filters: bool = False
) -> str | None:
    """Why `replica` cannot follow `source`, or None.

    An older server cannot parse a newer one's binary logs; MySQL and MariaDB GTIDs do not mix; a
    replica that re-logs (log_bin + log_slave_updates) in STATEMENT format cannot re-log the row events
    a ROW or MIXED source sends (ER_BINLOG_ROW_INJECTION_AND_STMT_MODE). MIXED replicas can (orchestrator
    rejects them too; that is stricter than the servers are). Equal server ids break replication.
    `verify_filters` (VerifyReplicationFilters, orchestrator's rule): a source with replication filters
    cannot serve a replica without any (the source lacks data the replica expects).
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
    if verify_filters and _filters(source) and not _filters(replica):
        return (
            f"{source.key} has replication filters ({_filters(source)}) and {replica.key} has none "
            "(VerifyReplicationFilters)"
        )
    return None


def _filters(info: InstanceSnapshot) -> str:
    return info.replication.replication_filters if info.replication else ""


# -- how up to date a replica is (see holdings.py) -----------------------------------------------------


def compare_progress(a: InstanceSnapshot, b: InstanceSnapshot) -> int | None:
    """1: `a` has applied everything `b` has and more; -1: the reverse; 0: level; None: diverged
    (each has transactions the other lacks). GTIDs when both share a flavor, else coordinates."""
    return compare_applied(holding(a), holding(b))


def covers(source: InstanceSnapshot, replica: InstanceSnapshot) -> bool:
    """Can `replica` be repointed under `source` without having transactions `source` will lack? What
    `source` holds (applied + received) against what `replica` may have applied by then."""
    return holds(holding(source), holding(replica))


def progress_rank(infos: list[InstanceSnapshot]) -> dict[InstanceKey, int]:
    """0 for the replicas holding the most, higher further behind; level replicas share a rank."""
    return rank([holding(i) for i in infos])


# -- choosing -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """One way to end with `successor` as master (through `intermediate` if set) and its cost."""

    successor: InstanceState
    intermediate: InstanceState | None
    keep: tuple[InstanceKey, ...]
    lost: tuple[ReplicaReason, ...]
    downgrade: str | None
    tainted_by: InstanceKey | None  # the successor or intermediate whose errant GTIDs it would carry
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


def _chain(view: ClusterView, failed_master: InstanceKey) -> tuple[InstanceSnapshot, ...]:
    """The failed master and the servers above it: the upstream whose transactions are not errant."""
    chain: list[InstanceSnapshot] = []
    seen: set[InstanceKey] = set()
    state = view.get(failed_master)
    while state is not None and state.key not in seen:
        seen.add(state.key)
        chain.append(state.info)
        state = view.get(state.master_key) if state.master_key is not None else None
    return tuple(chain)


def _where(gtid: str | None, at: Coordinates | None) -> str:
    if gtid:
        return gtid
    return f"{at[0]}:{at[1]}" if at else "nothing known"


class _Chooser:
    """Scores every (successor, intermediate?) option. The score, lowest best, says what matters most:

    1. replicas lost (a lost replica is lost data or lost capacity; this is also how version mixes are
       decided: promote the version that keeps the most replicas);
    2. with BatonPromoteReplicasWithErrantGTID = last-resort: no errant GTIDs on the successor or the
       intermediate (which would hand them to it);
    3. no RBR→SBR downgrade; 4. promotion rule; 5. the failed master's data center, 6. region;
    7. not downtimed; 8. one step rather than two (faster); 9. most data held (`holdings.rank`: errant
    transactions never count, a clean replica ranks ahead of an errant one holding the same), 10. by the
    successor; 11. older major version (it can serve more servers); 12. address (determinism).
    """

    def __init__(
        self,
        view: ClusterView,
        failed_master: InstanceKey,
        rules: CandidateRules,
        now: datetime,
        tried: Mapping[InstanceKey, str],
    ) -> None:
        failed = view.get(failed_master)
        self.failed_info = failed.info if failed is not None else None
        self.rules, self.now = rules, now
        self.replicas = view.replicas_of(failed_master)
        self.by_key = {s.key: s for s in self.replicas}
        chain = _chain(view, failed_master)
        self.holding = {s.key: holding(s.info, self.failed_info, chain) for s in self.replicas}
        self.valid = [s for s in self.replicas if s.is_valid(now, rules.stale_after)]
        self._valid_keys = {s.key for s in self.valid}
        self.blocked: dict[InstanceKey, str | None] = {}
        self.no_intermediate: dict[InstanceKey, str | None] = {}
        for s in self.replicas:
            errant = self.holding[s.key].errant
            failed_before = s.key in tried and s.key in self._valid_keys
            why = why_not_promotable(s, self.failed_info, rules, now, errant=errant)
            if failed_before:
                why = f"{s.key} failed as a candidate in this recovery: {tried[s.key]}"
            self.blocked[s.key] = why
            self.no_intermediate[s.key] = why if failed_before else self._why_not_intermediate(s, errant)
        self.position = rank([self.holding[s.key] for s in self.valid])
        self._cmps: dict[tuple[InstanceKey, InstanceKey], int | None] = {}
        self._follows: dict[tuple[int, int], str | None] = {}

    def _why_not_intermediate(self, state: InstanceState, errant: str) -> str | None:
        """An intermediate serves the successor from its binary logs and is never made writable, so a
        must_not, delayed or other-DC replica may serve. Not one without binlogs of what it replicated,
        a broken one, nor one with errant GTIDs under `never` (its binlogs would hand them over)."""
        info = state.info
        if not info.log_bin:
            return f"{state.key} has no binary logs"
        if not info.log_slave_updates:
            return f"{state.key} has log_slave_updates off"
        broken = why_broken(info)
        if broken is not None:
            return broken
        if errant and self.rules.promote_errant == "never":
            return _errant_refused(state.key, errant)
        return None

    def _cmp(self, a: InstanceKey, b: InstanceKey) -> int | None:
        """`compare_held`, memoised: options compare the same pairs many times over."""
        if (a, b) not in self._cmps:
            self._cmps[(a, b)] = cmp = compare_held(self.holding[a], self.holding[b])
            self._cmps[(b, a)] = None if cmp is None else -cmp
        return self._cmps[(a, b)]

    def _follow(self, replica: InstanceSnapshot, source: InstanceSnapshot) -> str | None:
        pair = (id(replica), id(source))  # snapshots live as long as the chooser; pydantic hashing is slow
        if pair not in self._follows:
            self._follows[pair] = can_replicate_from(
                replica, source, verify_filters=self.rules.verify_replication_filters
            )
        return self._follows[pair]

    def options(self) -> list[_Option]:
        """All options worth scoring, best first. An intermediate must hold strictly more than the
        successor, hold everything it applied in its binlogs (log_bin + log_slave_updates), not be broken,
        and be followable by it. Only successors behind someone need one, and of the fitting intermediates
        only those no other fitting one is ahead of (a covered one can only save fewer replicas)."""
        out = []
        for successor in self.valid:
            if self.blocked[successor.key] is not None:
                continue
            out.append(self._option(successor, None))
            target = successor.key
            if all(self._cmp(target, other.key) in (0, 1) for other in self.valid):
                continue
            fitting = [
                mid.key
                for mid in self.valid
                if self.no_intermediate[mid.key] is None
                and self._cmp(mid.key, target) == 1
                and self._follow(successor.info, mid.info) is None
            ]
            # level intermediates cover the same replicas: keep one, preferably clean and followable
            fitting.sort(
                key=lambda m: (
                    bool(self.holding[m].errant),
                    self._follow(self.by_key[m].info, successor.info) is not None,
                    m.host,
                    m.port,
                )
            )
            chosen: list[InstanceKey] = []
            for mid in fitting:
                if not any(self._cmp(o, mid) == 1 for o in fitting) and all(
                    self._cmp(c, mid) != 0 for c in chosen
                ):
                    chosen.append(mid)
            out.extend(self._option(successor, self.by_key[mid]) for mid in chosen)
        return sorted(out, key=lambda o: o.score)

    def _lost_reason(self, replica: InstanceState, successor: InstanceState, data: Holding) -> str:
        if replica.key not in self._valid_keys:
            return f"{self.blocked[replica.key]}; it cannot be repointed now"
        why = self._follow(replica.info, successor.info)
        mine = self.holding[replica.key]
        if why is None and not holds(data, mine):
            if holds(data, mine, applied_only=True):
                why = f"{replica.key} is applying received transactions {successor.key} will not have"
            else:
                why = f"{replica.key} has transactions {successor.key} will not have"
            if self.no_intermediate[replica.key] is not None:
                why += f"; it cannot serve as the two-step intermediate: {self.no_intermediate[replica.key]}"
        return why or ""

    def _option(self, successor: InstanceState, intermediate: InstanceState | None) -> _Option:
        data = self.holding[(intermediate or successor).key]
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
        tainted_by = next(
            (s.key for s in (successor, intermediate) if s is not None and self.holding[s.key].errant), None
        )
        master_dc = self.failed_info.data_center if self.failed_info else ""
        master_region = self.failed_info.region if self.failed_info else ""
        score = (
            len(lost),
            self.rules.promote_errant == "last-resort" and tainted_by is not None,
            downgrade is not None,
            RULE_RANK[effective_rule(successor, self.rules, self.now)],
            bool(master_dc) and successor.info.data_center != master_dc,
            bool(master_region) and successor.info.region != master_region,
            successor.downtimed,
            intermediate is not None,
            self.position[data.key],
            self.position[successor.key],
            _version(successor.info) or (),
            (successor.key.host, successor.key.port),
        )
        return _Option(successor, intermediate, tuple(keep), tuple(lost), downgrade, tainted_by, score)

    def _behind(self, loser: InstanceKey, winner: InstanceKey) -> str:
        """Why `loser`'s data ranks behind `winner`'s."""
        a, b = self.holding[loser], self.holding[winner]
        if self._cmp(loser, winner) == 0 and a.errant and not b.errant:
            return (
                f"{loser} holds the same upstream transactions as {winner}; its errant GTIDs {a.errant} "
                "do not count as progress"
            )
        text = f"{loser} is less up to date than {winner}"
        if self._cmp(winner, loser) == 1 and not ahead_on_applied(b, a):
            text += f" (counting what {winner} received but has not applied yet)"
        return text

    def why_worse(self, loser: _Option, winner: _Option) -> str:
        """The first score component `loser` is worse on, as a sentence for the audit."""
        lk, wk = loser.successor.key, winner.successor.key
        rule = effective_rule(loser.successor, self.rules, self.now)
        win_rule = effective_rule(winner.successor, self.rules, self.now)
        failed_dc = self.failed_info.data_center if self.failed_info else ""
        loser_data = (loser.intermediate or loser.successor).key
        winner_data = (winner.intermediate or winner.successor).key
        texts = [  # cheap enough to build eagerly
            (
                f"promoting {lk} would lose {_replicas(len(loser.lost))} "
                f"({_first_new(loser.lost, winner.lost)}); promoting {wk} loses {len(winner.lost)}"
            ),
            self._tainted(loser),
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
            f"{self._behind(lk, wk)}, and would need a two-step promotion",
            self._behind(loser_data, winner_data) if loser_data != winner_data else "",
            self._behind(lk, wk),
            (f"{lk} runs {_product(loser.successor.info)}, {wk} the older {_product(winner.successor.info)}"),
        ]
        for i, text in enumerate(texts):
            if loser.score[i] != winner.score[i]:
                return text
        return f"{lk} is as suitable as {wk}, which wins the tie by address"

    def _tainted(self, option: _Option) -> str:
        if option.tainted_by is None:
            return ""
        errant = self.holding[option.tainted_by].errant
        who = (
            f"{option.successor.key} has"
            if option.tainted_by == option.successor.key
            else (f"{option.successor.key} would catch up through {option.tainted_by}, which has")
        )
        return f"{who} errant GTIDs {errant} and BatonPromoteReplicasWithErrantGTID is last-resort"

    def undrained(self, drain: DrainState) -> tuple[ReplicaReason, ...]:
        """The valid replicas ranked by what they received but had not applied."""
        out = []
        for s in self.valid:
            h = self.holding[s.key]
            if h.drained or h.stuck:
                continue
            where = f"applied {_where(h.applied, h.applied_at)}, received {_where(h.held, h.held_at)}"
            if drain is DrainState.DONE:
                text = f"{s.key} could not apply its relay log in time ({where}): ranked by what it received"
            else:
                text = f"{s.key} has not applied all it received yet ({where}): ranked by what it received"
            out.append(ReplicaReason(key=s.key, reason=text))
        return tuple(out)

    def errant(self) -> tuple[ErrantGtid, ...]:
        return tuple(
            ErrantGtid(replica=s.key, gtids=self.holding[s.key].errant)
            for s in self.replicas
            if self.holding[s.key].errant
        )


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
    view: ClusterView,
    failed_master: InstanceKey,
    rules: CandidateRules,
    now: datetime,
    *,
    drain: DrainState = DrainState.PENDING,
    tried: Mapping[InstanceKey, str] | None = None,
) -> Plan:
    """Plan the replacement of `failed_master` among its direct replicas in `view`.

    Prefers the plan that loses the fewest replicas, then the best-fitting successor (see `_Chooser`).
    When the replica holding the most cannot or should not stay master (must_not, delayed, no
    log_slave_updates, worse rule or place), the plan has two steps so its transactions survive.
    The plan fails (ok=False, with the reason) when nobody may be promoted or a lag guard trips.
    `wait_for_relay_log_apply` is set whenever DelayMasterPromotionIfSQLThreadNotUpToDate is on: the
    snapshot may predate the last events, and waiting for an already drained relay log costs nothing.

    `drain` says whether the IO threads were stopped and the SQL threads given their time before `view`
    was probed (`DrainState`); replicas are ranked by what they hold either way, and those with relay log
    left are listed in `undrained`. `tried` are candidates that already failed in this recovery, with
    why: none is successor or intermediate again (`fallback_plan`).
    """
    tried = dict(tried or {})
    chooser = _Chooser(view, failed_master, rules, now, tried)
    audit = {
        "drain": drain,
        "undrained": chooser.undrained(drain),
        "errant": chooser.errant(),
        "tried": tuple(ReplicaReason(key=k, reason=v) for k, v in sorted(tried.items())),
    }

    def failed(reason: str, passed: dict[InstanceKey, str]) -> Plan:
        return Plan(
            failed_master=failed_master,
            cluster=view.name,
            ok=False,
            reason=reason,
            passed_over=tuple(ReplicaReason(key=k, reason=v) for k, v in sorted(passed.items())),
            **audit,
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
        if not chooser.holding[mid].drained:
            replication = best.intermediate.info.replication
            delay = replication.sql_delay if replication else 0
            lift = f" (its SQL_Delay of {delay} s lifted for that)" if delay else ""
            passed[mid] += f" once it has applied its relay log{lift}"
    keep = tuple(sorted(best.keep))
    return Plan(
        failed_master=failed_master,
        cluster=view.name,
        ok=True,
        intermediate=best.intermediate.key if best.intermediate else None,
        successor=best.successor.key,
        replicas_to_repoint=keep,
        postponed=postponed_replicas(view, keep, rules, best.successor.key, best.intermediate),
        lost=best.lost,
        passed_over=tuple(ReplicaReason(key=k, reason=v) for k, v in sorted(passed.items())),
        wait_for_relay_log_apply=rules.delay_master_promotion_if_sql_thread_not_up_to_date,
        **audit,
    )


def postponed_replicas(
    view: ClusterView,
    keep: tuple[InstanceKey, ...],
    rules: CandidateRules,
    successor: InstanceKey,
    intermediate: InstanceState | None,
) -> tuple[InstanceKey, ...]:
    """PostponeReplicaRecoveryOnLagMinutes (orchestrator's rule): the replicas to repoint whose SQL_Delay
    is above that many minutes are moved after the promotion, so that they do not hold it back."""
    limit_s = rules.postpone_replica_recovery_on_lag_minutes * 60
    if limit_s <= 0:
        return ()
    out = []
    for key in keep:
        state = view.get(key)
        replication = state.info.replication if state is not None else None
        special = key == successor or (intermediate is not None and key == intermediate.key)
        if replication is not None and replication.sql_delay > limit_s and not special:
            out.append(key)
    return tuple(out)


def fallback_plan(
    view: ClusterView,
    plan: Plan,
    failed: Mapping[InstanceKey, str],
    rules: CandidateRules,
    now: datetime,
    *,
    drain: DrainState | None = None,
) -> Plan:
    """The next plan once candidates of `plan` failed (`failed`: key → why), for the executor to fall
    back on before the point of no return (before `promote` made the successor writable, and before any
    replica was repointed under a candidate that then failed — `view` must show the replicas still under
    the failed master).

    Every candidate that failed so far (`plan.tried` and `failed`) is excluded as successor and as
    intermediate and named in the new plan's `tried`; it stays a replica to repoint when what it holds
    allows, else it is lost with the reason. `view` should be fresh; `drain` defaults to the plan's.
    """
    tried = {r.key: r.reason for r in plan.tried}
    tried.update(failed)
    return choose_candidate(
        view, plan.failed_master, rules, now, drain=plan.drain if drain is None else drain, tried=tried
    )
