"""The local journal: where calls wait, in order, while the store cannot take them.

One JSON line per event. Appends and replays hold an exclusive ``flock``, so several processes can
share one journal file; each append is fsync'd before it returns, so a batch that reached the
journal survives a crash. Calls the store refused (a value it cannot hold) are set aside beside it,
in ``<journal>.refused``: replaying them as they are would fail again, and hold up every call after.
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

    @property
    def refused_path(self) -> Path:
        """Where calls the store refused wait for an operator: ``<journal>.refused``."""
        return self.path.with_suffix(self.path.suffix + ".refused")

    @contextmanager
    def _locked(self, mode: str, path: Path | None = None) -> Iterator[object]:
        path = path or self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        binary = "b" in mode  # unbuffered: a failed write leaves nothing to retry at close
        with open(
            path, mode, buffering=0 if binary else -1, encoding=None if binary else "utf-8"
        ) as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield handle
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append(self, events: Sequence[CallEvent]) -> None:
        """Append the events and fsync them (raises OSError if the disk refuses)."""
        if events:
            self._append(self.path, "".join(e.to_json() + "\n" for e in events))

    def set_aside(self, refused: Sequence[tuple[CallEvent, str]]) -> None:
        """Keep calls the store refused, which would fail again as they are, for an operator to
        see, fix and replay: one JSON line each, ``{"error": why, "call": <as in the journal>}``,
        fsync'd like the journal (raises OSError if the disk refuses)."""
        if refused:
            lines = (f'{{"error":{json.dumps(why)},"call":{e.to_json()}}}\n' for e, why in refused)
            self._append(self.refused_path, "".join(lines))

    def _append(self, path: Path, text: str) -> None:
        """Append whole lines under the file's lock and fsync them; a failed write leaves none."""
        data = text.encode("utf-8")
        with self._locked("a+b", path) as handle:
            size = handle.seek(0, os.SEEK_END)  # type: ignore[attr-defined]
            if size:  # a line torn by a crash must not swallow the first event appended here
                handle.seek(size - 1)  # type: ignore[attr-defined]
                if handle.read(1) != b"\n":  # type: ignore[attr-defined]
                    data = b"\n" + data
            try:
                left = memoryview(data)
                while left:
                    left = left[handle.write(left) :]  # type: ignore[attr-defined]
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
        """Hand the journal's events to ``write`` in order, then empty it; returns how many.

        If ``write`` raises, the journal is left whole (writes are idempotent, so events already
        stored are skipped at the next replay). A line that is not a readable event (a torn
        last line after a crash) is kept aside in ``<journal>.bad`` rather than dropped.
        """
        if not self.pending():
            return 0
        with self._locked("a+") as handle:
            handle.seek(0)  # type: ignore[attr-defined]
            lines = handle.read().splitlines()  # type: ignore[attr-defined]
            events: list[CallEvent] = []
            bad: list[str] = []
            for line in lines:
                if not line.strip():
                    continue
                try:
                    events.append(CallEvent.from_json(line))
                except (ValueError, TypeError, KeyError):
                    bad.append(line)
            for start in range(0, len(events), batch_size):
                write(events[start : start + batch_size])
            if bad:
                with open(self.path.with_suffix(self.path.suffix + ".bad"), "a") as quarantine:
                    quarantine.write("\n".join(bad) + "\n")
            handle.truncate(0)  # type: ignore[attr-defined]
            handle.flush()  # type: ignore[attr-defined]
            os.fsync(handle.fileno())  # type: ignore[attr-defined]
        return len(events)
