"""Settings from arguments and the environment, resolved once at ``configure()``."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields
from pathlib import Path

ENV_URL = ("UNITWISE_DATABASE_URL", "DATABASE_URL")


def data_dir() -> Path:
    """Where the embedded store and the journal live unless told otherwise."""
    from platformdirs import user_data_dir

    return Path(os.environ.get("UNITWISE_DATA_DIR") or user_data_dir("unitwise", appauthor=False))


def default_sqlite_url() -> str:
    return f"sqlite:///{data_dir() / 'unitwise.db'}"


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else $UNITWISE_DATABASE_URL, else $DATABASE_URL, else the local SQLite."""
    if url:
        return url
    for name in ENV_URL:
        if os.environ.get(name):
            return os.environ[name]
    return default_sqlite_url()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def tracking_enabled() -> bool:
    """The kill switch: UNITWISE_TRACKING=off (or 0/false/no) turns tracking into a no-op."""
    return os.environ.get("UNITWISE_TRACKING", "on").strip().lower() not in {
        "off",
        "0",
        "false",
        "no",
    }


@dataclass(frozen=True)
class Settings:
    url: str
    journal_path: Path
    queue_size: int = 100_000
    batch_size: int = 10_000
    flush_interval: float = 0.5
    shutdown_timeout: float = 5.0
    price_refresh_interval: float = 60.0
    environment: str | None = None
    strict: bool = False
    enabled: bool = True
    max_tags_bytes: int = 4_096
    write_connections: int = 2  # PostgreSQL only: batches written at once, one per connection
    write_timeout: float = 60.0  # PostgreSQL: seconds a batch may take before it is journaled
    budget_refresh_interval: float = 30.0  # seconds between loads of the budgets' spend

    def __post_init__(self) -> None:
        """Refuse what would stop the writer quietly: a batch size of 0 takes empty batches
        forever, a negative interval spins, a queue of 0 drops every call."""
        for name in ("queue_size", "batch_size", "write_connections", "max_tags_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
        for name in (
            "flush_interval",
            "shutdown_timeout",
            "price_refresh_interval",
            "write_timeout",
            "budget_refresh_interval",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number of seconds, got {value!r}")
            # shutdown_timeout=0: never delay the host's exit, journal what is still queued
            least_ok = value >= 0 if name == "shutdown_timeout" else value > 0
            if not (least_ok and value < math.inf):
                kind = "non-negative" if name == "shutdown_timeout" else "positive"
                raise ValueError(f"{name} must be a {kind}, finite number of seconds, got {value}")


# configure()'s **options: every setting but the three it takes by name
_OPTIONS = frozenset(f.name for f in fields(Settings)) - {"url", "journal_path", "queue_size"}


def build_settings(
    url: str | None = None,
    journal_path: str | os.PathLike[str] | None = None,
    queue_size: int | None = None,
    **options: object,
) -> Settings:
    """Merge explicit options over the environment (ValueError names a bad or unknown one)."""
    unknown = sorted(set(options) - _OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_OPTIONS))}"
        )
    kwargs = dict(options)
    journal = Path(
        journal_path or os.environ.get("UNITWISE_JOURNAL_PATH") or data_dir() / "journal.jsonl"
    )
    kwargs.setdefault("strict", env_flag("UNITWISE_STRICT"))
    kwargs.setdefault("enabled", tracking_enabled())
    kwargs.setdefault("environment", os.environ.get("UNITWISE_ENVIRONMENT") or None)
    size = queue_size if queue_size is not None else _env_count("UNITWISE_QUEUE_SIZE", 100_000)
    return Settings(
        url=_readable_url(url),
        journal_path=journal,
        queue_size=size,
        **kwargs,  # type: ignore[arg-type]
    )


def _env_count(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw.replace("_", ""))
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _readable_url(url: str | None) -> str:
    """The store's URL, checked now: a malformed one (``$DATABASE_URL`` is often set for the
    host's own database) is refused with where it came from, not at the first write."""
    from sqlalchemy.exc import ArgumentError

    from tracking.db import normalize_url

    found = resolve_url(url)
    try:
        normalize_url(found)
    except ArgumentError:
        source = "url" if url else next((n for n in ENV_URL if os.environ.get(n)), "url")
        # not the URL itself: it may hold a password, and this is logged and shown in stats()
        raise ValueError(f"{source} is not a database URL (expected dialect://...)") from None
    return found
