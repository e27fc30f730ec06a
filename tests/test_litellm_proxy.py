"""tracking.litellm_callback() in the REAL LiteLLM proxy, set up as the README says.

The proxy runs in a subprocess (``python -m litellm.proxy.proxy_cli --config``) with a
``unitwise_callback.py`` beside its config, its models pointed at the local stub; the real OpenAI
SDK talks to it. The proxy is stopped with SIGTERM and tracking's exit flush must have stored
every call; each is compared with the same request and stub reply through ``tracking.instrument``
(the references of test_litellm.py).
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import stored_calls
from tests.llm_stub import (
    Reply,
    anthropic_message,
    openai_chat,
    openai_chat_chunks,
    openai_error,
)
from tests.test_integrations_anthropic import COST as ANTHROPIC_COST
from tests.test_integrations_anthropic import SNAPSHOT as CLAUDE
from tests.test_integrations_anthropic import USAGE as ANTHROPIC_USAGE
from tests.test_integrations_anthropic import add_prices as add_anthropic_prices
from tests.test_integrations_openai import SNAPSHOT as GPT
from tests.test_integrations_openai import add_prices as add_openai_prices
from tests.test_litellm import (
    OPENAI_COST,
    OPENAI_USAGE,
    assert_same,
    twin_anthropic,
    twin_openai,
)

# the proxy's own dependencies (unitwise[litellm-proxy]), found without importing them: the proxy
# takes seconds to import, and runs in its subprocess anyway
PROXY_NEEDS = ("litellm", "orjson", "backoff", "apscheduler", "jwt", "fastapi_sso", "mcp", "uvloop")
missing = [name for name in PROXY_NEEDS if importlib.util.find_spec(name) is None]
if missing:  # `make test` installs them (the dev extra): a missing one is a broken set-up
    pytest.fail(
        f"the LiteLLM proxy's requirements are missing ({', '.join(missing)}): "
        "pip install -e '.[litellm-proxy]'",
        pytrace=False,
    )

ROOT = Path(__file__).resolve().parent.parent
# what the README's "Using LiteLLM?" shows, the stub's address filled in
CONFIG = """\
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_base: {stub}/v1
      api_key: sk-test
  - model_name: claude-3-5-sonnet
    litellm_params:
      model: anthropic/claude-3-5-sonnet-20241022
      api_base: {stub}
      api_key: sk-ant
litellm_settings:
  callbacks: unitwise_callback.proxy_handler_instance
  num_retries: 0
router_settings:
  num_retries: 0
"""
# the README's `litellm --config config.yaml --host 127.0.0.1 --port 4000`, on a free port
COMMAND = ["--config", "config.yaml", "--host", "127.0.0.1", "--port"]
BURST = 20
CALLBACK = """\
import tracking

