"""``python -m tracking otlp``: the OTLP/HTTP endpoint, writing GenAI spans as calls to a store.

Starlette, uvicorn and opentelemetry-proto (the ``otlp`` extra) load only when the command runs,
so the other commands, and ``import tracking``, never need them.
"""

from __future__ import annotations

import argparse
import os

from tracking.config import data_dir, resolve_url
from tracking.db import describe_url

TOKEN_ENV = "UNITWISE_OTLP_TOKEN"  # noqa: S105 - the variable's name, not a token
DEFAULT_PORT = 4318  # OTLP/HTTP's registered port
LOOPBACK = ("127.0.0.1", "::1", "localhost")
JOURNAL = "otlp-journal.jsonl"  # in the data folder, unless --journal or $UNITWISE_JOURNAL_PATH
QUEUE_SIZE = 200_000  # calls waiting for the writer: a few seconds of a busy Collector's spans


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from tracking.otlp_server import DEFAULT_MAX_BODY_BYTES, TRACES_PATH, build_app
    except ImportError as exc:
        raise ValueError(
            f"the OTLP endpoint needs the otlp extra: pip install 'unitwise[otlp]' ({exc})"
        ) from None
    from tracking.client import Tracker
    from tracking.config import build_settings
    from tracking.otlp_receiver import Receiver

    if args.max_body_bytes is not None and args.max_body_bytes < 1:
        raise ValueError("--max-body-bytes must be at least 1")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: a TCP port is 0..65535")
    url = resolve_url(args.url)
    # its own journal by default: a replay writes to the replaying process's store, and a host
    # app beside the endpoint may write to another
    journal = args.journal or os.environ.get("UNITWISE_JOURNAL_PATH") or data_dir() / JOURNAL
    settings = build_settings(url, journal_path=journal, queue_size=QUEUE_SIZE)
    token = os.environ.get(TOKEN_ENV) or None
    receiver = Receiver(Tracker(settings), feature_attribute=args.feature_attribute)
    limit = args.max_body_bytes or DEFAULT_MAX_BODY_BYTES
    app = build_app(receiver, token=token, max_body_bytes=limit)
    auth = f"bearer token from ${TOKEN_ENV}" if token else f"no auth (set ${TOKEN_ENV} for it)"
    print(
        f"Receiving OTLP/HTTP traces on http://{args.host}:{args.port}{TRACES_PATH} "
        f"(protobuf and JSON, gzip, bodies up to {limit:,} bytes; {auth}); "
        f"GenAI spans are written to {describe_url(settings.url)}.",
        flush=True,
    )
    if not token and args.host not in LOOPBACK:
        print(f"warning: anyone who reaches {args.host} can write calls; set ${TOKEN_ENV}.")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


def register(sub: argparse._SubParsersAction, url_help: str) -> None:
    """The ``otlp`` command."""
    cmd = sub.add_parser(
        "otlp",
        help="receive OTLP/HTTP traces: GenAI spans become calls",
        description="Serve POST /v1/traces (OTLP/HTTP, protobuf or JSON): each GenAI span "
        "becomes one call in the store, priced like any other; other spans are ignored. "
        f"Set ${TOKEN_ENV} to require 'Authorization: Bearer <token>'.",
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    cmd.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    cmd.add_argument(
        "--feature-attribute",
        metavar="NAME",
        help="span or resource attribute read as the feature (default: service.name)",
    )
    cmd.add_argument(
        "--max-body-bytes",
        type=int,
        help="larger bodies get 413, as sent or decompressed (default: 16 MiB)",
    )
    cmd.add_argument(
        "--journal",
        help=f"where calls wait while the store is unreachable (default: {JOURNAL} in the "
        "data folder, or $UNITWISE_JOURNAL_PATH)",
    )
    cmd.set_defaults(func=run)
