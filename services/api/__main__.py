"""`python -m services.api [--config FILE] [--listen HOST:PORT] [--nats URL] [--store URL]`

Serves the API with uvicorn on ListenAddress until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import sys

from libs.service_main import Serve, service_main
from services.api.serve import serve_with


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="HOST:PORT (overrides ListenAddress)")
    parser.add_argument("--store", help="read-model URL (overrides BatonReadModelURL)")


def serve_for(args: argparse.Namespace) -> Serve:
    return serve_with(listen=args.listen, store=args.store, log_level=args.log_level.lower())


if __name__ == "__main__":
    sys.exit(
        service_main(
            "api",
            serve_for,
            description=__doc__.splitlines()[0],
            add_arguments=add_arguments,
            http_metrics=True,  # GET /metrics on ListenAddress
        )
    )
