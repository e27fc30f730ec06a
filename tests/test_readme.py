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


def run_example(
    example: str, url: str, tmp_path: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a README block as a user would, in a fresh interpreter against the store at ``url``."""
    done = subprocess.run(
        [sys.executable, "-c", example],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "UNITWISE_DATABASE_URL": url, "UNITWISE_DATA_DIR": str(tmp_path), **env},
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_add_tracking_example_runs_and_logs_its_calls(tmp_path) -> None:
    (example,) = [b for b in python_blocks() if "tracking.record(" in b]
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    done = run_example(example, url, tmp_path)
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


def test_every_python_example_compiles() -> None:
    """Blocks that need a service of their own (FastAPI, a Places client) are not run here."""
    blocks = python_blocks()
    assert len(blocks) >= 4
    for block in blocks:
        compile(block, "README.md", "exec")


def test_instrument_example_runs_and_logs_its_call(tmp_path, stub) -> None:
    """The two lines, run as written against the local stub in place of OpenAI's API."""
    from tests.llm_stub import Reply, openai_chat, openai_usage

    (example,) = [b for b in python_blocks() if "tracking.instrument(" in b]
    answer = openai_chat("gpt-4o-2024-08-06", openai_usage(1200, 300, cached=1000))
    stub.reply(Reply(body=answer, headers={"x-request-id": "req_readme"}))
    url = f"sqlite:///{tmp_path / 'readme.db'}"
    run_example(
        example,
        url,
        tmp_path,
        OPENAI_BASE_URL=f"{stub.url}/v1",
        OPENAI_API_KEY="sk-readme",
    )
    engine = make_engine(url)  # logged by the flush at exit
    with engine.connect() as conn:
        (row,) = conn.execute(select(calls)).all()
    engine.dispose()
    assert (row.model, row.requested_model, row.request_id) == (
        "gpt-4o-2024-08-06",
        "gpt-4o",
        "req_readme",
    )
    assert (row.user_id, row.feature, row.tags) == ("u_42", "summarize", {"team": "growth"})
    assert (row.input_tokens, row.cache_read_tokens, row.output_tokens) == (1200, 1000, 300)


def settings_table() -> set[str]:
    """The names in the first column of README's settings table."""
    table = README.split("| setting | environment | default |", 1)[1].split("\n\n", 1)[0]
    first_column = [line.split("|")[1] for line in table.splitlines() if line.startswith("|")]
    return {name for cell in first_column for name in re.findall(r"`(\w+)`", cell)}


def test_every_setting_configure_accepts_is_in_the_settings_table() -> None:
    from dataclasses import fields

    from tracking.config import Settings

    accepted = {f.name for f in fields(Settings)}  # configure()'s arguments and **options
    assert accepted - settings_table() == set()
