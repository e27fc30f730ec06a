"""``python -m tracking prices add``: a price from the command line, checked before anything is
written, and used by tracking for the calls after it."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select

import tracking
from tracking.cli import main
from tracking.schema import calls, price_versions, prices


def versions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(price_versions)).scalar_one())


def test_a_price_added_from_the_command_line_prices_the_next_calls(
    configured: str, engine: Engine, capsys: pytest.CaptureFixture[str]
) -> None:
    tracking.record(provider="acme", model="house-7b", input_tokens=1_000_000)
    assert tracking.flush(10)
    code = main(
        [
            "prices",
            "add",
            "--url",
            configured,
            "--provider",
            "acme",
            "--model",
            "house-7b",
            "--input",
            "0.40",
            "--output",
            "1.60",
            "--rate",
            "requests=2/1000",
            "--from",
            "2020-01-01",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "acme/house-7b" in out and "input_tokens: $0.40 per 1M tokens" in out
    assert "requests: $2 per 1,000 requests" in out
    with engine.connect() as conn:
        rows = {r.unit: (r.rate, r.per) for r in conn.execute(select(prices))}
    assert rows == {
        "input_tokens": (Decimal("0.40"), 1_000_000),
        "output_tokens": (Decimal("1.60"), 1_000_000),
        "requests": (Decimal("2"), 1000),
    }
    tracking.refresh_prices()
    tracking.record(
        provider="acme", model="house-7b", input_tokens=1_000_000, output_tokens=500_000
    )
    assert tracking.flush(10)
    with engine.connect() as conn:
        costs = sorted(
            conn.execute(select(calls.c.cost_usd)).scalars(), key=lambda c: c is not None
        )
    # $0.40 + $0.80 of tokens and $0.002 for the call itself (one request); the earlier call
    # stays unpriced: never a silent $0
    assert costs == [None, Decimal("1.202")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "abc"], "--input: 'abc' is not a number"),
        (["--input", "-1"], "non-negative"),
        (["--rate", "requests"], "UNIT=DOLLARS"),
        (["--rate", "requests=1/0"], "PER must be a positive whole number"),
        (["--input", "1", "--rate", "input_tokens=1"], "a unit is given twice"),
        ([], "give at least one rate"),
        (["--input", "1", "--from", "01/12/2026"], "YYYY-MM-DD"),
    ],
)
def test_a_bad_price_is_refused_with_a_reason_and_writes_nothing(
    store_url: str,
    engine: Engine,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = versions(engine)
    code = main(["prices", "add", "--url", store_url, "--provider", "p", "--model", "m", *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert versions(engine) == before
