"""Baton's NATS layer.

- `subjects`   subject names and the reversible token/KV-key encoding of instance and cluster names
- `server`     run a nats-server (>= 2.11) process; `cluster` a local N-node JetStream cluster
- `connection` `connect()` → `Bus` (client + JetStream), nats errors → BusError
- `provision`  the streams and KV buckets of DESIGN §3, created or updated idempotently
- `messages`   publish/decode pydantic models and Events with Nats-Msg-Id and trace context; consumers
- `lease`      KV leases (leader, shards): acquire / renew / release, fencing epoch, LeaseKeeper
- `kvread`     every live entry of a KV bucket, never a short answer (`scan`, `scan_and_watch`)
"""
