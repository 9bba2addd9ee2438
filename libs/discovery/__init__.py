"""Discovery: the registry of known instances (KV `baton_instances`) and how instances are named.

- `registry` register / forget / watch the known instances (the prober, `baton discover`, the API)
- `kvscan`   typed helpers around nats-py's KV watcher (whole-bucket reads: `libs.bus.kvread`)
- `names`    hostname resolution (HostnameResolveMethod / MySQLHostnameResolveMethod) with a DNS cache;
             the pure decisions are in `libs.topology.naming`
"""
