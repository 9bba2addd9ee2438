"""A Consul-HTTP-API-compatible server for the tests (no real Consul can be installed here).

It implements what Baton uses — KV reads/writes with cas, blocking queries, `/v1/txn`, ACL token
checks — with Consul's documented semantics, in-process (`ConsulTestServer`) or as a subprocess
(`python -m tests.consul_server`). Its behaviour is pinned by tests/integration/consul_server/.
"""

from tests.consul_server.app import ServerConfig, parse_go_duration
from tests.consul_server.server import ConsulTestServer
from tests.consul_server.store import Entry, KVOp, KVStore

__all__ = ["ConsulTestServer", "Entry", "KVOp", "KVStore", "ServerConfig", "parse_go_duration"]
