"""`python -m services.prober [--config FILE] [--nats URL]`: one prober worker until SIGINT/SIGTERM.

A clean shutdown releases the worker's shard leases so the others take over at once.
"""

from __future__ import annotations

import sys

from libs.service_main import service_main
from services.prober.service import serve

if __name__ == "__main__":
    sys.exit(service_main("prober", lambda _args: serve, description=__doc__.splitlines()[0]))
