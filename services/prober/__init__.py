"""The prober: Baton's eyes. Probes every known instance continuously into `baton.snapshot.<token>`.

Modules: `config` (settings → ProberConfig), `registry` (KV `baton_instances`, the known instances),
`shards` (shard and heartbeat leases in `baton_shards`), `loop` (one probe task per owned instance),
`names` (hostname resolution), `discovery` (register masters/replicas a probe points at), `liveness`
(SELECT SLEEP watch on masters), `probe_now` (the `baton.probe.now` responder), `service` (wiring),
`__main__` (`python -m services.prober`).
"""
