"""Settings from arguments and the environment, resolved once at ``configure()``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
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


def _env_flag(name: str) -> bool:
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
    extra: dict[str, object] = field(default_factory=dict)


def build_settings(
    url: str | None = None,
    journal_path: str | os.PathLike[str] | None = None,
    queue_size: int | None = None,
    **options: object,
) -> Settings:
    """Merge explicit options over the environment; unknown options are kept in ``extra``."""
    known = {
        "batch_size",
        "flush_interval",
        "shutdown_timeout",
        "price_refresh_interval",
        "environment",
        "strict",
        "enabled",
        "max_tags_bytes",
        "write_connections",
        "write_timeout",
    }
    kwargs = {k: v for k, v in options.items() if k in known}
    extra = {k: v for k, v in options.items() if k not in known}
    journal = Path(
        journal_path or os.environ.get("UNITWISE_JOURNAL_PATH") or data_dir() / "journal.jsonl"
    )
    kwargs.setdefault("strict", _env_flag("UNITWISE_STRICT"))
    kwargs.setdefault("enabled", tracking_enabled())
    kwargs.setdefault("environment", os.environ.get("UNITWISE_ENVIRONMENT") or None)
    size = queue_size or int(os.environ.get("UNITWISE_QUEUE_SIZE", "0") or 0) or 100_000
    return Settings(
        url=resolve_url(url),
        journal_path=journal,
        queue_size=size,
        extra=extra,
        **kwargs,  # type: ignore[arg-type]
    )
