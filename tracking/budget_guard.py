"""The process's view of its budgets: loaded from the store by a daemon thread, added to at once
by every call the process records, and read without I/O by ``check_budget``.

How fresh it is: this process's own calls count the moment they are recorded (a runaway loop is
stopped by its own calls). Other processes' calls count once they are in the store (their
writer's ``flush_interval``, 0.5 s by default) and this process has reloaded (every
``budget_refresh_interval``, 30 s by default): at most about their sum behind. A store that
does not answer keeps the last figures (plus this process's calls); before the first load every
call is allowed.

Counted once, exactly: each addition is kept with its call's id until a load finds that id in
the store. A load reads, in one snapshot (REPEATABLE READ on PostgreSQL, a read transaction
on SQLite), the spend and which of the pending ids are stored; the ids are taken after the
snapshot began and a call is added before it is queued, so a call is either in the snapshot's
spend and found (its addition dropped) or in neither (kept). A call the writer drops (queue
full) is taken away again; one that waits in the journal stays counted until it is stored.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from tracking.budget_check import ALLOWED, BudgetDecision
from tracking.budget_load import begin_snapshot, load_view, stored_ids
from tracking.budget_periods import period_at, rolled_limit
from tracking.budget_view import BudgetView, Entry, addition_key, tag_matches
from tracking.events import CallEvent
from tracking.ratelog import RateLimitedLog
from tracking.refresher import Refresher

ZERO = Decimal(0)


def _tag_applies(entry: Entry, value: object) -> bool:
    return value is not None and tag_matches(entry.budget.tag_value or "", value)


Added = dict[str, Decimal]  # addition_key(budget, period start) -> this process's spend


class BudgetGuard:
    """Budgets in memory; ``start`` begins the background loads (done at the first check)."""

    def __init__(
        self,
        engine: Callable[[], Engine],
        interval: float,
        logs: RateLimitedLog,
        clock: Callable[[], float] = time.time,
        watched: Callable[[str], AbstractContextManager[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._logs = logs
        # the writer's watchdog: a load from a store gone silent is given up, not waited on
        self._watched = watched or (lambda _what: nullcontext())
        self._clock = clock  # POSIX seconds (a test moves it across a period's end)
        self.interval = interval
        # swapped whole by a load, so a reader sees a view with its own additions
        self._state: tuple[BudgetView, Added] = (BudgetView(), {})
        # the additions not yet found in the store: call id -> (keys, cost)
        self._pending: dict[uuid.UUID, tuple[tuple[str, ...], Decimal]] = {}
        self._refresher = Refresher("budgets", self._load, interval, on_error=self._failed)
        self._init_runtime()
        _live_guards.add(self)

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()  # additions and the swap
        # one load at a time: two (the thread's and a host's refresh_budgets) would each take
        # away the same additions
        self._loading = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the caller's side: no I/O -------------------------------------------------------------
    def check(
        self,
        user_id: str | None,
        feature: str | None,
        customer_id: str | None,
        model: str | None,
        provider: str | None,
        tags: Mapping[str, object],
    ) -> BudgetDecision:
        if self._thread is None:  # a forked child's loads start at its first check
            self.start()
        view, added = self._state
        if not view.entries:
            return ALLOWED
        if customer_id is None and view.has_customers and user_id is not None:
            customer_id = view.customers.get(user_id)
        given = (user_id, customer_id, feature, provider, model)
        now = self._clock()
        hard: Entry | None = None
        soft: Entry | None = None
        hard_left = soft_left = ZERO
        # the loop of BudgetView.matching, written out: a check's time is mostly overhead
        for group in view.groups:
            found = group.by_values.get(group.values_of(given))
            if not found:
                continue
            tag_key = group.tag_key
            for entry in found:
                if tag_key is not None and not _tag_applies(entry, tags.get(tag_key)):
                    continue
                if now < entry.end_ts:
                    left = entry.left - added.get(entry.key, ZERO)
                else:
                    left = self._remaining(entry, added, now)
                if entry.budget.hard:
                    if hard is None or left < hard_left:
                        hard, hard_left = entry, left
                elif soft is None or left < soft_left:
                    soft, soft_left = entry, left
        if hard is not None:
            return BudgetDecision(hard_left > 0, hard_left, hard.budget.name)
        if soft is not None:
            return BudgetDecision(True, soft_left, soft.budget.name)
        return ALLOWED

    def _remaining(self, entry: Entry, added: Added, now: float) -> Decimal:
        if now < entry.end_ts:
            return entry.left - added.get(entry.key, ZERO)
        # a new period began since the load: it starts at the boundary, from this process's
        # calls in it (the store's figure comes with the next load)
        b = entry.budget
        period = period_at(b.period, b.timezone, datetime.fromtimestamp(now, UTC))
        limit = b.limit_usd
        if b.rollover and period.start == entry.period.end:
            limit = rolled_limit(limit, entry.spent + added.get(entry.key, ZERO))
        return limit - added.get(addition_key(b.name, period.start), ZERO)

    def add(self, event: CallEvent) -> None:
        """Count a call this process records in the budgets it falls under, at once."""
        view = self._state[0]
        cost = event.cost_usd
        if not view.entries or not cost:
            return
        user = event.user_id
        given = (user, view.customer_of(None, user), event.feature, event.provider, event.model)
        at = event.occurred_at.timestamp()
        keys = []
        for entry in view.matching(given, event.tags or {}):
            if at < entry.start_ts:
                continue  # recorded for an earlier period
            if at < entry.end_ts:
                keys.append(entry.key)
            else:
                b = entry.budget
                period = period_at(b.period, b.timezone, event.occurred_at)
                keys.append(addition_key(b.name, period.start))
        if keys:
            with self._lock:
                if event.id in self._pending:
                    return  # the same call_id recorded again: the store keeps it once
                self._pending[event.id] = (tuple(keys), cost)
                added = self._state[1]
                for key in keys:
                    added[key] = added.get(key, ZERO) + cost

    def forget(self, event: CallEvent) -> None:
        """Take back the addition of a call that will never be stored (dropped by the writer)."""
        with self._lock:
            self._take_back([event.id], self._state[1])

    def _take_back(self, ids: Iterable[uuid.UUID], added: Added) -> None:
        for call_id in ids:
            found = self._pending.pop(call_id, None)
            if found is None:
                continue
            keys, cost = found
            for key in keys:
                left = added.get(key, ZERO) - cost
                if left:
                    added[key] = left
                else:
                    added.pop(key, None)

    # -- the background loads ------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="unitwise-budgets", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        tick = min(self.interval, 1.0)
        while not self._stop.is_set():
            self._refresher.refresh_if_due()
            self._stop.wait(tick)

    def refresh(self) -> bool:
        """Load now (I/O on the calling thread); True if it loaded."""
        return self._refresher.refresh()

    def _load(self) -> BudgetView:
        with self._loading, self._watched("loading budgets"), self._engine().connect() as conn:
            begin_snapshot(conn)
            with self._lock:
                pending = list(self._pending)
            view = load_view(conn, datetime.fromtimestamp(self._clock(), UTC))
            stored = stored_ids(conn, pending)
            conn.rollback()
            with self._lock:
                added = dict(self._state[1])
                self._take_back(stored, added)
                self._state = (view, added)
            return view

    def _failed(self, exc: BaseException) -> None:
        self._logs.warning("budgets", "unitwise: could not load budgets: %s", exc)

    def stop(self, timeout: float = 1.0) -> None:
        """End the loads; waits up to ``timeout`` for one in progress (the thread is a daemon)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork(self) -> None:
        """A forked child gets its own lock and thread; it keeps the parent's figures."""
        self._init_runtime()
        self._refresher.after_fork()
        self._refresher.make_due()

    def status(self) -> dict[str, Any]:
        view = self._state[0]
        return {"loaded": view.loaded, "budgets": len(view.entries), **self._refresher.status()}


_live_guards: weakref.WeakSet[BudgetGuard] = weakref.WeakSet()


def _reinit_in_child() -> None:
    for guard in list(_live_guards):
        guard.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)
