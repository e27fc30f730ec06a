"""The editor role: the pure decision for every case, the password hash and its CLI, and the
Streamlit sign-in (AppTest of a tiny page using editor_access and sign_in)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import access
from dashboard.access import (
    LOCAL_WHO,
    PASSWORD_WHO,
    Access,
    decide_access,
    hash_password,
    is_valid_hash,
    session_token,
    store_kind,
    token_matches,
    verify_password,
)

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://user:pw@db.example.com:5432/unitwise"

# Cheap scrypt parameters keep the tests fast; the default ones are checked once below.
FAST = {"n": 2**10, "r": 8, "p": 1}


@pytest.fixture(scope="module")
def pw_hash() -> str:
    return hash_password("correct horse", **FAST)


AUTH = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "not-a-real-secret",
    "client_id": "id",
    "client_secret": "secret",
    "server_metadata_url": "https://accounts.example.com/.well-known/openid-configuration",
}


def auth_secrets(editors: object = ("Ann@Example.com", "bob@example.com")) -> dict:
    return {"auth": dict(AUTH), "unitwise": {"editors": list(editors)}}


# --- store kind -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("sqlite:///tmp/unitwise.db", "sqlite"),
        ("sqlite://", "sqlite"),
        (PG, "postgresql"),
        ("postgres://u:p@h/db", "postgresql"),
        ("postgresql+psycopg2://u@h/db", "postgresql"),
        ("not a url", "unknown"),
    ],
)
def test_store_kind(url: str, kind: str) -> None:
    assert store_kind(url) == kind


# --- the decision -----------------------------------------------------------------------------


def test_sqlite_is_editable_as_local() -> None:
    for secrets in ({}, auth_secrets(), {"unitwise": {"editor_password_hash": "junk"}}):
        got = decide_access("sqlite", secrets)
        assert (got.can_edit, got.who, got.method) == (True, LOCAL_WHO, "local")
    assert LOCAL_WHO == "local"


@pytest.mark.parametrize("secrets", [{}, {"unitwise": {}}, {"unitwise": "oops"}, {"auth": {}}])
def test_shared_store_with_nothing_set_up_is_read_only_and_says_how(secrets: dict) -> None:
    got = decide_access("postgresql", secrets)
    assert not got.can_edit and got.who is None and got.method == "none"
    for needed in ("[unitwise]", "editor_password_hash", "editors", "[auth]", "hash-password"):
        assert needed in got.reason, needed
    assert "PostgreSQL" in got.reason


def test_an_unknown_store_is_treated_as_shared() -> None:
    assert not decide_access("unknown", {}).can_edit
    assert not decide_access(store_kind("mysql://u@h/db"), {}).can_edit


def test_password_wrong_no_right_yes(pw_hash: str) -> None:
    secrets = {"unitwise": {"editor_password_hash": pw_hash}}
    wrong = decide_access("postgresql", secrets, password_ok=verify_password("wrong", pw_hash))
    assert (wrong.can_edit, wrong.who, wrong.method) == (False, None, "password")
    assert "password" in wrong.reason
    right = decide_access(
        "postgresql", secrets, password_ok=verify_password("correct horse", pw_hash)
    )
    assert (right.can_edit, right.who, right.method) == (True, PASSWORD_WHO, "password")
    assert PASSWORD_WHO == "editor (password)"


def test_login_listed_email_yes_case_insensitive() -> None:
    for email in ("ann@example.com", "ANN@EXAMPLE.COM", " Ann@Example.com "):
        got = decide_access("postgresql", auth_secrets(), email=email)
        assert got.can_edit, email
        assert got.who == email.strip() and got.method == "login"
    assert decide_access("postgresql", auth_secrets(), email="Bob@example.com").can_edit


def test_login_other_email_or_none_no() -> None:
    other = decide_access("postgresql", auth_secrets(), email="eve@example.com")
    assert (other.can_edit, other.who, other.method) == (False, None, "login")
    assert "eve@example.com" in other.reason and "editors" in other.reason
    for email in (None, "", "  "):
        nobody = decide_access("postgresql", auth_secrets(), email=email)
        assert (nobody.can_edit, nobody.method) == (False, "login")
        assert "Log in" in nobody.reason


def test_login_with_an_unverified_email_no() -> None:
    got = decide_access("postgresql", auth_secrets(), email="ann@example.com", email_verified=False)
    assert not got.can_edit and "not verified" in got.reason
    assert decide_access(
        "postgresql", auth_secrets(), email="ann@example.com", email_verified=True
    ).can_edit


def test_login_a_single_string_is_a_list_of_one() -> None:
    secrets = {"auth": dict(AUTH), "unitwise": {"editors": "Ann@Example.com"}}
    assert decide_access("postgresql", secrets, email="ann@example.com").can_edit


@pytest.mark.parametrize("editors", [[], [""], None])
def test_login_without_editors_is_read_only_and_says_so(editors: object) -> None:
    secrets: dict = {"auth": dict(AUTH)}
    if editors is not None:
        secrets["unitwise"] = {"editors": editors}
    got = decide_access("postgresql", secrets, email="ann@example.com")
    assert not got.can_edit and got.method == "none"
    assert "editors" in got.reason


@pytest.mark.parametrize("editors", [42, [1, 2], {"a": "b"}])
def test_login_with_malformed_editors_is_read_only(editors: object) -> None:
    secrets = {"auth": dict(AUTH), "unitwise": {"editors": editors}}
    got = decide_access("postgresql", secrets, email="ann@example.com")
    assert not got.can_edit and "list of e-mails" in got.reason


def test_login_named_providers() -> None:
    base = {k: AUTH[k] for k in ("redirect_uri", "cookie_secret")}
    google = {k: AUTH[k] for k in ("client_id", "client_secret", "server_metadata_url")}
    secrets = {"auth": {**base, "google": google}, "unitwise": {"editors": ["ann@example.com"]}}
    assert access.login_providers(secrets) == ["google"]
    assert access.login_providers(auth_secrets()) == [None]
    assert decide_access("postgresql", secrets, email="ann@example.com").can_edit
    no_provider = decide_access(
        "postgresql", {"auth": base, "unitwise": {"editors": ["ann@example.com"]}}, email="a"
    )
    assert not no_provider.can_edit and "provider" in no_provider.reason


def test_with_auth_the_password_is_not_used(pw_hash: str) -> None:
    secrets = auth_secrets()
    secrets["unitwise"]["editor_password_hash"] = pw_hash
    got = decide_access("postgresql", secrets, password_ok=True)
    assert not got.can_edit and got.method == "login"
    assert "not used" in got.reason


MALFORMED = [
    "",
    "nonsense",
    "scrypt$32768$8$1$c2FsdA==",  # a part missing
    "pbkdf2_sha256$600000$salt$hash",
    "scrypt$1000$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # n not a power of two
    "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,  # 1 TiB of memory
    "scrypt$1024$8$99$c2FsdHNhbHRzYWx0$" + "A" * 44,  # p out of bounds
    "scrypt$1024$8$1$not*base64$" + "A" * 44,
    "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$QUJD",  # hash too short
    "scrypt$x$8$1$c2FsdHNhbHRzYWx0$" + "A" * 44,
    "scrypt$1024$8$1$c2FsdHNhbHRzYWx0$" + "é" * 44,
    12345,
    ["scrypt"],
]


@pytest.mark.parametrize("bad", MALFORMED)
def test_a_malformed_hash_is_read_only_with_a_reason_never_an_exception(bad: object) -> None:
    secrets = {"unitwise": {"editor_password_hash": bad}}
    assert not is_valid_hash(bad)
    assert verify_password("anything", bad) is False
    assert not token_matches("00" * 32, bad)
    for password_ok in (False, True):
        got = decide_access("postgresql", secrets, password_ok=password_ok)
        assert not got.can_edit and got.method == "none"
        assert "not a valid hash" in got.reason and "hash-password" in got.reason
        if isinstance(bad, str) and bad:
            assert bad not in got.reason  # the hash is never shown


# --- the hash ---------------------------------------------------------------------------------


def test_hash_round_trip(pw_hash: str) -> None:
    assert pw_hash.startswith("scrypt$1024$8$1$") and is_valid_hash(pw_hash)
    assert "correct horse" not in pw_hash
    assert verify_password("correct horse", pw_hash)
    assert verify_password("correct horse", f"  {pw_hash}\n")  # pasted with stray whitespace
    for wrong in ("correct horse ", "Correct horse", "", "correct"):
        assert not verify_password(wrong, pw_hash), wrong
    assert verify_password(None, pw_hash) is False
    assert hash_password("correct horse", **FAST) != pw_hash  # a fresh salt each time


def test_default_parameters_and_unicode() -> None:
    encoded = hash_password("pässwörd ✓")
    assert encoded.startswith(f"scrypt${2**15}$8$1$")
    assert verify_password("pässwörd ✓", encoded)
    assert not verify_password("passwort", encoded)


def test_an_empty_password_is_refused() -> None:
    with pytest.raises(ValueError):
        hash_password("")


def test_a_tampered_hash_does_not_verify(pw_hash: str) -> None:
    head, digest = pw_hash.rsplit("$", 1)
    flipped = ("B" if digest[0] == "A" else "A") + digest[1:]
    assert is_valid_hash(f"{head}${flipped}")
    assert not verify_password("correct horse", f"{head}${flipped}")


def test_session_token_is_keyed_to_the_hash(pw_hash: str) -> None:
    other = hash_password("another one", **FAST)
    token = session_token(pw_hash)
    assert token_matches(token, pw_hash)
    assert not token_matches(token, other)
    for crafted in (True, 1, "true", pw_hash, "", None, token.upper(), token[:-1], "ü" * 64):
        assert not token_matches(crafted, pw_hash), crafted
    assert pw_hash not in token and "correct horse" not in token


def run_cli(stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboard.access", "hash-password"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("line", ["s3cret pass\n", "s3cret pass\r\n", "s3cret pass"])
def test_hash_cli_output_verifies(line: str) -> None:
    done = run_cli(line)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.strip()
    assert len(done.stdout.splitlines()) == 1
    assert verify_password("s3cret pass", printed)
    assert not verify_password("s3cret pass\n", printed)
    assert "s3cret" not in done.stdout + done.stderr
    assert "editor_password_hash" in done.stderr


def test_hash_cli_refuses_an_empty_password() -> None:
    done = run_cli("\n")
    assert done.returncode == 2 and done.stdout == ""


# --- Streamlit: editor_access + sign_in -------------------------------------------------------


def page(url: str) -> None:
    import streamlit as st

    from dashboard.access import editor_access, sign_in

    got = editor_access(url)
    sign_in(got)
    st.text(f"can_edit={got.can_edit} who={got.who}")


def app(url: str = PG, **secrets: object) -> AppTest:
    at = AppTest.from_function(page, kwargs={"url": url}, default_timeout=30)
    at.secrets["unitwise"] = {}  # always our secrets, never a developer's own secrets.toml
    at.secrets.update(secrets)
    return at


def state(at: AppTest) -> str:
    assert not at.exception, at.exception
    return at.text[-1].value


def submit(at: AppTest, password: str) -> AppTest:
    at.text_input[0].input(password)
    next(b for b in at.button if b.label == "Sign in to edit").click()
    return at.run()


def test_app_password_sign_in(pw_hash: str) -> None:
    at = app(unitwise={"editor_password_hash": pw_hash}).run()
    assert state(at) == "can_edit=False who=None"
    assert "Enter the editor password" in at.info[0].value
    assert at.text_input[0].label == "Editor password"

    submit(at, "wrong")
    assert state(at) == "can_edit=False who=None"
    assert [e.value for e in at.error] == ["That is not the editor password."]

    submit(at, "")
    assert [e.value for e in at.error] == ["Enter the editor password."]

    submit(at, "correct horse")
    assert state(at) == "can_edit=True who=editor (password)"
    assert not at.error and not at.info and not at.text_input  # the form is gone
    # the session keeps a token, never the password or the hash
    kept = repr(at.session_state.to_dict())
    assert access._SESSION_KEY in kept
    assert "correct horse" not in kept and pw_hash not in kept

    at.run()  # it lasts for the session
    assert state(at) == "can_edit=True who=editor (password)"

    next(b for b in at.button if b.label.startswith("Stop editing")).click().run()
    assert state(at) == "can_edit=False who=None"


def test_app_changing_the_hash_signs_out(pw_hash: str) -> None:
    at = app(unitwise={"editor_password_hash": pw_hash}).run()
    submit(at, "correct horse")
    assert state(at) == "can_edit=True who=editor (password)"
    at.secrets["unitwise"] = {"editor_password_hash": hash_password("correct horse", **FAST)}
    at.run()
    assert state(at) == "can_edit=False who=None"


@pytest.mark.parametrize("crafted", [True, "true", 1, "hash", "0" * 64])
def test_app_crafted_session_state_does_not_grant_editing(pw_hash: str, crafted: object) -> None:
    at = app(unitwise={"editor_password_hash": pw_hash})
    at.session_state[access._SESSION_KEY] = pw_hash if crafted == "hash" else crafted
    at.run()
    assert state(at) == "can_edit=False who=None"


def test_app_shared_store_with_nothing_set_up() -> None:
    at = app().run()
    assert state(at) == "can_edit=False who=None"
    assert "hash-password" in at.info[0].value and "editors" in at.info[0].value
    assert not at.text_input and not at.button


def test_app_malformed_hash_has_no_form() -> None:
    at = app(unitwise={"editor_password_hash": "scrypt$oops"}).run()
    assert state(at) == "can_edit=False who=None"
    assert "not a valid hash" in at.info[0].value and "scrypt$oops" not in at.info[0].value
    assert not at.text_input


def test_app_sqlite_is_editable_as_local() -> None:
    at = app(url="sqlite:///demo.db").run()
    assert state(at) == "can_edit=True who=local"
    assert not at.info and not at.text_input and not at.button


def test_app_login_editor(pw_hash: str) -> None:
    secrets = auth_secrets()
    at = app(auth=secrets["auth"], unitwise=secrets["unitwise"])
    at.user = {"is_logged_in": True, "email": "ANN@example.com", "email_verified": True}
    assert state(at.run()) == "can_edit=True who=ANN@example.com"


def test_app_login_not_logged_in_gets_a_login_button() -> None:
    secrets = auth_secrets(editors=["ann@example.com", "test@example.com"])
    at = app(auth=secrets["auth"], unitwise=secrets["unitwise"])
    # AppTest's default user has a listed e-mail but no is_logged_in: that is not a login
    assert at.user == {"email": "test@example.com"}
    at.run()
    assert state(at) == "can_edit=False who=None"
    assert [b.label for b in at.button] == ["Log in to edit"]
    at.user = {"is_logged_in": False, "email": "ann@example.com"}
    assert state(at.run()) == "can_edit=False who=None"
    at.user = {"is_logged_in": "yes", "email": "ann@example.com"}
    assert state(at.run()) == "can_edit=False who=None"


def test_app_login_other_account_can_log_out() -> None:
    secrets = auth_secrets()
    at = app(auth=secrets["auth"], unitwise=secrets["unitwise"])
    at.user = {"is_logged_in": True, "email": "eve@example.com"}
    at.run()
    assert state(at) == "can_edit=False who=None"
    assert "eve@example.com" in at.info[0].value
    assert [b.label for b in at.button] == ["Log out"]
    at.button[0].click().run()
    assert at.user == {"is_logged_in": False}
    at.run()  # a real logout starts a new session
    assert [b.label for b in at.button] == ["Log in to edit"]


def test_app_without_auth_does_not_trust_st_user(pw_hash: str) -> None:
    at = app(unitwise={"editors": ["ann@example.com"]})
    at.user = {"is_logged_in": True, "email": "ann@example.com"}
    assert state(at.run()) == "can_edit=False who=None"


def test_access_is_a_plain_dataclass() -> None:
    assert Access(False, None) == Access(False, None, "", "none")


def test_no_secrets_file_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit as st
    from streamlit.errors import StreamlitSecretNotFoundError

    class Missing:
        def to_dict(self) -> dict:
            raise StreamlitSecretNotFoundError("No secrets found.")

    monkeypatch.setattr(st, "secrets", Missing())
    assert access._read_secrets() == {}
    got = access.editor_access(PG)
    assert not got.can_edit and "hash-password" in got.reason
    assert access.editor_access("sqlite:///demo.db").who == LOCAL_WHO
