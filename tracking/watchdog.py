"""A watchdog over the writer's store operations: it ends a wait on a store gone silent.

A pooler or a NAT that stops forwarding without closing leaves a connection blocked in
``recv()``: the kernel of the silent peer still acknowledges what is sent, so neither TCP
keepalives nor ``tcp_user_timeout`` end the wait, nor can a server-side statement_timeout
(the server never sees the statement). A ``cancel()`` would dial through the same silent hop.
So each store operation runs under a deadline; a thread past it has the sockets of its
connections shut down (``shutdown(2)`` on a duplicate of the descriptor, which the blocked
``recv()`` sees at once), the driver raises, and the writer journals the batch as for any
outage. Connections idle in the pool are shut down too: the pool's pre-ping runs before a
connection is handed out, so a thread stuck in it owns none yet, and a dead idle connection
only costs the next checkout a reconnect.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy import Engine, event


class StoreTimeout(Exception):
    """A store operation that did not finish within the watchdog's bound."""


class Watchdog:
    """Deadlines of the threads now in a store operation, and the connections each holds."""

    def __init__(self, limit: float, on_fire: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self._on_fire = on_fire
        self._reset()

    def _reset(self) -> None:
        """State that belongs to one process."""
        self._lock = threading.Lock()
        self._deadlines: dict[int, float] = {}  # thread ident -> monotonic deadline
        self._fired: set[int] = set()
        self._live: dict[int, Any] = {}  # id(dbapi connection) -> the connection
        self._owners: dict[int, int] = {}  # id(dbapi connection) -> thread ident
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def watch(self, engine: Engine) -> None:
        """Follow the engine's connections: made, handed out, given back, closed."""
        event.listen(engine, "connect", self._connected)
        event.listen(engine, "checkout", self._checked_out)
        event.listen(engine, "checkin", self._checked_in)
        event.listen(engine, "close", self._closed)
        event.listen(engine, "close_detached", self._closed_detached)

    def after_fork(self) -> None:
        """A child has no watchdog thread, and the parent's connections are not its own."""
        self._reset()

    @contextlib.contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Run a store operation under the deadline; one the watchdog ended raises
        ``StoreTimeout`` (from the driver's error), however the driver reported it."""
        if self._pid != os.getpid():
            self.after_fork()
        ident = threading.get_ident()
        with self._lock:
            self._deadlines[ident] = time.monotonic() + self.limit
            self._fired.discard(ident)
        self._ensure_thread()
        try:
            yield
        except Exception as exc:
            with self._lock:
                fired = ident in self._fired
            if fired:
                raise StoreTimeout(
                    f"the store did not answer {what} within {self.limit:g} s: "
                    "its connection was abandoned"
                ) from exc
            raise
        finally:
            with self._lock:
                self._deadlines.pop(ident, None)
                self._fired.discard(ident)

    # -- the engine's events ---------------------------------------------------------------------
    def _connected(self, dbapi_conn: Any, _record: Any) -> None:
        with self._lock:
            self._live[id(dbapi_conn)] = dbapi_conn

    def _checked_out(self, dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        with self._lock:
            self._owners[id(dbapi_conn)] = threading.get_ident()

    def _checked_in(self, dbapi_conn: Any, _record: Any) -> None:
        with self._lock:
            self._owners.pop(id(dbapi_conn), None)

    def _closed(self, dbapi_conn: Any, _record: Any) -> None:
        self._closed_detached(dbapi_conn)

    def _closed_detached(self, dbapi_conn: Any) -> None:
        with self._lock:
            self._live.pop(id(dbapi_conn), None)
            self._owners.pop(id(dbapi_conn), None)

    # -- the watchdog thread ---------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="unitwise-watchdog", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                late = [t for t, d in self._deadlines.items() if d <= now and t not in self._fired]
                pending = [d for t, d in self._deadlines.items() if t not in self._fired]
            for ident in late:
                self._abandon(ident)
            wait = min(pending, default=now + 1.0) - time.monotonic()
            time.sleep(max(0.01, min(wait, 1.0)))

    def _abandon(self, ident: int) -> None:
        """End the late thread's wait: shut down its connections' sockets, and the idle ones'."""
        with self._lock:
            self._fired.add(ident)
            targets = [
                conn for key, conn in self._live.items() if self._owners.get(key) in (ident, None)
            ]
        for conn in targets:
            shut_down_socket(conn)
        if self._on_fire is not None:
            self._on_fire()


def shut_down_socket(dbapi_conn: Any) -> None:
    """``shutdown(2)`` the connection's socket (through a duplicate of its descriptor, closed
    after): a thread blocked reading it wakes with an error, the driver's state stays sound."""
    try:
        fd = dbapi_conn.fileno()
    except Exception:  # closed already
        return
    try:
        copy = os.dup(fd)
    except OSError:
        return
    try:
        sock = socket.socket(fileno=copy)
    except OSError:
        os.close(copy)
        return
    with sock, contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
