"""What customers buy: plans, subscription terms, revenue lines (the store's rows, loaded)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Plan:
    """A price plan: ``price`` per seat and billing ``period`` ("month" or "year", shown as
    monthly), in USD; ``included_usage``: the AI cost in dollars a customer's month includes."""

    name: str
    price: Decimal
    period: str = "month"
    included_usage: Decimal | None = None
    active_from: date | None = None
    active_to: date | None = None

    @property
    def monthly_price(self) -> Decimal:
        """Per seat and month; exact for a yearly price too (a Decimal division by 12 is
        rounded only where it does not terminate, at 28 digits, far below a nano-dollar)."""
        return self.price if self.period == "month" else self.price / 12


@dataclass(frozen=True)
class Term:
    """One customer's subscription term: on ``plan`` from ``start`` to ``end`` (both days
    included; None: still active), with ``seats`` seats, a ``discount_pct`` off the plan's
    price, or a ``custom_price`` per month that replaces it. A plan change ends one term and
    starts the next; the customer's user ids are the same across its terms."""

    customer_id: str
    name: str
    plan: str | None
    start: date
    end: date | None = None
    seats: int = 1
    discount_pct: Decimal = Decimal(0)
    custom_price: Decimal | None = None


@dataclass(frozen=True)
class RevenueLine:
    """Usage-based or one-off revenue of a customer for the days ``start`` to ``end``."""

    customer_id: str
    start: date
    end: date
    amount: Decimal
    note: str | None = None
