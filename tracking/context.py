"""Attribution through contextvars: who and what a call is for, nestable and asyncio-safe.

A ContextVar is copied into each asyncio task when it is created and is not shared between
threads, so attribution set in one request never leaks into another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class Attribution:
    user_id: str | None = None
    feature: str | None = None
    tags: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    # the tags as a plain dict, validated once per block rather than once per call
    checked_tags: dict[str, dict[str, object]] = field(
        default_factory=dict, compare=False, repr=False
    )


EMPTY = Attribution()
_current: ContextVar[Attribution] = ContextVar("unitwise_attribution", default=EMPTY)


def current() -> Attribution:
    return _current.get()


@contextmanager
def attribute(
    user_id: str | None = None, feature: str | None = None, **tags: object
) -> Iterator[Attribution]:
    """Attribute the calls made inside the block; inner blocks override and add tags.

    Usable as ``with tracking.attribute(user_id="u_42", feature="summarize", team="growth"):``.
    """
    outer = _current.get()
    merged = dict(outer.tags)
    merged.update(tags)
    inner = Attribution(
        user_id=user_id if user_id is not None else outer.user_id,
        feature=feature if feature is not None else outer.feature,
        tags=MappingProxyType(merged),
    )
    token = _current.set(inner)
    try:
        yield inner
    finally:
        _current.reset(token)
