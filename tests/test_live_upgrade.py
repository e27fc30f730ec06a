"""A store upgraded while writers run (issue 20): nothing recorded meanwhile is lost or doubled.

The operator's path, for real: a store at an older revision, tracking's writer recording from 4
host threads, and ``python -m tracking migrate`` run in another process in the middle. While the
store lacks what the writer needs (a store at 0001 has no narrower rollups) or is locked by the
migration (SQLite), the writer journals and replays once the store is current; afterwards every
call id is stored exactly once and every rollup equals the sums over the calls.

Also here: the previous release's writer (``PREVIOUS_RELEASE``, its code unpacked from git and
run in a process of its own) while this release's CLI upgrades its store; several ``migrate``
runs at once (replicas, and on SQLite the writer's own upgrade of its embedded store); an
embedded store a later release has migrated; PostgreSQL partitions made and moved under two
writers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

import tracking
from tests.conftest import add_test_prices, assert_rollups_equal_the_calls, new_pg_database
from tracking.db import make_engine
from tracking.migrate import alembic_config, upgrade
from tracking.schema import call_ids, calls

ROOT = Path(__file__).resolve().parent.parent
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
THREADS = 4


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (not the suite's shared store): no schema at all yet."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'upgraded.db'}"
        return
    with new_pg_database("unitwise_upgrade") as url:
        yield url


def migrate_to(url: str, revision: str) -> None:
    engine = make_engine(url)
    upgrade(engine, revision)
    engine.dispose()


def revision_of(url: str) -> str:
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    engine.dispose()
    return str(found)


def migrate_cli(url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """``python -m tracking migrate --url URL`` in a process of its own; (result, seconds)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tracking", "migrate", "--url", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, time.monotonic() - began


@dataclass
class Recorders:
    """Host threads recording calls with ids of their own, at about 4,000 calls/s in all."""

    ids: list[list[str]] = field(default_factory=lambda: [[] for _ in range(THREADS)])
    errors: list[BaseException] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    moments: tuple[datetime, ...] = ()  # occurred_at in turn (default: now)

    def start(self) -> None:
        self.threads = [threading.Thread(target=self._run, args=(n,)) for n in range(THREADS)]
        for t in self.threads:
            t.start()

    def _run(self, n: int) -> None:
        mine = self.ids[n]
        while not self.stop.is_set():
            call_id = str(uuid.uuid4())
            try:
                tracking.record(
                    provider="openai",
                    model="gpt-4o",
                    input_tokens=100 + len(mine) % 7,
                    output_tokens=20,
                    user_id=f"u{n}",
                    feature=("chat", "search")[len(mine) % 2],
                    call_id=call_id,
                    **self._when(len(mine)),
                )
            except BaseException as exc:  # the host must never see one: collected, asserted
                self.errors.append(exc)
                return
            mine.append(call_id)
            time.sleep(0.001)

    def _when(self, n: int) -> dict[str, datetime]:
        return {"occurred_at": self.moments[n % len(self.moments)]} if self.moments else {}

    def finish(self) -> set[str]:
        self.stop.set()
        for t in self.threads:
            t.join()
        recorded = [i for mine in self.ids for i in mine]
        assert len(set(recorded)) == len(recorded)
        return set(recorded)

    def count(self) -> int:
        return sum(len(mine) for mine in self.ids)


