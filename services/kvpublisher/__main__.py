"""`python -m services.kvpublisher [--config FILE] [--dc NAME ...]`: publish every cluster's master.

Publishes each cluster's master from baton_masters to the Consul of each selected data center until
SIGTERM or SIGINT, then stops cleanly (exit 0).
"""

from __future__ import annotations

import argparse
import sys

from libs.kv.consul import DEFAULT_TIMEOUT
from libs.service_main import Serve, service_main
from services.kvpublisher.service import serve_with


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dc", action="append", default=[], metavar="NAME", help="serve this DC (repeatable; default all)"
    )
    parser.add_argument(
        "--reconcile-seconds",
        type=float,
        help="compare every cluster with Consul this often (default: BatonKVReconcileSeconds)",
    )
    parser.add_argument(
        "--consul-timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per Consul request"
    )


def serve_for(args: argparse.Namespace) -> Serve:
    return serve_with(dcs=args.dc, reconcile=args.reconcile_seconds, consul_timeout=args.consul_timeout)


if __name__ == "__main__":
    sys.exit(
        service_main(
            "kvpublisher", serve_for, description=__doc__.splitlines()[0], add_arguments=add_arguments
        )
    )