proxy_handler_instance = tracking.litellm_callback()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_proxy(folder: Path, stub_url: str, store_url: str, key: str) -> subprocess.Popen:
    (folder / "config.yaml").write_text(CONFIG.format(stub=stub_url))
    (folder / "unitwise_callback.py").write_text(CALLBACK)
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env |= {
        "UNITWISE_DATABASE_URL": store_url,
        "UNITWISE_JOURNAL_PATH": str(folder / "journal.jsonl"),
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_MASTER_KEY": key,
        "PYTHONPATH": str(ROOT),  # this checkout's tracking
    }
    proxy = subprocess.Popen(
        [sys.executable, "-m", "litellm.proxy.proxy_cli", *COMMAND, str(port)],
        cwd=folder,
        env=env,
        stdout=open(folder / "proxy.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    proxy.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proxy.poll() is None, (folder / "proxy.log").read_text()[-3000:]
        try:
            if httpx.get(f"{proxy.url}/health/liveliness", timeout=1).status_code == 200:  # type: ignore[attr-defined]
                return proxy
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proxy.kill()
    raise AssertionError("the proxy did not start in 120 s")


@pytest.mark.slow
def test_the_proxy_logs_each_call_once_priced_and_attributed(configured, stub, tmp_path) -> None:
    add_openai_prices(configured)
    add_anthropic_prices(configured)
    key = "sk-" + secrets.token_hex(32)
    started = time.monotonic()
    proxy = start_proxy(tmp_path, stub.url, configured, key)
    startup = time.monotonic() - started
    try:
        client = openai.OpenAI(base_url=proxy.url, api_key=key, max_retries=0)  # type: ignore[attr-defined]
        messages = [{"role": "user", "content": "Hello"}]
        stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE)))
        client.chat.completions.create(model="gpt-4o", messages=messages)
        stub.reply(Reply(events=openai_chat_chunks(GPT, ["Hel", "lo"], OPENAI_USAGE)))
        chunks = client.chat.completions.create(
            model="gpt-4o",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        text = [c.delta.content or "" for chunk in chunks for c in chunk.choices]
        assert "".join(text) == "Hello"
        stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE)))
        metadata = {"user_id": "u_meta", "feature": "summarize", "unitwise_tags": {"team": "g"}}
        client.chat.completions.create(
            model="gpt-4o", messages=messages, user="u_42", extra_body={"metadata": metadata}
        )
        stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE)))
        client.chat.completions.create(model="gpt-4o", messages=messages, user="u_only")
        stub.reply(Reply(429, openai_error(429, "slow down", "rate_limit")))
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=messages)
        stub.reply(Reply(body=anthropic_message(CLAUDE, ANTHROPIC_USAGE)))
        client.chat.completions.create(model="claude-3-5-sonnet", messages=messages, max_tokens=10)
        for _ in range(BURST):  # still queued in the proxy when it gets SIGTERM
            stub.reply(Reply(body=openai_chat(GPT, OPENAI_USAGE)))
            client.chat.completions.create(model="gpt-4o", messages=messages)
    finally:
        stopped = time.monotonic()
        proxy.send_signal(signal.SIGTERM)
        proxy.wait(60)
        stopping = time.monotonic() - stopped
    log = (tmp_path / "proxy.log").read_text()
    print(f"proxy start {startup:.1f} s, stop {stopping:.1f} s")
    # uvicorn raises SIGTERM again after its shutdown: without tracking's handler that ended
    # the process before atexit (rc -15) and the calls still queued were lost
    assert proxy.returncode == 0, log[-3000:]
    rows = stored_calls(configured)
    assert len(rows) == 6 + BURST, log[-3000:]
    chat, streamed, tagged, user_only, limited, claude = rows[:6]

    twin_openai(stub, Reply(body=openai_chat(GPT, OPENAI_USAGE)))
    twin_openai(
        stub,
        Reply(events=openai_chat_chunks(GPT, ["Hel", "lo"], OPENAI_USAGE)),
        stream=True,
        stream_options={"include_usage": True},
    )
    with pytest.raises(openai.RateLimitError):
        twin_openai(stub, Reply(429, openai_error(429, "slow down", "rate_limit")))
    twin_anthropic(stub, Reply(body=anthropic_message(CLAUDE, ANTHROPIC_USAGE)))
    import tracking

    assert tracking.flush(10)
    gpt_twin, stream_twin, limited_twin, claude_twin = stored_calls(configured)[6 + BURST :]
    for row, twin in [
        (chat, gpt_twin),
        (streamed, stream_twin),
        (tagged, gpt_twin),
        (user_only, gpt_twin),
        (limited, limited_twin),
        (claude, claude_twin),
    ]:
        assert_same(row, twin)
    assert [r.cost_usd for r in (chat, streamed, tagged, claude)] == [
        OPENAI_COST,
        OPENAI_COST,
        OPENAI_COST,
        ANTHROPIC_COST,
    ]
    assert (limited.status, limited.error_type, limited.cost_usd) == (
        "error",
        "RateLimitError",
        Decimal(0),
    )
    assert (claude.input_tokens, claude.cache_read_tokens, claude.cache_write_tokens) == (
        13_000,
        10_000,
        2000,
    )
    assert (tagged.user_id, tagged.feature, tagged.tags.get("team")) == ("u_meta", "summarize", "g")
    assert user_only.user_id == "u_only"
    # LiteLLM's price from its bundled map; the proxy's own User-Agent tags are left out
    assert chat.tags == {"litellm_cost": "0.006125"}
    # the proxy writes its model name over the response's: the deployment's model is stored
    assert [(r.model, r.requested_model) for r in (chat, limited, claude)] == [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o", "gpt-4o"),
        (CLAUDE, "claude-3-5-sonnet"),
    ]
    assert streamed.ttft_ms is not None
    assert (chat.user_id, chat.feature) == (None, None)
    assert len({r.id for r in rows}) == 6 + BURST
