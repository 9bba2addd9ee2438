"""`python -m services.recovery [--config FILE] [--nats URL]`: one recovery process until SIGINT/SIGTERM.

Every process competes for the recovery lease; the leader acts. A clean shutdown lets running
recoveries finish and releases the lease so a standby takes over at once.
"""

from __future__ import annotations

import sys

from libs.service_main import service_main
from services.recovery.service import serve

if __name__ == "__main__":
    sys.exit(service_main("recovery", lambda _args: serve, description=__doc__.splitlines()[0]))
