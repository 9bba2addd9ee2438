"""orchestrator-client compatibility, proved by Baton's own tests: for each verb of orchestrator's
`orchestrator-client` (openark/orchestrator, resources/bin/orchestrator-client), the request the client
sends (GET, the path and query it builds: `host:port` turned into `host/port`, owner and reason
URL-encoded, cluster verbs given the alias or the instance as is) and the JSON fields its jq filters read,
checked against the real API process with the output the client would print.

`Client` does what the script's `api()` function does: one GET, the body must be JSON; an envelope
with `Code: "ERROR"` is a failure (the client prints `Message` and exits 1); anything else is read by the
verb's filter. The filters below are the script's jq filters written in Python (the script itself is not
in this repository: see docs/api.md for how to try it by hand).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from libs.models import InstanceSnapshot
from libs.sandbox import Sandbox
from tests.integration.api.conftest import ApiProcess, publish_topology


class ClientError(Exception):
    """The client's `fail`/ERROR path: it prints the message and exits 1."""


class Client:
    def __init__(self, api: ApiProcess) -> None:
        self.base = api.api

    def api(self, path: str) -> Any:
        """orchestrator-client's `api()`: curl -s "$leader_api/$path" | jq '.'"""
        resp = httpx.get(f"{self.base}/{path}", timeout=60, follow_redirects=False)
        try:
            body = resp.json()
        except ValueError:
            raise ClientError(f"not JSON from {path}: {resp.status_code}") from None
        if isinstance(body, dict) and "Code" in body and body["Code"] == "ERROR":
            raise ClientError(body["Message"])
        return body


def hostport(key: str) -> str:
    """to_hostport: fqdn:port => fqdn/port."""
    return key.replace(":", "/")


def uri(text: str) -> str:
    """urlencode (jq @uri)."""
    return quote(text, safe="-_.~")


def print_key(doc: dict[str, Any]) -> str:
    return f"{doc['Hostname']}:{doc['Port']}"


def filter_keys(docs: list[dict[str, Any]]) -> list[str]:
    return [print_key(d["Key"]) for d in docs]


def broken(doc: dict[str, Any]) -> bool:
    """filter_broken_replicas."""
    stopped = doc["ReplicationSQLThreadRuning"] is False or doc["ReplicationIOThreadRuning"] is False
    return stopped and (doc["LastSQLError"] != "" or doc["LastIOError"] != "")


@pytest.fixture(scope="module")
def topo(api: ApiProcess, sandbox4: Sandbox) -> Iterator[dict[str, InstanceSnapshot]]:
    snaps = publish_topology(sandbox4, api.nats_url)
    api.wait_for(f"cluster/{sandbox4.key('master')}", lambda r: r.status_code == 200 and len(r.json()) == 4)
    yield dict(zip(sandbox4.names, snaps, strict=True))


