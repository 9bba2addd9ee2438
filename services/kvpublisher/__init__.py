"""kvpublisher: the master of every cluster, in every data center's Consul, atomically and fenced.

`python -m services.kvpublisher` (see `__main__`). Pieces: `service` (the baton_masters watch, the
event outbox, the status command), `worker` (one per data center: queue, retries, reconcile), and the
pure parts `pending` (coalescing queue), `backoff`, `verdict` (reconcile comparison), `events`,
`status`; `cancel` works around a Python 3.11 asyncio pitfall.
"""
