"""Recovery: the fenced leader's failover pipeline, its MySQL executor and its audit.

- `audit`      RecoveryRecord / StepRecord: the per-attempt record (orchestrator's audit-recovery shape)
- `steps`      pure: the MySQL steps that carry out a topology `Plan`
- `executor`   runs one step on MySQL, checking the fence before every change
- `pipeline`   gates → register → re-check → plan → hooks → execute → publish master → hooks → close
               (master failover, dead intermediate master, graceful takeover)
- `gates`      reason-or-None checks before a recovery is registered; `policy` the operator's gates
               (global switch, cluster filters, ignored hosts, downtime, anti-flapping) and blocks
- `control`    the operator's state in KV: global switch, downtime, blocks, deferred detections
- `manual`     operator commands: recover, force-master-failover, graceful takeovers, acks, blocks
- `takeover`   who takes over in a graceful master takeover, and whether it may
- `leadership` campaign for `baton_leader/recovery`; `fence` the epoch check
- `store`      open/latest records per cluster in KV `baton_recoveries` (resume after leader change)
- `masters`, `downtime`, `events`  what a recovery writes to NATS
- `seeding`    pure: which clusters baton_masters should hold a master for; `keeper` writes them
               (the leader's seeding loop and `submit-masters-to-kv-stores`)
- `old_master` keeping a failed master read-only until an operator ends its watch (`fence_watch`:
               the watches in KV `baton_fences`)
- `writeable`  RecoverNonWriteableMaster: a read-only master made writable (its own recovery kind)
- `semisync`   LockedSemiSyncMaster / MasterWithTooManySemiSyncReplicas: semi-sync replicas enabled or
               disabled (its own recovery kind; the decision in `libs/topology/semisync.py`)
- `options`    Settings → rules, execution options, hooks, credentials
"""
