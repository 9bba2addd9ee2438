"""OpenTelemetry setup, trace-context propagation through NATS headers, and Baton's metric instruments."""

from libs.telemetry.metrics import Instruments, instruments
from libs.telemetry.propagation import extract_context, inject_headers
from libs.telemetry.setup import Telemetry, build_providers, setup_telemetry, tracer

__all__ = [
    "Instruments",
    "Telemetry",
    "build_providers",
    "extract_context",
    "inject_headers",
    "instruments",
    "setup_telemetry",
    "tracer",
]
