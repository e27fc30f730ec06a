"""The store's tables, as SQLAlchemy Core: the single source of truth for migrations and queries.

Only ``calls`` differs between stores: on PostgreSQL it is partitioned by month (so its primary
key must include ``occurred_at``). ``call_ids`` is therefore the one place that guarantees a
call id is stored once, whichever month it lands in.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Date,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    event,
)

from tracking.sqltypes import Money, Percent, Rate, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
)

calls = Table(
    "calls",
    metadata,
    Column("id", Uuid, nullable=False),
    Column("occurred_at", UTCDateTime, nullable=False),
    Column("duration_ms", Integer),
    Column("ttft_ms", Integer),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("requested_model", String(200)),
    Column("operation", String(64)),
    Column("user_id", String(200)),
    Column("feature", String(200)),
    Column("status", String(16), nullable=False),
    Column("error_type", String(200)),
    Column("request_id", String(200)),
    *(Column(name, BigInteger) for name in TOKEN_FIELDS),
    # Other billable units (audio_seconds, characters, images, requests, ...): {unit: number}.
    Column("units", JSON),
    Column("batch", Boolean, nullable=False, default=False),
    Column("cost_usd", Money),
    # "computed" from a price version, "provider" when the provider reported it, NULL if unpriced.
    Column("cost_source", String(16)),
    Column("price_version_id", Integer),
    Column("tags", JSON),
    Column("environment", String(64)),
    PrimaryKeyConstraint("id", "occurred_at"),
    Index(None, "occurred_at"),  # BRIN on PostgreSQL: see postgresql_options
    Index(None, "user_id", "occurred_at"),
    Index(None, "feature", "occurred_at"),
    Index(None, "model", "occurred_at"),
)  # partitioned by month on PostgreSQL: see postgresql_options

call_ids = Table(
    "call_ids",
    metadata,
    Column("id", Uuid, primary_key=True),
    # no index on occurred_at: it is read only by retention, and every index costs ingest speed
    Column("occurred_at", UTCDateTime, nullable=False),
)

# Rollup keys are NOT NULL ('' means "none") so that one key is one row on both stores.
ROLLUP_KEYS = ("day", "user_id", "feature", "provider", "model")
ROLLUP_COUNTS = (
    "calls",
    "error_calls",
    "unpriced_calls",
    *TOKEN_FIELDS,
    "duration_ms_sum",
)
ROLLUP_TOTALS = (*ROLLUP_COUNTS, "cost_usd")  # what a rollup row sums, and an upsert adds


def _totals() -> list[Column[Any]]:
    """The columns every rollup table sums: counts, tokens, durations and exact cost."""
    return [
        *(Column(name, BigInteger, nullable=False, default=0) for name in ROLLUP_COUNTS),
        Column("cost_usd", Money, nullable=False, default=0),
    ]


daily_rollups = Table(
    "daily_rollups",
    metadata,
    Column("day", Date, nullable=False),
    Column("user_id", String(200), nullable=False, default=""),
    Column("feature", String(200), nullable=False, default=""),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    *_totals(),
    PrimaryKeyConstraint(*ROLLUP_KEYS),
    Index(None, "user_id", "day"),
    Index(None, "feature", "day"),
    Index(None, "model", "day"),
)

# Narrower rollups of the same calls, written in the same transaction: a read that needs no user
# (daily costs, features, models) or only the user (rankings of users) reads a few hundred or a
# few thousand rows a day instead of every user x feature x model of it.
daily_feature_model_rollups = Table(
    "daily_feature_model_rollups",
    metadata,
    Column("day", Date, nullable=False),
    Column("feature", String(200), nullable=False, default=""),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    *_totals(),
    PrimaryKeyConstraint("day", "feature", "provider", "model"),
)

# The counts the app's tables sum per group (with the cost): the covering index below holds them.
PAGE_COUNTS = ("calls", "error_calls", "unpriced_calls", "input_tokens", "output_tokens")

daily_user_rollups = Table(
    "daily_user_rollups",
    metadata,
    Column("day", Date, nullable=False),
    Column("user_id", String(200), nullable=False, default=""),
    *_totals(),
    PrimaryKeyConstraint("day", "user_id"),
    # Covering what the per-user tables sum on PostgreSQL (see postgresql_options)
    Index(None, "user_id", "day"),
)

# Every rollup table, the finest grain first. Each sums the same calls by its primary key.
ROLLUP_TABLES = (daily_rollups, daily_feature_model_rollups, daily_user_rollups)


def rollup_keys(table: Table) -> tuple[str, ...]:
    """A rollup table's key columns, in its primary key's order (``day`` first)."""
    return tuple(table.primary_key.columns.keys())


# A price version: the full set of rates of one model from one moment on. Editing makes a new one.
price_versions = Table(
    "price_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(64), nullable=False),
    Column("model", String(200), nullable=False),
    Column("effective_from", UTCDateTime, nullable=False),
    Column("source", String(64), nullable=False),  # "genai-prices 0.2.3", "list price", "editor"
    Column("note", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(200)),
    UniqueConstraint("provider", "model", "effective_from"),
)

# One rate of a version: `rate` dollars per `per` units, for calls above `tier_above` input tokens,
# in the standard or the batch variant (a batch call falls back to the standard rate of a unit).
prices = Table(
    "prices",
    metadata,
    Column("version_id", Integer, nullable=False),
    Column("unit", String(64), nullable=False),
    Column("tier_above", BigInteger, nullable=False, default=0),
    Column("variant", String(16), nullable=False, default="standard"),
    Column("rate", Rate, nullable=False),
    Column("per", BigInteger, nullable=False),
    PrimaryKeyConstraint("version_id", "unit", "tier_above", "variant"),
)

# How model names in calls map to priced models: exact names or fnmatch globs ("claude-3-5-haiku*").
model_patterns = Table(
    "model_patterns",
    metadata,
    Column("provider", String(64), nullable=False),
    Column("pattern", String(200), nullable=False),
    Column("model", String(200), nullable=False),
    Column("position", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("provider", "pattern"),
)


# Who changed what, when and why: every edit of prices, plans, customers, budgets and every
# reprice writes one row here, in the transaction of the change. ``before``/``after`` are JSON
# (money as decimal strings, never floats).
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("who", Text, nullable=False),
    Column("action", Text, nullable=False),  # "reprice", "edit", "verify", ...
    Column("table_name", Text, nullable=False),
    Column("key", Text, nullable=False),  # which rows of table_name: a model, a selection
    Column("before", JSON),
    Column("after", JSON),
    Column("note", Text),
    Index(None, "at"),
)

# --- Users & margins: what customers pay (dashboard/accounts.py reads and writes these) ---------

# A price plan: ``price`` per seat and ``period`` ("month" or "year"), in USD only (the store
# keeps one currency, so sums of revenue never mix them); ``included_usage``: the AI cost in
# dollars a customer's month includes; offered from ``active_from`` to ``active_to`` (days
# included; NULL: no bound).
plans = Table(
    "plans",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("price", Money, nullable=False),
    Column("period", String(8), nullable=False, default="month"),
    Column("currency", String(3), nullable=False, default="USD"),
    Column("included_usage", Money),
    Column("active_from", Date),
    Column("active_to", Date),
    CheckConstraint("period IN ('month', 'year')", name="period"),
    CheckConstraint("currency = 'USD'", name="currency_usd"),
)

# One subscription term of a customer: on ``plan`` from ``start`` to ``end`` (days included;
# NULL: still running), ``seats`` seats, ``discount_pct`` off the plan's price or a
# ``custom_price`` a month that replaces it. A plan change ends one term and starts the next,
# so a customer is several rows, one per start.
customers = Table(
    "customers",
    metadata,
    Column("customer_id", String(200), nullable=False),
    Column("start", Date, nullable=False),
    Column("name", Text, nullable=False),
    Column("plan", String(200)),
    Column("end", Date),
    Column("seats", Integer, nullable=False, default=1),
    Column("discount_pct", Percent, nullable=False, default=0),
    Column("custom_price", Money),
    PrimaryKeyConstraint("customer_id", "start"),
    ForeignKeyConstraint(["plan"], ["plans.name"]),
    CheckConstraint("seats >= 1", name="seats"),
)

# Whose user a user id (as calls.user_id names it) is: one customer per user id.
customer_users = Table(
    "customer_users",
    metadata,
    Column("user_id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Index(None, "customer_id"),
)

# Usage-based or one-off revenue of a customer for the days period_start to period_end
# (included). ``id`` is the source's (an invoice line) or made from the line's customer and days.
revenue = Table(
    "revenue",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("customer_id", String(200), nullable=False),
    Column("period_start", Date, nullable=False),
    Column("period_end", Date, nullable=False),
    Column("amount", Money, nullable=False),
    Column("note", Text),
    Index(None, "customer_id", "period_start"),
    Index(None, "period_start"),
)


# --- Budgets: a limit on the spend of a scope in a calendar period (tracking/budget_store.py) --

BUDGET_PERIODS = ("day", "week", "month")  # week: the ISO week, from Monday
DEFAULT_THRESHOLDS: tuple[int, ...] = (
    50,
    80,
    100,
)  # percents of the limit at which soft alerts fire

# One budget. Its scope is the columns user_id .. tag_value: each NULL means "any", so a budget
# with none set covers every call; customer_id covers the user ids customer_users gives it; a
# tag is a key and a value together (both NULL or neither). ``period`` starts at the calendar
# boundary in ``timezone`` (an IANA name). ``limit_usd`` is exact Money; ``thresholds`` a JSON
# list of whole percents in ascending order; ``hard``: the host app refuses calls beyond the
# limit; ``rollover``: a period's limit grows by what the previous period left unspent.
budgets = Table(
    "budgets",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("user_id", String(200)),
    Column("customer_id", String(200)),
    Column("feature", String(200)),
    Column("provider", String(64)),
    Column("model", String(200)),
    Column("tag_key", String(200)),
    Column("tag_value", Text),
    Column("period", String(8), nullable=False, default="month"),
    Column("timezone", String(64), nullable=False, default="UTC"),
    Column("limit_usd", Money, nullable=False),
    Column("thresholds", JSON, nullable=False, default=lambda: list(DEFAULT_THRESHOLDS)),
    Column("hard", Boolean, nullable=False, default=False),
    Column("rollover", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text),
    CheckConstraint("period IN ('day', 'week', 'month')", name="period"),
    CheckConstraint("limit_usd >= 0", name="limit_usd"),
    CheckConstraint("(tag_key IS NULL) = (tag_value IS NULL)", name="tag"),
)


# What-if scenarios saved by name: ``params`` holds the levers as JSON (money and rates as
# decimal strings, never floats), read back by the simulator exactly as saved.
scenarios = Table(
    "scenarios",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("params", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", Text),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", Text),
)

# Alerts already delivered: one row per alert (``alert_key``: what crossed, e.g. a budget, its
# period and threshold, or a scope's anomaly day) and channel ("webhook", "email"), so that a
# check run again, by cron or by the app, sends nothing twice.
alerts_sent = Table(
    "alerts_sent",
    metadata,
    Column("alert_key", String(400), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("sent_at", UTCDateTime, nullable=False),
    Column("detail", JSON),
    PrimaryKeyConstraint("alert_key", "channel"),
)


def _index(table: Table, *columns: str) -> Index:
    return next(ix for ix in table.indexes if tuple(ix.columns.keys()) == columns)


def postgresql_options() -> None:
    """The tables' PostgreSQL-only options, set on first use rather than at import.

    Any ``postgresql_*`` argument makes SQLAlchemy load its whole PostgreSQL dialect to check
    it (20 ms, a third of what ``import tracking`` cost the host). Only DDL made from this
    metadata reads them: Alembic's comparisons (migrations/env.py) and ``create_all`` (the
    listener below), so both call this first. The migrations spell the same options out.
    """
    # calls arrive in time order, and a BRIN index costs ingest almost nothing; summarized as
    # each block range fills, else a time range reads every page since the last VACUUM (0007)
    by_time = _index(calls, "occurred_at").dialect_options["postgresql"]
    by_time["using"] = "brin"
    by_time["with"] = {"autosummarize": "on"}
    calls.dialect_options["postgresql"]["partition_by"] = "RANGE (occurred_at)"
    # PostgreSQL ranks users from this index alone, in user order, instead of hashing a month
    # of rows (measured: bench/README.md, app pages)
    covering = _index(daily_user_rollups, "user_id", "day")
    covering.dialect_options["postgresql"]["include"] = [*PAGE_COUNTS, "cost_usd"]


@event.listens_for(metadata, "before_create")
def _before_create(_metadata: MetaData, connection: Connection, **_kw: Any) -> None:
    if connection.dialect.name == "postgresql":
        postgresql_options()
