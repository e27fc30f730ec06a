"""A throwaway PostgreSQL cluster for tests that stop, kill and restart the server.

The shared server on 5432 must stay up for the other tests, so an outage test makes its own:
``initdb`` in a temporary directory, a free port, its socket in that directory. PostgreSQL
refuses to run as root, so every server command runs as the ``postgres`` user (``runuser``),
and the directory is made outside pytest's tmp_path (under /tmp/pytest-of-root, which that
user may not traverse).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

BIN = Path(os.environ.get("UNITWISE_PG_BIN", "/usr/lib/postgresql/15/bin"))
OWNER = "postgres"


def free_port() -> int:
    """A TCP port nothing listens on now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """One ``initdb`` cluster: ``start``, ``stop(mode)`` and ``destroy`` (always, in a finally).

    fsync stays on (the default): an immediate stop is a crash, and what the server said was
    committed must survive it for the test to mean anything. Only memory is kept small.
    """

    def __init__(self) -> None:
        if not (BIN / "initdb").exists():
            raise FileNotFoundError(f"no initdb in {BIN} (set UNITWISE_PG_BIN)")
        self.dir = Path(tempfile.mkdtemp(prefix="unitwise-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        user = pwd.getpwnam(OWNER)
        os.chmod(self.dir, 0o700)  # its owner only, as initdb wants
        os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.running = False
        self._as_owner("initdb", "-D", str(self.data), "-A", "trust", "-U", OWNER, "-N")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{OWNER}@127.0.0.1:{self.port}/postgres"

    def _as_owner(self, tool: str, *args: str) -> str:
        done = subprocess.run(
            ["runuser", "-u", OWNER, "--", str(BIN / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.stdout

    def start(self) -> None:
        """Start and wait until it accepts connections (crash recovery included)."""
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            " -c shared_buffers=32MB -c max_connections=30"
        )
        log = self.dir / "log"
        self._as_owner("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(log), "-w", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """``fast``: clients are disconnected, a clean shutdown; ``immediate``: the postmaster
        and its backends quit at once, with no checkpoint (a crash; the next start recovers)."""
        self._as_owner("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        self.running = False

    def log(self) -> str:
        path = self.dir / "log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def destroy(self) -> None:
        """Stop the server if it runs (immediately: nothing in it is kept) and remove it all."""
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