def stored_id_counts(url: str) -> tuple[Counter[str], int]:
    """How many rows each call id has in ``calls``, and how many ids ``call_ids`` holds."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = Counter(str(i) for i in conn.execute(select(calls.c.id)).scalars())
        guards = conn.execute(select(func.count()).select_from(call_ids)).scalar_one()
    engine.dispose()
    return rows, int(guards)


def assert_each_call_once(url: str, recorded: set[str]) -> None:
    rows, guards = stored_id_counts(url)
    lost = recorded - set(rows)
    doubled = [i for i, n in rows.items() if n > 1]
    extra = set(rows) - recorded
    assert (len(lost), len(doubled), len(extra)) == (0, 0, 0), (lost, doubled, extra)
    assert guards == len(recorded)
    engine = make_engine(url)
    assert_rollups_equal_the_calls(engine)
    engine.dispose()


def flushed_stats() -> dict:
    """Flush, also what the journal holds (a flush does not wait for a store the writer
    saw fail: it retries after its backoff), and shut the writer down; its last stats()."""
    deadline = time.monotonic() + 60
    while True:
        flushed = tracking.flush(timeout=60)
        stats = tracking.stats()
        if not stats["journal_pending"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tracking.shutdown(timeout=5)
    assert flushed, stats
    return stats


def assert_nothing_lost(url: str, recorded: set[str], stats: dict, errors: list) -> None:
    """The store at head, the host saw no exception, nothing dropped, refused or left in the
    journal, every recorded call stored once, the rollups equal to the calls."""
    assert revision_of(url) == HEAD
    assert errors == []
    assert stats["dropped"] == 0 and stats["refused"] == 0, stats
    assert stats["journal_pending"] == 0, stats
    assert_each_call_once(url, recorded)


@pytest.mark.parametrize("start", ["0005", "0001"])
def test_a_store_upgraded_by_the_cli_while_four_threads_record_loses_nothing(
    fresh_url: str, tmp_path: Path, start: str
) -> None:
    """The store at ``start`` (0005: the previous schema; 0001: the oldest), the writer
    recording, the CLI upgrading it to head in the middle: every call stored once.

    PostgreSQL from 0001: this release's writer fails on the missing rollup tables, journals,
    and replays once the CLI has run. SQLite: the writer upgrades its embedded store itself
    before its first batch, so the CLI finds it at head and holds the lock only to load the
    price catalogue, while the writer's batches wait for it (the previous release's writer
    below meets a real migration)."""
    migrate_to(fresh_url, start)
    tracking.configure(
        url=fresh_url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
    )
    recorders = Recorders()
    try:
        recorders.start()
        time.sleep(1.0)
        before = tracking.stats()
        done, took = migrate_cli(fresh_url)
        during = tracking.stats()
        time.sleep(1.0)
    finally:
        recorded = recorders.finish()
    stats = flushed_stats()
    assert done.returncode == 0, done.stderr
    assert stats["enqueued"] == len(recorded)
    assert_nothing_lost(fresh_url, recorded, stats, recorders.errors)
    journaled = during["spilled"] - before["spilled"]
    print(
        f"\n{start}->{HEAD}: {len(recorded)} calls, lost 0, doubled 0; journaled before the"
        f" upgrade {before['spilled']}, during it {journaled}, in all {stats['spilled']};"
        f" replayed {stats['replayed']}; the CLI took {took:.2f} s",
        end=" ",
    )


# main just before migration 0006 landed: its ``tracking`` knows revisions 0001..0005 only
PREVIOUS_RELEASE = "bad20f220f5af7ed900b885c075ffb02cb552d23"
HOST = Path(__file__).with_name("upgrade_host.py")


@pytest.fixture(scope="module")
def previous_tracking(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tracking`` package of ``PREVIOUS_RELEASE``, unpacked from git (skipped where the
    history is not there: a shallow clone)."""
    into = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", PREVIOUS_RELEASE, "tracking"],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.skip(f"no git history for {PREVIOUS_RELEASE[:7]}: {archive.stderr[:200]!r}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


class OldHost:
    """``tests/upgrade_host.py`` run on the previous release's ``tracking``."""

    def __init__(
        self, code: Path, url: str, tmp_path: Path, moments: tuple[datetime, ...] = ()
    ) -> None:
        self.ids_file = tmp_path / "old-ids.txt"
        args = [sys.executable, str(HOST), url, str(tmp_path / "old.jsonl"), str(self.ids_file)]
        if moments:
            args.append(",".join(m.isoformat() for m in moments))
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(code)},
        )

    def wait_recording(self) -> None:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "recording", (line, self.stderr())

    def finish(self) -> tuple[dict, set[str]]:
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert self.proc.wait(90) == 0, self.stderr()
        assert line, self.stderr()
        ids = [i for i in self.ids_file.read_text().split("\n") if i]
        assert len(set(ids)) == len(ids)
        return json.loads(line), set(ids)

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        assert self.proc.stderr is not None
        return self.proc.stderr.read()[-3000:]


