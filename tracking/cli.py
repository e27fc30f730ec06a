"""``python -m tracking``: migrate a store, refresh its price catalogue, keep its budgets, apply
retention."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tracking import alert_cli, budget_cli, otlp_cli, price_cli, reprice_cli
from tracking.config import resolve_url
from tracking.db import describe_url, make_engine

# what --help says: plain text for a terminal (the module's docstring is reST)
DESCRIPTION = (
    "Migrate a Unitwise store, keep its prices (refresh, add, reprice) and budgets, "
    "apply retention."
)


def _migrate(args: argparse.Namespace) -> int:
    from tracking.migrate import upgrade

    engine = make_engine(resolve_url(args.url))
    upgrade(engine)
    print(f"Migrated {describe_url(engine.url)} to the current schema.")
    if not args.no_catalogue:
        from tracking.catalogue_store import load_catalogue_if_empty

        with engine.begin() as conn:
            written = load_catalogue_if_empty(conn)
        if written:
            print(f"Loaded the reference price catalogue: {written} price versions.")
    engine.dispose()
    return 0


def _prices_refresh(args: argparse.Namespace) -> int:
    from tracking.catalogue_store import refresh_catalogue

    engine = make_engine(resolve_url(args.url))
    with engine.begin() as conn:
        report = refresh_catalogue(conn)
    for line in report.lines():
        print(line)
    engine.dispose()
    return 0


def _retention(args: argparse.Namespace) -> int:
    from tracking.partitions import apply_retention

    engine = make_engine(resolve_url(args.url))
    with engine.begin() as conn:
        result = apply_retention(conn, args.keep_months, archive=args.archive)
    verb = "Detached (archived)" if result.archived else "Removed"
    months = ", ".join(f"{y:04d}-{m:02d}" for y, m in result.months) or "none"
    print(f"{verb} calls of months older than the last {args.keep_months}: {months}.")
    engine.dispose()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tracking", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    url_help = "database URL (default: $UNITWISE_DATABASE_URL, $DATABASE_URL, the local SQLite)"

    migrate = sub.add_parser("migrate", help="bring a store to the current schema")
    migrate.add_argument("--url", help=url_help)
    migrate.add_argument(
        "--no-catalogue", action="store_true", help="do not load the reference prices"
    )
    migrate.set_defaults(func=_migrate)

    prices = sub.add_parser("prices", help="the price catalogue")
    prices_sub = prices.add_subparsers(dest="prices_command", required=True)
    refresh = prices_sub.add_parser("refresh", help="reload the catalogue, print what changed")
    refresh.add_argument("--url", help=url_help)
    refresh.set_defaults(func=_prices_refresh)
    price_cli.register(prices_sub, url_help)
    reprice_cli.register(prices_sub, url_help)

    budget_cli.register(sub, url_help)
    alert_cli.register(sub, url_help)
    otlp_cli.register(sub, url_help)

    retention = sub.add_parser("retention", help="drop or archive calls of old months")
    retention.add_argument("--url", help=url_help)
    retention.add_argument("--keep-months", type=int, required=True, help="months to keep (>= 1)")
    retention.add_argument(
        "--archive",
        action="store_true",
        help="PostgreSQL: detach old partitions into standalone tables instead of dropping them",
    )
    retention.set_defaults(func=_retention)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a clear line, not a traceback, for an unreachable store etc.
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
