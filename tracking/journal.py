"""The local journal: where calls wait, in order, while the store cannot take them.

One JSON line per event. Appends hold an exclusive ``flock`` (a replay holds it only to read and
to cut what it replayed), so several processes can share one journal file; each append is fsync'd
before it returns, so a batch that reached the journal survives a crash. Calls the store refused
(a value it cannot hold) are set aside beside it, in ``<journal>.refused``: replaying them as they
are would fail again, and hold up every call after.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tracking.events import CallEvent


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def beside(self, suffix: str) -> Path:
        """A file next to the journal: ``<journal><suffix>``."""
        return self.path.with_suffix(self.path.suffix + suffix)

    @property
    def refused_path(self) -> Path:
        """Where calls the store refused wait for an operator: ``<journal>.refused``."""
        return self.beside(".refused")

    @contextmanager
    def _locked(self, mode: str, path: Path | None = None) -> Iterator[object]:
        """A binary file, unbuffered (a failed write leaves nothing to retry at close), under
        its exclusive lock."""
        path = path or self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, mode, buffering=0) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, events: Sequence[CallEvent]) -> None:
        """Append the events and fsync them (raises OSError if the disk refuses)."""
        if events:
            self._append(self.path, "".join(e.to_json() + "\n" for e in events).encode())

    def set_aside(self, refused: Sequence[tuple[CallEvent, str]]) -> None:
        """Keep calls the store refused, which would fail again as they are, for an operator to
        see, fix and replay: one JSON line each, ``{"error": why, "call": <as in the journal>}``,
        fsync'd like the journal (raises OSError if the disk refuses)."""
        if refused:
            lines = (f'{{"error":{json.dumps(why)},"call":{e.to_json()}}}\n' for e, why in refused)
            self._append(self.refused_path, "".join(lines).encode())

    def _append(self, path: Path, data: bytes) -> None:
        """Append whole lines under the file's lock and fsync them; a failed write leaves none."""
        with self._locked("a+b", path) as handle:
            size = handle.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
            if size:  # a line torn by a crash must not swallow the first event appended here
                handle.seek(size - 1)  # type: ignore[attr-defined]
                if handle.read(1) != b"\n":  # type: ignore[attr-defined]
                    data = b"\n" + data
            try:
                _write_all(handle, data)
                os.fsync(handle.fileno())  # type: ignore[attr-defined]
            except OSError:  # counted as dropped by the caller: leave no part of it behind
                handle.truncate(size)  # type: ignore[attr-defined]
                raise

    def pending(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def replay(self, write: Callable[[list[CallEvent]], object], batch_size: int = 5000) -> int:
        """Hand the journal's events to ``write`` in order, then remove them; returns how many.

        The journal's lock is held only to read it and, afterwards, to cut what was replayed:
        never while ``write`` waits on the store, so calls journaled meanwhile (a lane's failed
        batch, shutdown's leftovers, another process) never wait for a slow replay. One
        process replays at a time (a second lock file). If ``write`` raises, the journal is left
        whole (writes are idempotent: events already stored are skipped at the next replay). A
        line that is not a readable event (a line torn by a crash) is kept aside in
        ``<journal>.bad`` rather than dropped.
        """
        if not self.pending():
            return 0
        with self._replaying() as alone:
            if not alone:
                return 0  # another process is replaying this journal
            with self._locked("rb") as handle:
                data: bytes = handle.read()  # type: ignore[attr-defined]
            events: list[CallEvent] = []
            bad: list[bytes] = []
            for line in data.splitlines():
                if not line.strip():
                    continue
                try:
                    events.append(CallEvent.from_json(line.decode()))
                except (ValueError, TypeError, KeyError):  # UnicodeDecodeError is a ValueError
                    bad.append(line)
            for start in range(0, len(events), batch_size):
                write(events[start : start + batch_size])
            if bad:
                self._append(self.beside(".bad"), b"\n".join(bad) + b"\n")
            self._cut(data)
        return len(events)

    def _cut(self, replayed_data: bytes) -> None:
        """Remove the replayed bytes from the start, keeping what was appended after them.

        The rest is written over the start of the file in place (not to a new file, which the
        appenders of other processes would not see). Only while it is no longer than what it
        overwrites, so that until the file is cut short its original tail still holds all of
        it: a crash in between leaves duplicates (skipped at replay), never a loss. A longer
        rest is left for the next replay, which then re-sends the replayed part, harmlessly.

        Nothing is cut unless the file still starts with what was replayed: a second replayer
        (the same file named by another path takes another replay lock) may have cut it since.
        The overwrite is fsync'd before the file is shortened: a power loss in between must not
        keep the shorter size without the rest.
        """
        replayed = len(replayed_data)
        with self._locked("r+b") as handle:
            if _read_exactly(handle, replayed) != replayed_data:
                return
            rest: bytes = handle.read()  # type: ignore[attr-defined]
            if len(rest) > replayed:
                return
            handle.seek(0)  # type: ignore[attr-defined]
            _write_all(handle, rest)
            os.fsync(handle.fileno())  # type: ignore[attr-defined]
            handle.truncate(len(rest))  # type: ignore[attr-defined]
            os.fsync(handle.fileno())  # type: ignore[attr-defined]

    @contextmanager
    def _replaying(self) -> Iterator[bool]:
        """A non-blocking exclusive lock on ``<journal>.replay``: True if this process has it."""
        with open(self.beside(".replay"), "a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read_exactly(handle: object, size: int) -> bytes:
    """Read ``size`` bytes, or up to the end (an unbuffered read may return fewer)."""
    parts: list[bytes] = []
    while size > 0:
        part: bytes = handle.read(size)  # type: ignore[attr-defined]
        if not part:
            break
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


def _write_all(handle: object, data: bytes) -> None:
    """Write every byte (an unbuffered file may take only part of a write)."""
    left = memoryview(data)
    while left:
        left = left[handle.write(left) :]  # type: ignore[attr-defined]
