"""A host process for tests/test_live_upgrade.py: 4 threads recording through whichever
``tracking`` is first on PYTHONPATH (the tests put an older commit's there: a writer of the
previous schema), until a line on stdin says stop; then it flushes and reports.

It uses only the API every version has had (configure, record with call_id, flush, stats,
shutdown). stdout: "recording" once the first calls are stored, then one JSON line.

    python tests/upgrade_host.py URL JOURNAL IDS_FILE [MOMENT,MOMENT,...]

With moments (ISO 8601), the calls' ``occurred_at`` take them in turn (months of their own).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import datetime

import tracking


def main() -> int:
    url, journal, ids_file = sys.argv[1:4]
    moments = [datetime.fromisoformat(m) for m in sys.argv[4].split(",")] if sys.argv[4:] else []
    tracking.configure(url=url, journal_path=journal, flush_interval=0.05)
    ids: list[list[str]] = [[] for _ in range(4)]
    errors: list[str] = []
    stop = threading.Event()

    def run(n: int) -> None:
        mine = ids[n]
        while not stop.is_set():
            call_id = str(uuid.uuid4())
            try:
                tracking.record(
                    provider="openai",
                    model="gpt-4o",
                    input_tokens=100 + len(mine) % 7,
                    output_tokens=20,
                    user_id=f"old{n}",
                    feature="chat",
                    call_id=call_id,
                    **({"occurred_at": moments[len(mine) % len(moments)]} if moments else {}),
                )
            except BaseException as exc:  # reported: the host must never see one
                errors.append(repr(exc))
                return
            mine.append(call_id)
            time.sleep(0.001)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while tracking.stats().get("written", 0) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    print("recording", flush=True)
    sys.stdin.readline()  # the parent upgraded the store under us and waited a little
    stop.set()
    for t in threads:
        t.join()
    deadline = time.monotonic() + 60
    while True:  # a flush does not wait for a store that failed: its journal, after a backoff
        flushed = tracking.flush(timeout=60)
        stats = tracking.stats()
        if not stats.get("journal_pending") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    tracking.shutdown(timeout=5)
    with open(ids_file, "w") as out:
        out.write("\n".join(i for mine in ids for i in mine))
    report = {"flushed": flushed, "errors": errors, "stats": stats}
    print(json.dumps(report, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