@pytest.mark.slow
def test_a_writer_of_the_previous_release_keeps_working_while_the_cli_upgrades_its_store(
    fresh_url: str, tmp_path: Path, previous_tracking: Path
) -> None:
    """The previous release's writer (its newest revision 0005), recording from 4 threads in
    its own process, while this release's CLI upgrades the store to head under it."""
    migrate_to(fresh_url, "0005")
    host = OldHost(previous_tracking, fresh_url, tmp_path)
    try:
        host.wait_recording()
        done, took = migrate_cli(fresh_url)
        time.sleep(1.0)
        report, recorded = host.finish()
    finally:
        if host.proc.poll() is None:
            host.proc.kill()
    stats = report["stats"]
    assert done.returncode == 0, done.stderr
    assert report["flushed"], report
    assert_nothing_lost(fresh_url, recorded, stats, report["errors"])
    print(
        f"\nprevious release's writer, 0005->{HEAD}: {len(recorded)} calls, lost 0, doubled 0;"
        f" journaled {stats['spilled']}, replayed {stats['replayed']}; the CLI took {took:.2f} s",
        end=" ",
    )


# the CLI's own code, imported before the go line: the processes then migrate at one moment
_CLI_ON_GO = (
    "import sys; import tracking.migrate; from tracking.cli import main;"
    " sys.stdin.readline(); sys.exit(main(['migrate', '--url', sys.argv[1]]))"
)


@contextmanager
def store_at(kind: str, tmp_path: Path, revision: str) -> Iterator[str]:
    """A new database of ``kind`` migrated to ``revision``."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'raced.db'}"
        migrate_to(url, revision)
        yield url
        return
    with new_pg_database("unitwise_upgrade") as url:
        migrate_to(url, revision)
        yield url


def migrations_waiting(url: str, pids: list[int]) -> bool:
    """Whether each of the ``migrate`` processes has reached the store and waits on it.
    SQLite: each has the database file open (its next step takes or waits for the write
    lock); PostgreSQL: three sessions wait on a lock, the writer's (which names
    ``call_ids``) aside."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = os.path.realpath(str(parsed.database))

        def has_open(pid: int) -> bool:
            fds = Path(f"/proc/{pid}/fd")
            return any(os.path.realpath(fd) == db for fd in fds.iterdir())

        return all(has_open(pid) for pid in pids)
    engine = make_engine(url)
    with engine.connect() as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query NOT LIKE '%call_ids%'"
            )
        ).scalar_one()
    engine.dispose()
    return int(waiting) >= len(pids)


@contextmanager
def store_held(url: str, until: Callable[[], bool]) -> Iterator[None]:
    """The store locked from the block's start until ``until()`` (30 s at most) after its
    end, as by a long transaction of another writer: what runs meanwhile queues up behind
    it, then goes at once. SQLite: its write lock (a writer's batch holds the same);
    PostgreSQL: ``daily_rollups``, which migration 0002 reads to fill the narrower rollups."""
    engine = make_engine(url)
    conn = engine.connect()
    try:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.begin()
            conn.exec_driver_sql("LOCK TABLE daily_rollups IN ACCESS EXCLUSIVE MODE")
        yield
        deadline = time.monotonic() + 30
        while not until() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        conn.exec_driver_sql("COMMIT") if conn.dialect.name == "sqlite" else conn.commit()
    finally:
        conn.close()
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_migrations_started_at_once_while_the_writer_records_all_succeed(
    kind: str, tmp_path: Path
) -> None:
    """Three ``migrate`` commands let go at one moment (replicas that each migrate at their
    start), and on SQLite the writer's own upgrade of its embedded store besides, while a
    transaction holds the store: each run waits for the one before it and finds nothing left
    to do, none fails on a table or a price another run has just made; every call recorded
    meanwhile is stored once. Before the fix two of the three failed."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    with store_at(kind, tmp_path, "0001") as url:
        clis = [
            subprocess.Popen(
                [sys.executable, "-c", _CLI_ON_GO, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": path},
            )
            for _ in range(3)
        ]
        time.sleep(1.5)  # each has imported the CLI
        tracking.configure(
            url=url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
        )
        recorders = Recorders()
        try:
            pids = [cli.pid for cli in clis]
            with store_held(url, lambda: migrations_waiting(url, pids)):
                for cli in clis:
                    assert cli.stdin is not None
                    cli.stdin.write("go\n")
                    cli.stdin.flush()
                recorders.start()
            results = [(cli.wait(60), *cli.communicate()) for cli in clis]
            time.sleep(0.5)
        finally:
            recorded = recorders.finish()
        stats = flushed_stats()
        assert [rc for rc, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
        assert_nothing_lost(url, recorded, stats, recorders.errors)
        print(
            f"\n{kind}: 3 migrate runs at once, all succeeded; {len(recorded)} calls, lost 0,"
            f" doubled 0, journaled {stats['spilled']}",
            end=" ",
        )


FUTURE_MIGRATION = '''"""a later release's migration: a new table only

