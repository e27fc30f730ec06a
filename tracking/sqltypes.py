"""Column types that keep money exact and time in UTC on both stores.

PostgreSQL stores money as NUMERIC. SQLite has no exact decimal, so money is stored there as
integer nano-dollars: integer SUM() stays exact, and the type turns it back into a Decimal.
Price rates and percentages are never summed, so on SQLite they are stored as decimal text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Numeric, String
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

NANO = Decimal("0.000000001")
NANOS_PER_DOLLAR = 1_000_000_000


def to_nanos(amount: Decimal) -> int:
    """Dollars to integer nano-dollars (amounts are already quantized to NANO)."""
    return int(amount.quantize(NANO) * NANOS_PER_DOLLAR)


def from_nanos(nanos: int) -> Decimal:
    """Integer nano-dollars to dollars, exponent -9 (a shift of the exponent, not a division:
    this runs for every priced call on the host's thread). Exact whatever its size: in the
    default context a cost of 28 digits or more (above $10^19) was rounded."""
    return Decimal(nanos).scaleb(-9, _EXACT)


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def plain_decimal(amount: Decimal) -> str:
    """Exact decimal text without exponent or trailing zeros: '0.000012345', '1000', '0',
    never '1.2345E-5' or '0E-9' (a CSV cell, a CLI line)."""
    text = f"{amount:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


class Money(TypeDecorator[Decimal]):
    """US dollars to the nano-dollar: NUMERIC(20, 9) on PostgreSQL, integer nanos on SQLite."""

    impl = Numeric(20, 9)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(20, 9, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        if dialect.name == "sqlite":
            return to_nanos(value)
        return value.quantize(NANO)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_nanos(int(value))
        return Decimal(value).quantize(NANO)


class Rate(TypeDecorator[Decimal]):
    """A price rate (dollars per N units): NUMERIC(24, 12) on PostgreSQL, decimal text on SQLite."""

    impl = Numeric(24, 12)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(24, 12, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return Decimal(value).normalize() if value != 0 else Decimal(0)


class Percent(TypeDecorator[Decimal]):
    """A percentage (a customer's discount): NUMERIC(9, 6) on PostgreSQL, decimal text on SQLite."""

    impl = Numeric(9, 6)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(16))
        return dialect.type_descriptor(Numeric(9, 6, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = Decimal(value)
        return plain_decimal(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        found = Decimal(value)
        # 12.5 rather than 12.500000; 100 rather than 1E+2
        return (
            found.quantize(Decimal(1)) if found == found.to_integral_value() else found.normalize()
        )


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes: timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
