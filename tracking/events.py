"""CallEvent: one AI call, its usage and its cost, validated where it is made."""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import BigInteger, Integer, String

from tracking.schema import calls
from tracking.sqltypes import NANO

STATUSES = ("ok", "error")
_bits = random.getrandbits
_CALL_ID_NAMESPACE = uuid.UUID("6f1c1e0e-4d53-4a43-9a2d-2f1f0c8f3e11")


@dataclass(slots=True)
class CallEvent:
    id: uuid.UUID
    occurred_at: datetime
    provider: str
    model: str
    status: str = "ok"
    duration_ms: int | None = None
    ttft_ms: int | None = None
    requested_model: str | None = None
    operation: str | None = None
    user_id: str | None = None
    feature: str | None = None
    error_type: str | None = None
    request_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    units: dict[str, int | float] | None = None
    batch: bool = False
    cost_usd: Decimal | None = None
    cost_source: str | None = None
    price_version_id: int | None = None
    tags: dict[str, Any] | None = None
    environment: str | None = None
    priced: bool = False  # False until the engine (or the provider's cost) has set the cost

    def usage(self) -> dict[str, int | float | None]:
        """Every billable count of the call, tokens and other units, by unit name."""
        # TOKEN_FIELDS written out (a test holds them equal): a third of the comprehension's time
        found: dict[str, int | float | None] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }
        if self.units:
            found.update(self.units)
        return found

    def to_row(self) -> dict[str, Any]:
        row = {name: getattr(self, name) for name in ROW_FIELDS}
        return row

    def to_json(self) -> str:
        data = self.to_row()
        data["id"] = str(self.id)
        data["occurred_at"] = self.occurred_at.isoformat()
        data["cost_usd"] = None if self.cost_usd is None else str(self.cost_usd)
        data["priced"] = self.priced
        return json.dumps(data, separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, line: str) -> CallEvent:
        data = json.loads(line)
        data["id"] = uuid.UUID(data["id"])
        data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
        if data.get("cost_usd") is not None:
            data["cost_usd"] = Decimal(data["cost_usd"])
        return cls(**data)


ROW_FIELDS = tuple(f for f in CallEvent.__dataclass_fields__ if f != "priced")

# What the store's columns hold, read from the calls table: a value beyond them passes here but
# fails the whole batch it is written in, so it is refused before it is queued.
NAME_LIMITS: dict[str, int] = {
    c.name: c.type.length for c in calls.columns if isinstance(c.type, String) and c.type.length
}
_BIGINT_MAX = 2**63 - 1
COUNT_LIMITS = {
    c.name: _BIGINT_MAX if isinstance(c.type, BigInteger) else 2**31 - 1
    for c in calls.columns
    if isinstance(c.type, Integer)
}
# the largest cost both stores hold: NUMERIC(20, 9) on PostgreSQL, BIGINT nano-dollars on SQLite
_money = calls.c.cost_usd.type.impl  # type: ignore[attr-defined]
MAX_COST = min(Decimal(10) ** (_money.precision - _money.scale) - NANO, Decimal(_BIGINT_MAX) * NANO)