def test_read_verbs(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    c = Client(api)
    master, replica = str(topo["master"].key), str(topo["replica1"].key)
    # clusters / clusters-alias: clusters-info, .[].ClusterName / (.ClusterName + "," + .ClusterAlias)
    info = c.api("clusters-info")
    assert [i["ClusterName"] for i in info] == [master]
    assert [f"{i['ClusterName']},{i['ClusterAlias']}" for i in info] == [f"{master},{master}"]
    # topology / topology-tabulated: topology/${alias:-$instance}, .Details
    tree = c.api(f"topology/{replica}")["Details"].splitlines()
    assert len(tree) == 4 and tree[0].startswith(master) and all(t.startswith("+ ") for t in tree[1:])
    assert c.api(f"topology/{master}")["Details"].splitlines() == tree
    rows = c.api(f"topology-tabulated/{replica}")["Details"].splitlines()
    assert len(rows) == 4 and all(r.count("|") == 6 for r in rows) and len({r.index("|") for r in rows}) == 1
    assert [r.split("|")[4] for r in rows] == ["rw", "ro", "ro", "ro"]
    tagged_tree = c.api(f"topology-tags/{replica}")["Details"].splitlines()
    assert [line.rsplit(" [", 1)[0] for line in tagged_tree] == tree and all(
        t.endswith("]") for t in tagged_tree
    )
    # instance / which-master / is-replicating / is-replication-stopped / which-gtid-errant: instance/H/P
    doc = c.api(f"instance/{hostport(replica)}")
    assert print_key(doc["Key"]) == replica and print_key(doc["MasterKey"]) == master
    assert doc["ReplicationSQLThreadState"] == 1 and doc["ReplicationIOThreadState"] == 1  # is-replicating
    assert doc["GtidErrant"] == ""  # which-gtid-errant: .GtidErrant
    mdoc = c.api(f"instance/{hostport(master)}")
    assert not (mdoc["ReplicationSQLThreadState"] == 0 and mdoc["ReplicationIOThreadState"] == 0)
    assert mdoc["ReplicationSQLThreadState"] == -1  # a master: neither replicating nor "stopped"
    # which-replicas / which-broken-replicas: instance-replicas/H/P
    replicas = c.api(f"instance-replicas/{hostport(master)}")
    assert len(filter_keys(replicas)) == 3 and [d for d in replicas if broken(d)] == []
    # which-cluster / which-cluster-alias: cluster-info/X, .ClusterName / .ClusterAlias
    assert c.api(f"cluster-info/{replica}")["ClusterName"] == master
    assert c.api(f"cluster-info/{master}")["ClusterAlias"] == master
    # which-cluster-master: master/X, .ClusterName
    assert c.api(f"master/{master}")["ClusterName"] == master
    # which-cluster-instances: cluster/X; all-clusters-masters: masters; all-instances
    assert len(filter_keys(c.api(f"cluster/{master}"))) == 4
    masters = c.api("masters")
    assert filter_keys(masters) == [master]
    assert len(filter_keys(c.api("all-instances"))) == 4
    # dominant-dc: masters, .[].DataCenter | sort | uniq -c | sort -nr | head -n 1
    assert Counter(m["DataCenter"] for m in masters).most_common(1)[0][1] == 1
    # which-cluster-osc-replicas / -running-replicas: cluster-osc-replicas/X, filter_keys
    # (-running-replicas: only those whose two threads run)
    osc = c.api(f"cluster-osc-replicas/{master}")
    assert len(filter_keys(osc)) == 2  # sandbox4: three first-tier leaves, orchestrator takes two
    running = [
        d for d in osc if d["ReplicationSQLThreadRuning"] is True and d["ReplicationIOThreadRuning"] is True
    ]
    assert filter_keys(running) == filter_keys(osc)
    # search: search?s=<urlencoded>, filter_keys
    assert filter_keys(c.api(f"search?s={uri(replica)}")) == [replica]
    # replication-analysis: .Details[] with .Analysis, .AnalyzedInstanceKey, .ClusterDetails.ClusterName,
    # .StructureAnalysis[0]
    for entry in c.api("replication-analysis")["Details"]:
        assert {"Analysis", "AnalyzedInstanceKey", "ClusterDetails", "StructureAnalysis"} <= set(entry)
        assert entry["ClusterDetails"]["ClusterName"] == master
    # check-global-recoveries: .Details
    assert c.api("check-global-recoveries")["Details"] in ("enabled", "disabled")
    # downtimed: downtimed/${alias:-$instance} = "downtimed/" with neither (served, not redirected)
    assert c.api("downtimed/") == []
    # api -P: any path, the raw response
    assert c.api("clusters") == [master]


def test_instance_commands(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    c = Client(api)
    replica = str(topo["replica2"].key)
    hp = hostport(replica)
    # begin-downtime: begin-downtime/H/P/<owner>/<reason>/<duration>, print_details | print_key
    begun = c.api(f"begin-downtime/{hp}/{uri('ops team')}/{uri('kernel upgrade')}/20m")
    assert print_key(begun["Details"]) == replica
    assert filter_keys(c.api("downtimed/")) == [replica]
    assert print_key(c.api(f"end-downtime/{hp}")["Details"]) == replica
    assert c.api("downtimed/") == []
    # register-candidate: register-candidate/H/P/<rule>
    assert print_key(c.api(f"register-candidate/{hp}/prefer")["Details"]) == replica
    # begin-maintenance: begin-maintenance/H/P/<owner>/<reason>; end-maintenance/H/P
    assert print_key(c.api(f"begin-maintenance/{hp}/{uri('ops')}/{uri('disk swap')}")["Details"]) == replica
    with pytest.raises(ClientError, match=re.escape(f"Cannot begin maintenance for instance: {replica}")):
        c.api(f"begin-maintenance/{hp}/ops/again")
    assert print_key(c.api(f"end-maintenance/{hp}")["Details"]) == replica
    # tag: tag/H/P?tag=<urlencoded>, print_details | print_key
    assert print_key(c.api(f"tag/{hp}?tag={uri('role=backup')}")["Details"]) == replica
    # tags: tags/H/P, .[]; tag-value: tag-value/H/P?tag=, '.'; tagged: tagged/?tag=, print_keys
    assert c.api(f"tags/{hp}") == ["role=backup"]
    assert c.api(f"tag-value/{hp}?tag=role") == "backup"
    assert [print_key(k) for k in c.api(f"tagged/?tag={uri('role=backup')}")] == [replica]
    assert [print_key(k) for k in c.api(f"tagged/{hp}?tag={uri('role=backup')}")] == [replica]  # with -i
    # untag: untag/H/P?tag=<raw>, print_details | print_keys; untag-all: untag-all?tag=<raw>
    assert [print_key(k) for k in c.api(f"untag/{hp}?tag=role")["Details"]] == [replica]
    assert c.api(f"tag/{hp}?tag=dc%3Deast")["Code"] == "OK"
    assert [print_key(k) for k in c.api("untag-all?tag=dc=east")["Details"]] == [replica]
    assert c.api(f"tags/{hp}") == []
    # snapshot-topologies: .Details
    assert c.api("snapshot-topologies")["Details"].startswith("Took ")


def test_errors_are_the_clients_failures(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    c = Client(api)
    master = str(topo["master"].key)
    with pytest.raises(ClientError, match=re.escape("instance 127.0.0.1:1 not found")):
        c.api("instance/127.0.0.1/1")
    with pytest.raises(ClientError, match="comment is mandatory"):
        c.api("ack-all-recoveries?comment=")
    # which-heuristic-cluster-pool-instances: heuristic-cluster-pool-instances/X/<pool>: a clear refusal
    with pytest.raises(ClientError, match="not supported: Baton has no instance pools"):
        c.api(f"heuristic-cluster-pool-instances/{master}/")
    # raft-*: raft-state must contain "Leader" for raft-leader / raft-leader-hostname / raft-elect-leader
    assert c.api("raft-state") == "Candidate"  # no recovery leader runs in this module
    with pytest.raises(ClientError, match="unhealthy"):
        c.api("raft-health")
    with pytest.raises(ClientError, match="not supported"):
        c.api("raft-yield-hint/dc2")
    with pytest.raises(ClientError, match="never Pseudo-GTID"):
        c.api("last-pseudo-gtid/127.0.0.1/1")
    with pytest.raises(ClientError, match="no virtual"):
        c.api(f"register-hostname-unresolve/{hostport(master)}/vip")
    with pytest.raises(ClientError, match="no such API route"):
        c.api("no-such-verb/127.0.0.1/1")


def test_forget_and_forget_cluster(api: ApiProcess, topo: dict[str, InstanceSnapshot]) -> None:
    """Last: it empties the read model of this module's cluster."""
    c = Client(api)
    master, replica = str(topo["master"].key), str(topo["replica3"].key)
    c.api(f"forget/{hostport(replica)}")
    assert replica not in filter_keys(c.api("all-instances"))
    assert c.api(f"forget-cluster/{master}")["Message"] == f"Cluster forgotten: {master}"
    assert c.api("all-instances") == []
