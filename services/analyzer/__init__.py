"""The analyzer: snapshots in, detections out (`python -m services.analyzer`).

Modules: `service` (wiring: replay, consumers, loop, publish), `fleet` (in-memory instance states and
cluster membership), `probing` (probe-now for suspects), `hooks` (OnFailureDetectionProcesses + audit).
Decisions live in `libs/topology` (`lifecycle`, `freshness`, `analysis`).
"""