Revision ID: 9999
Revises: {head}
"""

import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("from_a_later_release", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade() -> None:
    op.drop_table("from_a_later_release")
'''


def migrate_as_a_later_release(url: str, tmp_path: Path) -> None:
    """Upgrade the store with this release's migrations and one more (a new table), as the
    next release would: the store is then at a revision this ``tracking`` does not have."""
    from alembic import command

    later = tmp_path / "later-migrations"
    shutil.copytree(ROOT / "tracking" / "migrations", later)
    (later / "versions" / "9999_later.py").write_text(FUTURE_MIGRATION.format(head=HEAD))
    cfg = alembic_config()
    cfg.set_main_option("script_location", str(later))
    engine = make_engine(url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()


def test_a_writer_started_on_an_embedded_store_a_later_release_migrated_prices_its_calls(
    tmp_path: Path,
) -> None:
    """SQLite, whose writer upgrades its own store: one at a revision this release does not
    know is left as it is, and written to with its prices. Before the fix the upgrade failed
    at every start ("Can't locate revision"), the prices never loaded, and every call was
    stored unpriced (the previous release does so on a store at 0006: 50 calls of 50)."""
    url = f"sqlite:///{tmp_path / 'later.db'}"
    migrate_as_a_later_release(url, tmp_path)
    add_test_prices(url)
    tracking.configure(url=url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05)
    recorded = {
        str(tracking.record(provider="openai", model="gpt-4o", input_tokens=1000, output_tokens=10))
        for _ in range(50)
    }
    stats = flushed_stats()
    assert revision_of(url) == "9999"
    assert stats["prices_loaded"] and stats["written"] == 50, stats
    assert_each_call_once(url, recorded)
    engine = make_engine(url)
    with engine.connect() as conn:
        unpriced = conn.execute(select(func.count()).where(calls.c.cost_usd.is_(None))).scalar()
    engine.dispose()
    assert unpriced == 0


def partition_sql(url: str, *statements: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.slow
def test_partitions_made_and_moved_under_two_writers_lose_no_call(tmp_path: Path) -> None:
    """PostgreSQL, a store at head: this process's writer (4 threads) and another process's
    writer record calls of four past months that have no partition yet, so both make them at
    once (``ensure_partitions``); meanwhile a month full of calls is detached from ``calls``
    (as ``retention --archive`` does) and attached again, twice. Calls of that month written
    meanwhile fail, go to the journal and are replayed once it is back: every call is stored
    once and every rollup equals the calls."""
    months = tuple(datetime(2026, m, 15, 12, tzinfo=UTC) for m in (6, 7, 8, 9))
    moved = "calls_y2026m06"
    bounds = "FOR VALUES FROM ('2026-06-01 00:00:00+00') TO ('2026-07-01 00:00:00+00')"
    with new_pg_database("unitwise_parts") as url:
        migrate_to(url, "head")
        other = OldHost(ROOT, url, tmp_path, months)
        tracking.configure(
            url=url, journal_path=str(tmp_path / "journal.jsonl"), flush_interval=0.05
        )
        recorders = Recorders(moments=months)
        try:
            recorders.start()
            other.wait_recording()
            for _ in range(2):
                time.sleep(1.0)
                partition_sql(url, f"ALTER TABLE calls DETACH PARTITION {moved}")
                time.sleep(1.0)
                partition_sql(url, f"ALTER TABLE calls ATTACH PARTITION {moved} {bounds}")
            time.sleep(1.0)
            report, theirs = other.finish()
        finally:
            recorded = recorders.finish()
            if other.proc.poll() is None:
                other.proc.kill()
        stats = flushed_stats()
        assert report["flushed"] and report["errors"] == [], report
        assert theirs.isdisjoint(recorded)
        for counted in (stats, report["stats"]):
            assert (counted["dropped"], counted["refused"], counted["journal_pending"]) == (
                0,
                0,
                False,
            ), counted
        assert_nothing_lost(url, recorded | theirs, stats, recorders.errors)
        print(
            f"\npartitions under two writers: {len(recorded)} + {len(theirs)} calls, lost 0,"
            f" doubled 0; journaled {stats['spilled']} + {report['stats']['spilled']},"
            f" write failures {stats['write_failures']} + {report['stats']['write_failures']}",
            end=" ",
        )
