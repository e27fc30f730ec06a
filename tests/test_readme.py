"""The README's examples run as written, and what it promises the user is true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from tracking.db import make_engine
from tracking.schema import calls

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_add_tracking_example_runs_and_logs_its_calls(tmp_path) -> None:
    (example,) = [b for b in python_blocks() if "tracking.configure()" in b]
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    env = {**os.environ, "UNITWISE_DATABASE_URL": url, "UNITWISE_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert "'written': 3" in done.stdout
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            select(calls.c.model, calls.c.user_id, calls.c.feature, calls.c.tags).order_by(
                calls.c.model
            )
        ).all()
    engine.dispose()
    assert [r.model for r in found] == ["gpt-4o", "places-details", "whisper-1"]
    assert all(r.user_id == "u_42" and r.feature == "summarize" for r in found)
    assert all(r.tags == {"team": "growth"} for r in found)
