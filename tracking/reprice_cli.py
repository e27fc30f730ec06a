"""``python -m tracking prices reprice``: reprice stored calls after a price was added or fixed.

It prints the before/after preview, then applies it in batches (a progress line per batch on
stderr) unless ``--dry-run``. Every input is checked before the store is opened.
"""

from __future__ import annotations

import argparse
import sys

from tracking.config import resolve_url
from tracking.db import describe_url, make_engine
from tracking.price_cli import day_option
from tracking.reprice_preview import Change, Preview, Selection, Totals
from tracking.sqltypes import plain_decimal


def selection_of(args: argparse.Namespace) -> Selection:
    """The arguments as a selection; a bad one raises ValueError (exit 2, nothing written)."""
    models = tuple(dict.fromkeys(args.model or ()))
    if any(not m.strip() for m in models) or (args.provider is not None and not args.provider):
        raise ValueError("--provider and --model must not be empty")
    return Selection(
        args.provider,
        models,
        day_option(args.start, "--from"),
        day_option(args.end, "--to"),
        args.unpriced,
    )


def _money(totals: Totals) -> str:
    """Exact dollars as plain decimal text ('$0.18096'), or 'unpriced' when no call of the
    set has a known cost: never $0 for a cost that is unknown."""
    if totals.calls and totals.unpriced == totals.calls:
        return "unpriced"
    return f"${plain_decimal(totals.cost)}"


def _line(label: str, change: Change) -> str:
    before, after = change.before, change.after
    delta = after.cost - before.cost
    return (
        f"  {label:<40} {before.calls:>9,} calls  {_money(before)} -> {_money(after)} "
        f"({'+' if delta >= 0 else '-'}${plain_decimal(abs(delta))} known cost); unpriced "
        f"{before.unpriced:,} -> {after.unpriced:,}"
    )


def preview_lines(preview: Preview) -> list[str]:
    """The preview as a terminal shows it: by model, then the total."""
    lines = [f"Reprice {preview.selection.describe()}:"]
    if not preview.selected:
        return [*lines, "  no calls selected"]
    lines += [_line(f"{p}/{m}", c) for (p, m), c in sorted(preview.by_model.items())]
    lines.append(_line("total", preview.total))
    lines.append(f"{preview.changed:,} of {preview.selected:,} calls change.")
    return lines


def reprice(args: argparse.Namespace) -> int:
    """Preview, then apply unless --dry-run."""
    from tracking.reprice import apply_reprice, plan_reprice

    s = selection_of(args)
    engine = make_engine(resolve_url(args.url))
    try:
        with engine.connect() as conn:
            preview = plan_reprice(conn, s.provider, s.models, s.start, s.end, s.unpriced_only)
        print(f"Store: {describe_url(engine.url)}")
        for line in preview_lines(preview):
            print(line)
        if args.dry_run:
            print("Dry run: nothing written.")
            return 0

        def progress(batch: int, seen: int, changed: int) -> None:
            print(f"batch {batch}: {seen:,} calls read, {changed:,} repriced", file=sys.stderr)

        result = apply_reprice(
            engine,
            *(s.provider, s.models, s.start, s.end, s.unpriced_only),
            batch_size=args.batch_size,
            progress=progress,
            who=args.who,
        )
    finally:
        engine.dispose()
    if not result.preview.changed:
        print("Reprice: nothing to change.")
    else:
        print(
            f"Repriced {result.preview.changed:,} calls in {result.batches} batches; "
            f"the rollups moved with them (audit log entry {result.audit_id})."
        )
    return 0


def _batch_size(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def register(prices: argparse._SubParsersAction, url_help: str) -> None:
    """The ``prices reprice`` command and its options."""
    cmd = prices.add_parser(
        "reprice",
        help="reprice stored calls with the prices in force at their time",
        description=(
            "Reprice stored calls (of a provider, models and UTC days, or every unpriced call) "
            "with the price version in force at each call's time. Prints the before/after "
            "totals, then applies them in batches unless --dry-run. Provider-reported costs are "
            "kept; a second run changes nothing; every run is written to the audit log."
        ),
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--provider", help="only calls of this provider, e.g. openai")
    cmd.add_argument(
        "--model", action="append", help="only calls of this model, as stored (repeatable)"
    )
    cmd.add_argument("--from", dest="start", help="first UTC day, YYYY-MM-DD (default: the first)")
    cmd.add_argument("--to", dest="end", help="last UTC day, YYYY-MM-DD, included (default: all)")
    cmd.add_argument(
        "--unpriced", action="store_true", help="every call stored without a cost (no --model)"
    )
    cmd.add_argument("--dry-run", action="store_true", help="print the preview, write nothing")
    cmd.add_argument(
        "--batch-size", type=_batch_size, default=10_000, help="calls per transaction (10000)"
    )
    cmd.add_argument("--who", default="cli", help="who the audit log names (default: cli)")
    cmd.set_defaults(func=reprice)
