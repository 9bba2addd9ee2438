"""`python -m services.analyzer [--config FILE] [--nats URL]`: one analyzer until SIGINT/SIGTERM."""

from __future__ import annotations

import sys

from libs.service_main import service_main
from services.analyzer.service import serve

if __name__ == "__main__":
    sys.exit(service_main("analyzer", lambda _args: serve, description=__doc__))
