"""`python -m bench.analyzer_ticks [--config FILE]`: the analyzer service, with its per-tick cost line on.

The analyzer logs one DEBUG line per tick round (logger `baton.analyzer.tick`: clusters, instances, wall
and CPU milliseconds); this runs `services.analyzer` unchanged with only that logger at DEBUG, whatever
`--log-level` says for the rest, so bench/fleet_scale.py can read the analyzer's per-tick cost.
"""

from __future__ import annotations

import logging
import sys

from libs.service_main import service_main
from services.analyzer.service import serve, tick_log

if __name__ == "__main__":
    tick_log.setLevel(logging.DEBUG)
    sys.exit(service_main("analyzer", lambda _args: serve, description=__doc__))
