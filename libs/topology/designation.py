"""A designated candidate (`recover` with a destination): the operator's choice wins, or the plan says
why it cannot. Pure.

For the choice the designated replica is registered `must` and every other replica of the failed master
`must_not` (it may still serve as a two-step intermediate), on top of the rules in force; those
registrations expire a year on (`designated_rule_expiry`: they only live in the plan's rules, the
expiry just has to outlast the choice on every calendar day). The plan made under them is accepted only
when it promotes the designated replica (`designated_verdict`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from libs.models import InstanceKey, PromotionRule
from libs.topology.plan import CandidateRules, Plan, RegisteredRule

DESIGNATED_RULE_TTL = timedelta(days=366)  # at least a calendar year, whatever the date


def designated_rule_expiry(now: datetime) -> datetime:
    """When the rules a designated candidate registers for its plan expire. Plain timedelta arithmetic:
    `now.replace(year=now.year + 1)` raised on 29 February."""
    return now + DESIGNATED_RULE_TTL


def designated_refusal(
    failed: InstanceKey, cluster: str, wanted: InstanceKey, replicas: Iterable[InstanceKey]
) -> Plan | None:
    """The refused plan when `wanted` is not one of the failed master's `replicas`; None when it is."""
    if wanted in set(replicas):
        return None
    return Plan(
        failed_master=failed,
        cluster=cluster,
        ok=False,
        reason=f"designated {wanted} is not a replica of {failed}",
    )


def designated_rules(
    rules: CandidateRules, replicas: Iterable[InstanceKey], wanted: InstanceKey, now: datetime
) -> CandidateRules:
    """`rules` with every replica of the failed master registered must_not and `wanted` must (until
    `designated_rule_expiry(now)`); other registrations stand."""
    until = designated_rule_expiry(now)
    registered = dict(rules.registered)
    registered.update({k: RegisteredRule(rule=PromotionRule.MUST_NOT, expires_at=until) for k in replicas})
    registered[wanted] = RegisteredRule(rule=PromotionRule.MUST, expires_at=until)
    return rules.model_copy(update={"registered": registered})


def designated_verdict(plan: Plan, wanted: InstanceKey, failed: InstanceKey, cluster: str) -> Plan:
    """`plan` (made under `designated_rules`) when it promotes `wanted`; else the refusal of the failed
    master's replacement saying why `wanted` was passed over (or why there is no plan), keeping the
    plan's audit (passed over, drain, tried)."""
    if plan.ok and plan.successor == wanted:
        return plan
    why = plan.passed_over_reason(wanted) or plan.reason
    return Plan(
        failed_master=failed,
        cluster=cluster,
        ok=False,
        reason=f"designated {wanted} cannot be promoted: {why}",
        passed_over=plan.passed_over,
        drain=plan.drain,
        tried=plan.tried,
    )
