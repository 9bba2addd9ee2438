"""W3C trace context in and out of plain string dicts (NATS headers).

We use the W3C `traceparent`/`tracestate` propagator explicitly rather than the global one, so a
process that never set up telemetry still forwards the trace context it receives, and so a probe →
detection → recovery chain stays one trace across services.
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
_propagator = TraceContextTextMapPropagator()


def inject_headers(headers: dict[str, str] | None = None, context: Context | None = None) -> dict[str, str]:
    """Add the trace context (of `context`, default the current one) to `headers`; return them.

    Adds nothing when there is no valid span, so untraced messages carry no trace headers.
    """
    carrier: dict[str, str] = {} if headers is None else headers
    _propagator.inject(carrier, context=context)
    return carrier


def extract_context(headers: Mapping[str, str] | None) -> Context:
    """The context carried by `headers` (an empty context when there is none or it is malformed)."""
    return _propagator.extract(dict(headers or {}))
