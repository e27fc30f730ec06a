"""The writer's helper threads: one prepares the next batch, the delivery lanes write them."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from tracking.events import CallEvent
from tracking.store import PreparedBatch, prepare_batch

log = logging.getLogger("unitwise")


class DeliveryLanes:
    """A fixed set of daemon threads that run the batches handed to them, in any free lane.

    Not a ThreadPoolExecutor: Python joins its threads at exit, so a delivery stuck on a store
    that stopped answering would hold the host's exit forever. Daemon lanes leave the bound to
    the exit flush (``shutdown_timeout``), which journals what is still in flight.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[tuple[Future[None], Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        for lane in range(size):
            threading.Thread(target=self._run, name=f"{name}-{lane}", daemon=True).start()

    def submit(self, fn: Callable[..., None], *args: Any) -> Future[None]:
        future: Future[None] = Future()
        self._jobs.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            future, fn, args = self._jobs.get()
            if fn is _stop_lane:
                return
            future.set_running_or_notify_cancel()
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # handed to whoever waits on the future
                future.set_exception(exc)

    def shutdown(self) -> None:
        """Let each lane end once the batches handed to it are done."""
        for _ in range(self.size):
            self._jobs.put((Future(), _stop_lane, ()))


def _stop_lane() -> None:
    """The job that ends a lane."""


def settle(writing: set[Future[None]]) -> None:
    """Wait for the batches in flight (their delivery never raises: failures are journaled)."""
    wait(writing)
    writing.clear()


class Preparer:
    """The pipeline's middle stage: prices and serialises the next batch in a thread of its
    own while the writer thread hands out the one before it."""

    def __init__(self, price: Callable[[list[CallEvent]], None], postgres: bool) -> None:
        self._price = price
        self._postgres = postgres
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, events: list[CallEvent]) -> Future[PreparedBatch]:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="unitwise-prepare")
        try:
            return self._pool.submit(self.prepare, events)
        except RuntimeError:  # interpreter shutting down: prepare here instead
            future: Future[PreparedBatch] = Future()
            future.set_result(self.prepare(events))
            return future

    def prepare(self, events: list[CallEvent]) -> PreparedBatch:
        """Price and serialise a batch; on any bug, hand back the plain events (never lose them)."""
        try:
            self._price(events)
            return prepare_batch(events, self._postgres)
        except Exception as exc:
            log.exception("unitwise: preparing a batch failed, writing it plainly: %s", exc)
            return PreparedBatch.of_plain(events)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