def _name(field: str, value: object, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise ValueError(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise ValueError(f"{field} must not be empty")
    limit = NAME_LIMITS[field]
    if len(value) > limit:
        raise ValueError(f"{field} must be at most {limit} characters")
    # plain_text's check written out: every call names four or more, and a call costs 50 ns each
    if "\x00" in value or not (value.isascii() or _encodable(value)):
        raise ValueError(f"{field} must not contain NUL characters or lone surrogates")
    return value or None


def _encodable(text: str) -> bool:
    """False for a lone surrogate: no UTF-8 encoder (psycopg2's, sqlite3's) can write it."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def plain_text(field: str, value: str) -> str:
    """A string both stores can hold: no NUL (PostgreSQL refuses it), no lone surrogate."""
    if unstorable(value) is not None:
        raise ValueError(f"{field} must not contain NUL characters or lone surrogates")
    return value


def unstorable(text: str) -> str | None:
    """Why neither store can hold ``text``, else None: a NUL (PostgreSQL's text refuses it) or
    a lone surrogate (half of a character, which no UTF-8 encoder writes: a data editor's cell
    can hold one, as the browser's JSON escapes it). The app's editors and CSV import refuse
    such a cell by row with this reason."""
    if "\x00" in text:
        return "contains a NUL character"
    if not (text.isascii() or _encodable(text)):
        return "contains a lone surrogate (half of a character)"
    return None


def counter(limit: int) -> Callable[[str, object], int | None]:
    """The check of a count that must fit a column holding at most ``limit``."""

    def count(field: str, value: object) -> int | None:
        """A whole, non-negative number (bools and floats are refused) that fits its column."""
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{field} must be a whole number of tokens, got {value!r}")
        if value < 0:
            raise ValueError(f"{field} must not be negative, got {value}")
        if value > limit:
            raise ValueError(f"{field} must be at most {limit}, got {value}")
        return value

    return count


# a check per count column (INTEGER for durations, BIGINT for tokens), its limit bound in
COUNT_CHECKS = {name: counter(limit) for name, limit in COUNT_LIMITS.items()}


def amount(field: str, value: object) -> int | float:
    """Another billable unit: a finite, non-negative number (audio seconds may be fractional)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{field} must be a number, got {value!r}")
    if isinstance(value, Decimal):
        value = int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value!r}")
    if value < 0:
        raise ValueError(f"{field} must not be negative, got {value}")
    return value


def units_of(value: object) -> dict[str, int | float] | None:
    """Other billable units, ``{name: number}``; None when there are none."""
    if not value:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"units must be a dict of numbers, got {type(value).__name__}")
    units = {
        plain_text("units", str(k)): amount(str(k), v) for k, v in value.items() if v is not None
    }
    return units or None


def flag(field: str, value: object) -> bool:
    """A yes/no field: a bool, never a truthy string ("false" is not True)."""
    if not isinstance(value, bool):
        raise ValueError(f"{field} must be True or False, got {value!r}")
    return value


def money(field: str, value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{field} must be an amount in dollars, got {value!r}")
    try:
        result = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{field} must be an amount in dollars, got {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ValueError(f"{field} must be a finite, non-negative amount, got {value!r}")
    if result > MAX_COST:
        raise ValueError(f"{field} must be at most {MAX_COST}, got {value!r}")
    # to the nano-dollar here, half to even, as computed costs are: the stores would otherwise
    # round each call their own way (PostgreSQL's NUMERIC rounds half away from zero), and the
    # rollups, adding unrounded amounts, would drift from the sum of the calls
    return result.quantize(NANO, rounding=ROUND_HALF_EVEN)


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): new ids land at the end of the id indexes,
    which keeps PostgreSQL's inserts sequential instead of scattered."""
    millis = time.time_ns() // 1_000_000
    rand = _bits(80)  # unique, not secret: random's generator is reseeded in a forked child
    value = (
        (millis << 80)
        | (0x7 << 76)
        | (((rand >> 68) & 0xFFF) << 64)
        | (0b10 << 62)
        | (rand & ((1 << 62) - 1))
    )
    return uuid_of_int(value)


def _made_uuid(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value known to be a 128-bit int, without the
    constructor's argument checks (half of its 0.6 µs, on the host's thread for every call):
    the attributes it would set, set."""
    made = _new_object(uuid.UUID)
    _set_attribute(made, "int", value)
    _set_attribute(made, "is_safe", uuid.SafeUUID.unknown)
    return made


_new_object, _set_attribute = object.__new__, object.__setattr__
# should a Python's UUID hold other state than these, its own constructor is used
uuid_of_int: Callable[[int], uuid.UUID] = (
    _made_uuid
    if getattr(uuid.UUID, "__slots__", None) == ("int", "is_safe", "__weakref__")
    else lambda value: uuid.UUID(int=value)
)


def call_uuid(value: object) -> uuid.UUID:
    """The caller's call_id as a UUID; any other string maps to a stable UUID of its own."""
    if value is None:
        return uuid7()
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str) and value.strip():
        try:
            return uuid.UUID(value)
        except ValueError:
            return uuid.uuid5(_CALL_ID_NAMESPACE, plain_text("call_id", value))
    raise ValueError(f"call_id must be a UUID or a non-empty string, got {value!r}")


def moment(value: object) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if not isinstance(value, datetime):
        raise ValueError(f"occurred_at must be a datetime, got {type(value).__name__}")
    if value.year >= 9999:  # its month's partition would end past what a datetime can hold
        raise ValueError(f"occurred_at must be before the year 9999, got {value.isoformat()}")
    when = value  # a UTC datetime (the integrations' and spans') as it is
    if value.tzinfo is None:
        when = value.replace(tzinfo=UTC)
    elif value.tzinfo is not UTC:
        when = value.astimezone(UTC)
    # a call cannot have happened tomorrow: a clock or unit mistake would open the app there
    if when - datetime.now(UTC) > MAX_AHEAD:
        raise ValueError(
            f"occurred_at must not be more than a day ahead of now, got {when.isoformat()}"
        )
    return when


MAX_AHEAD = timedelta(days=1)


def tags_of(value: object, limit: int) -> dict[str, Any] | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise ValueError("tags must be a dict of JSON values")
    try:  # NaN and Infinity are not JSON: PostgreSQL's json type refuses them
        encoded = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"tags must be JSON-serialisable: {exc}") from None
    if len(encoded.encode()) > limit:
        raise ValueError(f"tags must be at most {limit} bytes as JSON, got {len(encoded)}")
    # JSON escapes NUL and surrogates (as \u0000, \udxxx): only then is each string looked at
    if ("\\u0000" in encoded or "\\ud" in encoded) and not _all_plain(value):
        raise ValueError("tags must not contain NUL characters or lone surrogates")
    return value


def _all_plain(value: object) -> bool:
    """Every string in a JSON value (keys too) free of NUL and lone surrogates."""
    if isinstance(value, str):
        return "\x00" not in value and _encodable(value)
    if isinstance(value, dict):
        return all(_all_plain(k) and _all_plain(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(_all_plain(v) for v in value)
    return True


def check_parts(event: CallEvent) -> None:
    """Cache tokens are parts of input, reasoning a part of output: parts cannot exceed wholes."""
    if event.input_tokens is not None:
        parts = (event.cache_read_tokens or 0) + (event.cache_write_tokens or 0)
        if parts > event.input_tokens:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({parts}) cannot exceed "
                f"input_tokens ({event.input_tokens}): cache tokens are part of the input"
            )
    if event.output_tokens is not None and (event.reasoning_tokens or 0) > event.output_tokens:
        raise ValueError(
            f"reasoning_tokens ({event.reasoning_tokens}) cannot exceed "
            f"output_tokens ({event.output_tokens}): reasoning is part of the output"
        )
    if event.status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {event.status!r}")
