"""The local journal: appends that survive torn lines and full disks, replays that never hold the
journal while they wait on the store, and a cut that keeps what was appended meanwhile."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.test_refusals import stored_users
from tests.test_writer import call, empty_pg_store, rollups_locked, writer_for
from tracking.events import CallEvent
from tracking.journal import Journal


def users(events: list[CallEvent]) -> list[str | None]:
    return [e.user_id for e in events]


def test_an_append_after_a_torn_line_keeps_its_first_call(tmp_path) -> None:
    """A crash mid-append leaves a line without its newline: the next append must not glue its
    first event onto that fragment (replay would then set both aside as one bad line)."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([call("before")])
    with open(journal.path, "a") as handle:
        handle.write('{"id": "torn by a cra')  # killed in the middle of a write
    after = [call("after") for _ in range(3)]
    journal.append(after)  # the next process, after the restart
    replayed: list[CallEvent] = []
    assert journal.replay(replayed.extend) == 4
    assert [e.id for e in replayed if e.user_id == "after"] == [e.id for e in after]
    assert journal.path.with_suffix(".jsonl.bad").read_text().startswith('{"id": "torn')


def test_a_refused_append_leaves_the_journal_as_it_was(tmp_path, monkeypatch) -> None:
    """A disk that fills up mid-write: the caller counts the batch as dropped, so no part of it
    may stay behind (to be replayed after all, or to tear the next append)."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([call("kept")])
    size = journal.path.stat().st_size

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as m:
        m.setattr("tracking.journal.os.fsync", full_disk)
        with pytest.raises(OSError):
            journal.append([call("lost") for _ in range(3)])
    assert journal.path.stat().st_size == size
    replayed: list[CallEvent] = []
    journal.replay(replayed.extend)
    assert users(replayed) == ["kept"]


def test_calls_appended_while_a_replay_writes_are_kept_for_the_next(tmp_path) -> None:
    """The replay holds no lock while it writes: another append goes through at once, and the
    cut afterwards removes only what was replayed."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([call("old") for _ in range(3)])
    appended = threading.Event()

    def write(events: list[CallEvent]) -> None:  # a slow store, meanwhile a lane spills
        spill = threading.Thread(target=journal.append, args=([call("new")],))
        spill.start()
        spill.join(5)
        appended.set()

    assert journal.replay(write) == 3
    assert appended.is_set()
    again: list[CallEvent] = []
    assert journal.replay(again.extend) == 1
    assert users(again) == ["new"]
    assert not journal.pending()


def test_a_rest_longer_than_the_replayed_part_is_left_whole_then_replayed_again(tmp_path) -> None:
    """Writing the rest over the replayed bytes is safe only while it is no longer than them:
    otherwise the whole journal stays, and the next replay re-sends the old part (idempotent)."""
    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([call("old")])

    def write(events: list[CallEvent]) -> None:
        journal.append([call("new") for _ in range(5)])

    assert journal.replay(write) == 1
    again: list[CallEvent] = []
    assert journal.replay(again.extend) == 6
    assert users(again) == ["old"] + ["new"] * 5
    assert not journal.pending()


def test_one_process_replays_at_a_time(tmp_path) -> None:
    """Two processes sharing a journal: while one replays, the other skips (it would otherwise
    cut bytes the first one never replayed)."""
    journal, other = Journal(tmp_path / "j.jsonl"), Journal(tmp_path / "j.jsonl")
    journal.append([call("a"), call("b")])
    seen: list[int] = []

    def write(events: list[CallEvent]) -> None:
        seen.append(other.replay(lambda _: None))

    assert journal.replay(write) == 2
    assert seen == [0]
    assert not journal.pending()


@pytest.mark.postgres
def test_shutdown_is_bounded_while_the_journal_replay_is_stuck_in_the_store(
    pg_url, tmp_path
) -> None:
    """A replay stuck on a lock in the store must not hold the journal: shutdown journals what
    is left within its timeout instead of waiting out the replay (write_timeout per batch)."""
    empty_pg_store(pg_url)
    writer = writer_for(pg_url, tmp_path, write_timeout=8)
    try:
        with rollups_locked(pg_url, writer) as release:
            writer.journal.append([call("stuck") for _ in range(20)])  # an earlier outage's
            time.sleep(0.5)  # the writer is replaying them now, stuck on the locked row
            for _ in range(10):
                writer.put(call("free"))
            started = time.monotonic()
            writer.shutdown(timeout=1)
            elapsed = time.monotonic() - started
            release()
    finally:
        writer.shutdown(timeout=1)
    assert elapsed < 4, f"shutdown(timeout=1) took {elapsed:.1f} s"
    journaled = writer.journal.path.read_text().count('"user_id":"free"')
    assert journaled + stored_users(pg_url, "free") == 10


def test_a_journal_named_by_two_paths_loses_no_call(tmp_path) -> None:
    """Two processes name one journal by two paths (a symlinked file, as deploy tools make):
    each takes the replay lock beside its own name, so both may replay at once; the second cut
    must not remove bytes it never replayed (calls spilled meanwhile)."""
    real = tmp_path / "journal.jsonl"
    link = tmp_path / "current-journal.jsonl"
    a, b = Journal(real), Journal(real)
    a.append([call("old") for _ in range(3)])
    link.symlink_to(real)
    other = Journal(link)
    spiller = Journal(real)  # a third process's lane, spilling while the store is slow
    stored: list[CallEvent] = []

    def write_b(events: list[CallEvent]) -> None:
        stored.extend(events)
        spiller.append([call("new") for _ in range(3)])  # same size as what was replayed

    def write_a(events: list[CallEvent]) -> None:
        stored.extend(events)
        other.replay(write_b)  # the other process, at the same moment

    assert a.replay(write_a) == 3
    left: list[CallEvent] = []
    b.replay(left.extend)
    assert users(stored + left).count("new") == 3, "calls spilled during the replay were cut"


def test_the_cut_is_durable_before_the_journal_is_shortened(tmp_path, monkeypatch) -> None:
    """The cut writes the rest over the start, then shortens the file: the overwrite must be on
    disk first, or a power loss could keep the shorter size over the old, replayed bytes and
    lose the rest (calls appended meanwhile, fsync'd by their appender)."""
    import tracking.journal as journal_module

    journal = Journal(tmp_path / "journal.jsonl")
    journal.append([call("old") for _ in range(4)])
    ops: list[str] = []
    real_open = open

    class Recorded:
        def __init__(self, handle) -> None:
            self._h = handle

        def __enter__(self):
            self._h.__enter__()
            return self

        def __exit__(self, *exc):
            return self._h.__exit__(*exc)

        def fileno(self):
            return self._h.fileno()

        def seek(self, *a):
            return self._h.seek(*a)

        def read(self, *a):
            return self._h.read(*a)

        def write(self, data):
            ops.append("write")
            return self._h.write(data)

        def truncate(self, *a):
            ops.append("truncate")
            return self._h.truncate(*a)

    def recording_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return Recorded(handle) if "r+" in mode else handle

    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        ops.append("fsync")
        real_fsync(fd)

    def write(events: list[CallEvent]) -> None:
        journal.append([call("new")])  # appended (and fsync'd) while the replay writes

    monkeypatch.setattr(journal_module, "open", recording_open, raising=False)
    monkeypatch.setattr(journal_module.os, "fsync", fsync)
    ops.clear()
    journal.replay(write)
    assert "truncate" in ops and "write" in ops, ops  # the cut ran, and moved the rest
    before_truncate = ops[: ops.index("truncate")]
    assert before_truncate[-1] == "fsync", f"no fsync between overwrite and truncate: {ops}"
