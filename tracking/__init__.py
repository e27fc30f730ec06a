"""Unitwise tracking: log every AI API call with its usage and cost, without slowing the host.

import tracking
tracking.configure()                       # $UNITWISE_DATABASE_URL, else the local SQLite
with tracking.attribute(user_id="u_42", feature="summarize"):
    tracking.record(provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300)
"""

from tracking.client import (
    configure,
    flush,
    record,
    refresh_prices,
    shutdown,
    stats,
    track,
    tracked,
)
from tracking.context import attribute

__all__ = [
    "attribute",
    "configure",
    "flush",
    "record",
    "refresh_prices",
    "shutdown",
    "stats",
    "track",
    "tracked",
]
