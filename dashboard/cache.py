"""Forgetting cached reads after a write. Most reads are ``st.cache_data`` results; the
margins report is kept as one shared object (``st.cache_resource``, read-only by its pages),
because pickling its 20,000 customers in and out of ``st.cache_data`` cost more than the
page's rendering. A write forgets both through ``forget``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

F = TypeVar("F", bound=Callable[..., Any])

_KEPT: list[Any] = []


def kept(ttl: int, show_spinner: bool | str = False) -> Callable[[F], F]:
    """``st.cache_resource`` with a ttl, registered for ``forget``. Callers must not change
    what it returns: every session shares the one object."""

    def wrap(fn: F) -> F:
        cached = st.cache_resource(ttl=ttl, show_spinner=show_spinner)(fn)
        _KEPT.append(cached)
        return cached  # type: ignore[return-value]

    return wrap


def forget() -> None:
    """After a write: every cached read of every page is stale."""
    st.cache_data.clear()
    for cached in _KEPT:
        cached.clear()
