"""The API service: orchestrator-compatible HTTP API over Baton's read model (docs/api.md).

- `app`        FastAPI app factory (routes, auth, envelope); `__main__` serves it with uvicorn
- `runtime`    NATS, the read model, the in-memory fleet, KV mirrors, projector, SSE hub
- `projector`  JetStream → read model (libs/store), resumable and idempotent
- `routes/`    orchestrator's routes (read, instances, recovery, audit, health) and Baton's own
- `shapes`     orchestrator's JSON shapes; `envelope` the {Code, Message, Details} errors
- `schemas`    generates docs/events.md from the published models
"""
