"""``python -m tracking prices add``: a price from the command line, for a model the catalogue
lacks (a self-hosted model, a fine-tune, a new release) until the Pricing page edits prices."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from tracking.config import resolve_url
from tracking.db import describe_url, make_engine
from tracking.price_store import RateRow, add_version

PER_MILLION = 1_000_000
TOKEN_OPTIONS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cache_read", "cache_read_tokens"),
    ("cache_write", "cache_write_tokens"),
)


def _amount(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{what}: {text!r} is not a number of dollars") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what}: {text!r} must be a finite, non-negative amount")
    return value


def parse_rate(text: str) -> RateRow:
    """'requests=17/1000' -> $17 per 1,000 requests; 'audio_seconds=0.0001' -> per second."""
    unit, sep, amount = text.partition("=")
    unit = unit.strip()
    if not sep or not unit or not amount.strip():
        raise ValueError(f"--rate {text!r}: write UNIT=DOLLARS or UNIT=DOLLARS/PER")
    dollars, _, per = amount.partition("/")
    count = per.strip() or "1"
    if not count.isdigit() or int(count) <= 0:
        raise ValueError(f"--rate {text!r}: PER must be a positive whole number")
    return RateRow(unit, _amount(dollars.strip(), f"--rate {unit}"), int(count))


def day_option(text: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option of the price commands (None when not given); a bad one raises
    ValueError naming the option (exit 2, nothing written)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: write a date as YYYY-MM-DD") from None


def _effective(text: str | None) -> datetime:
    day = day_option(text, "--from")
    return datetime.now(UTC) if day is None else datetime.combine(day, time(), UTC)


def rates_of(args: argparse.Namespace) -> list[RateRow]:
    rows = [
        RateRow(unit, _amount(getattr(args, name), f"--{name.replace('_', '-')}"), PER_MILLION)
        for name, unit in TOKEN_OPTIONS
        if getattr(args, name) is not None
    ]
    rows += [parse_rate(text) for text in args.rate or ()]
    units = [r.unit for r in rows]
    if len(set(units)) != len(units):
        raise ValueError(f"a unit is given twice: {', '.join(units)}")
    if not rows:
        raise ValueError("give at least one rate: --input, --output, ... or --rate UNIT=DOLLARS")
    return rows


def add(args: argparse.Namespace) -> int:
    """Add a price version (all the model's rates from its date on) and say what it holds."""
    rows = rates_of(args)
    effective = _effective(args.effective_from)
    engine = make_engine(resolve_url(args.url))
    try:
        with engine.begin() as conn:
            version = add_version(
                conn, args.provider, args.model, effective, rows, source="cli", note=args.note
            )
    finally:
        engine.dispose()
    print(
        f"Added price version {version} of {args.provider}/{args.model} in "
        f"{describe_url(engine.url)}, in force from {effective:%Y-%m-%d %H:%M} UTC:"
    )
    for r in rows:
        per = "1M tokens" if r.per == PER_MILLION and r.unit.endswith("_tokens") else None
        print(f"  {r.unit}: ${r.rate} per {per or f'{r.per:,} {r.unit}'}")
    print(
        "Running trackers use it within a minute. Calls stored before stay as they were "
        "(unpriced calls stay unpriced until they are repriced)."
    )
    return 0


def register(prices: argparse._SubParsersAction, url_help: str) -> None:
    """The ``prices add`` command and its options."""
    cmd = prices.add_parser(
        "add",
        help="add a price for a model (a new version: its rates from a date on)",
        description="Add a price version for a model. Token rates are dollars per 1M tokens.",
    )
    cmd.add_argument("--url", help=url_help)
    cmd.add_argument("--provider", required=True, help="as the calls name it, e.g. openai")
    cmd.add_argument("--model", required=True, help="as the calls name it, e.g. gpt-4o")
    for name, unit in TOKEN_OPTIONS:
        cmd.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            help=f"dollars per 1M {unit.replace('_', ' ')}",
        )
    cmd.add_argument(
        "--rate",
        action="append",
        metavar="UNIT=DOLLARS[/PER]",
        help="any other unit, e.g. requests=17/1000 or audio_seconds=0.0001 (repeatable)",
    )
    cmd.add_argument(
        "--from", dest="effective_from", help="in force from YYYY-MM-DD (default: now)"
    )
    cmd.add_argument("--note", help="why, kept with the version")
    cmd.set_defaults(func=add)
