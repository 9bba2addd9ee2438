"""Placeholders become context-quoted variable references; values never enter the command text."""

from __future__ import annotations

import pytest

from libs.hooks import PLACEHOLDERS, HookContext, HookKind, compile_command, environment, render_for_display
from libs.hooks.context import placeholder_values
from libs.hooks.process import Output

V = {"failedHost": "ORC_FAILED_HOST", "failedPort": "ORC_FAILED_PORT"}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("echo {failedHost}", 'echo "${ORC_FAILED_HOST-}"'),
        ("echo {failedHost}:{failedPort}", 'echo "${ORC_FAILED_HOST-}":"${ORC_FAILED_PORT-}"'),
        ("echo '{failedHost}'", "echo ''\"${ORC_FAILED_HOST-}\"''"),
        ("echo 'a {failedHost} b'", "echo 'a '\"${ORC_FAILED_HOST-}\"' b'"),
        ('echo "a {failedHost} b"', 'echo "a ${ORC_FAILED_HOST-} b"'),
        ("echo $'a {failedHost}'", "echo $'a '\"${ORC_FAILED_HOST-}\"$''"),
        ("echo $(id {failedHost})", 'echo $(id "${ORC_FAILED_HOST-}")'),
        ('echo "$(id {failedHost})"', 'echo "$(id "${ORC_FAILED_HOST-}")"'),
        ("echo `id {failedHost}`", 'echo `id "${ORC_FAILED_HOST-}"`'),
        ('echo "it\'s {failedHost}"', 'echo "it\'s ${ORC_FAILED_HOST-}"'),
        ("echo 'say \"{failedHost}\"'", "echo 'say \"'\"${ORC_FAILED_HOST-}\"'\"'"),
        ('echo "\\"{failedHost}\\""', 'echo "\\"${ORC_FAILED_HOST-}\\""'),
        ("echo {unknown} {failedHost", "echo {unknown} {failedHost"),
        ("x # it's {failedHost}\necho {failedHost}", 'x # it\'s {failedHost}\necho "${ORC_FAILED_HOST-}"'),
        ("echo a#{failedHost}", 'echo a#"${ORC_FAILED_HOST-}"'),
        (
            "(cd / && echo {failedHost}) ; echo '{failedHost}'",
            "(cd / && echo \"${ORC_FAILED_HOST-}\") ; echo ''\"${ORC_FAILED_HOST-}\"''",
        ),
    ],
)
def test_compile_command_quotes_by_context(template: str, expected: str) -> None:
    assert compile_command(template, V) == expected


def test_every_placeholder_has_an_orc_variable() -> None:
    assert all(p.env.startswith("ORC_") for p in PLACEHOLDERS.values())
    documented = {
        "failureType", "instanceType", "isMaster", "isCoMaster", "failureDescription", "command",
        "failedHost", "failedPort", "failureCluster", "failureClusterAlias", "failureClusterDomain",
        "countSlaves", "countReplicas", "isDowntimed", "autoMasterRecovery", "autoIntermediateMasterRecovery",
        "orchestratorHost", "recoveryUID", "isSuccessful", "successorHost", "successorPort",
        "successorBinlogCoordinates", "successorAlias", "lostSlaves", "lostReplicas", "countLostReplicas",
        "slaveHosts", "replicaHosts",
    }  # fmt: skip
    assert set(PLACEHOLDERS) == documented


FULL = HookContext(
    failure_type="DeadMaster",
    instance_type="master",
    is_master=True,
    failure_description="Master cannot be reached and none of its replicas is replicating",
    command="force-master-failover",
    failed_host="db-1.dc1.example.com",
    failed_port=3306,
    failure_cluster="db-1.dc1.example.com:3306",
    failure_cluster_alias="orders",
    failure_cluster_domain="orders.example.com",
    count_replicas=3,
    auto_master_recovery=True,
    orchestrator_host="baton-a",
    recovery_uid="r-123",
    successor_host="db-2.dc1.example.com",
    successor_port=3307,
    successor_alias="db2",
    successor_binlog_coordinates="mysql-bin.000003:1234",
    lost_replicas=("db-4:3306", "db-5:3306"),
    replica_hosts=("db-2.dc1.example.com:3307", "db-3:3306", "db-4:3306"),
)


def test_environment_values_use_orchestrator_formats() -> None:
    env = environment(FULL)
    assert env["ORC_FAILURE_TYPE"] == "DeadMaster"
    assert env["ORC_IS_MASTER"] == "true"
    assert env["ORC_IS_CO_MASTER"] == "false"
    assert env["ORC_FAILED_PORT"] == "3306"
    assert env["ORC_COUNT_REPLICAS"] == "3"
    assert env["ORC_AUTO_MASTER_RECOVERY"] == "true"
    assert env["ORC_IS_SUCCESSFUL"] == "true"
    assert env["ORC_SUCCESSOR_HOST"] == "db-2.dc1.example.com"
    assert env["ORC_SUCCESSOR_PORT"] == "3307"
    assert env["ORC_SUCCESSOR_BINLOG_COORDINATES"] == "mysql-bin.000003:1234"
    assert env["ORC_LOST_REPLICAS"] == "db-4:3306,db-5:3306"
    assert env["ORC_COUNT_LOST_REPLICAS"] == "2"
    assert env["ORC_REPLICA_HOSTS"] == "db-2.dc1.example.com:3307,db-3:3306,db-4:3306"
    assert env["ORC_RECOVERY_UID"] == "r-123"
    assert env["ORC_ORCHESTRATOR_HOST"] == "baton-a"
    assert env["ORC_COMMAND"] == "force-master-failover"


def test_successor_variables_only_with_a_successor() -> None:
    env = environment(HookContext(failure_type="DeadMaster"))
    assert env["ORC_IS_SUCCESSFUL"] == "false"
    assert not {k for k in env if k.startswith("ORC_SUCCESSOR_")}


def test_render_for_display_pastes_values_like_orchestrator() -> None:
    text = "Recovered {failureType} on {failureCluster}; promoted {successorHost}:{successorPort} {other}"
    assert render_for_display(text, placeholder_values(FULL)) == (
        "Recovered DeadMaster on db-1.dc1.example.com:3306; promoted db-2.dc1.example.com:3307 {other}"
    )


def test_abort_on_failure_kinds() -> None:
    gating = {kind for kind in HookKind if kind.aborts_on_failure}
    assert gating == {HookKind.ON_FAILURE_DETECTION, HookKind.PRE_FAILOVER, HookKind.PRE_GRACEFUL_TAKEOVER}


def test_output_keeps_head_and_tail() -> None:
    out = Output(10)
    for chunk in (b"abc", b"defgh", b"ijklmnop", b"qrst"):
        out.add(chunk)
    text, truncated = out.text()
    assert truncated
    assert out.total == 20
    assert text == "abcde\n[... 10 bytes omitted ...]\npqrst"
    small = Output(10)
    small.add(b"0123456789")
    assert small.text() == ("0123456789", False)
