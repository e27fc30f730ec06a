"""The README's examples run as written, and what it promises the user is true."""

from __future__ import annotations

import argparse
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

    (example,) = [b for b in python_blocks() if "tracking.instrument(OpenAI())" in b]
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


def _command_paths(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every command of an argparse CLI, subcommands of subcommands included, as word tuples."""
    yield path
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _command_paths(sub, (*path, name))


def _help(*command: str) -> str:
    """A command's --help, run as a user would, with this checkout's code first on the path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env
    )
    assert done.returncode == 0, (command, done.stderr)
    assert done.stdout.startswith("usage: "), (command, done.stdout)
    return done.stdout


def _assert_plain(text: str) -> None:
    """Help is read in a terminal: no reST or Markdown markup, no escape sequences."""
    for markup in ("``", "`", "\x1b[", "**", ":func:", ":class:", "\\n"):
        assert markup not in text, (markup, text)


def test_every_cli_command_has_a_plain_help_that_exits_0() -> None:
    from tracking.cli import build_parser

    commands = [" ".join(p) for p in _command_paths(build_parser())]
    assert {"", "migrate", "prices", "prices refresh", "retention"} <= set(commands)
    for command in commands:
        _assert_plain(_help(sys.executable, "-m", "tracking", *command.split()))
    demo = _help(sys.executable, "-m", "dashboard.demo")
    assert "--calls" in demo and "--if-empty" in demo
    _assert_plain(demo)
    script = Path(sys.executable).parent / "unitwise"  # the console script, when installed
    if script.exists():
        _assert_plain(_help(str(script)))
