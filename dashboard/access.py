"""Who may edit: the editor role for the app's editing pages (Pricing; plans, customers, budgets).

The rule:

- The embedded SQLite store is editable; the audit log's "who" is ``local``.
- A shared store (PostgreSQL, or any store that is not SQLite) needs the editor role:
  - with ``[auth]`` configured in secrets, an OIDC login (``st.login``) whose e-mail is in
    ``[unitwise] editors`` (compared case-insensitively); "who" is that e-mail;
  - without ``[auth]``, the editor password, whose scrypt hash (never the password) is
    ``[unitwise] editor_password_hash``; "who" is ``editor (password)``.
  - With neither, the store is read-only and the page says how to enable editing.

The decision (:func:`decide_access`) and the password hashing are plain functions with no
Streamlit import; :func:`editor_access` and :func:`sign_in` are the Streamlit side. A page does::

    access = editor_access(db.store_url())
    if not access.can_edit:
        sign_in(access)          # the reason, and a login button, a password form or the how-to
    ...                          # editing widgets only when access.can_edit; audit with access.who

``python -m dashboard.access hash-password`` prints a hash to paste into secrets.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import secrets as _random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

SECTION = "unitwise"
EDITORS_KEY = "editors"
HASH_KEY = "editor_password_hash"
AUTH_SECTION = "auth"

LOCAL_WHO = "local"
PASSWORD_WHO = "editor (password)"  # noqa: S105 - the audit log's "who", not a password

HASH_COMMAND = "python -m dashboard.access hash-password"

Method = Literal["local", "login", "password", "none"]


@dataclass(frozen=True)
class Access:
    """Whether this reader may edit, who the audit log names, and what the page tells them.

    ``method`` is how editing is (or would be) granted: ``local`` (SQLite), ``login`` (OIDC and
    the editors list), ``password``, or ``none`` (nothing set up: ``reason`` says what to add).
    """

    can_edit: bool
    who: str | None
    reason: str = ""
    method: Method = "none"


# ---------------------------------------------------------------------------------------------
# The password hash: scrypt$<n>$<r>$<p>$<salt, base64>$<hash, base64>
# ---------------------------------------------------------------------------------------------

SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# Bounds a hash from secrets must respect, so a mistyped or hostile one cannot make each check
# take gigabytes or minutes: at most 256 MiB of scrypt memory.
_MAX_MEMORY = 256 * 1024 * 1024
_MAX_P = 16


class _Scrypt(NamedTuple):
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _maxmem(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2) + 1024 * 1024


def _parse_hash(encoded: object) -> _Scrypt | None:
    """The parts of a well-formed hash within bounds, else None (never raises)."""
    if not isinstance(encoded, str):
        return None
    parts = encoded.strip().split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = (int(x) for x in parts[1:4])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None
    if n < 2 or n & (n - 1) or r < 1 or not 1 <= p <= _MAX_P or 128 * r * n > _MAX_MEMORY:
        return None
    if len(salt) < 8 or len(digest) < 16:
        return None
    return _Scrypt(n, r, p, salt, digest)


def _derive(password: str, n: int, r: int, p: int, salt: bytes, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_maxmem(n, r, p), dklen=length
    )


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """A self-describing scrypt hash of ``password`` with a fresh random salt."""
    if not password:
        raise ValueError("the editor password must not be empty")
    salt = _random.token_bytes(_SALT_BYTES)
    digest = _derive(password, n, r, p, salt, _HASH_BYTES)
    encoded = f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"
    if _parse_hash(encoded) is None:
        raise ValueError("scrypt parameters out of bounds")
    return encoded


def is_valid_hash(encoded: object) -> bool:
    return _parse_hash(encoded) is not None


def verify_password(password: object, encoded: object) -> bool:
    """Whether ``password`` matches ``encoded`` (compared in constant time). A malformed hash or a
    non-string password is False, never an exception."""
    parsed = _parse_hash(encoded)
    if parsed is None or not isinstance(password, str):
        return False
    try:
        candidate = _derive(password, parsed.n, parsed.r, parsed.p, parsed.salt, len(parsed.digest))
    except (ValueError, MemoryError, UnicodeEncodeError):
        return False
    return hmac.compare_digest(candidate, parsed.digest)


# A password sign-in is remembered in session state as an HMAC of the hash in secrets under a key
# that lives only in this server process: a crafted value (True, the hash, a guess) is not it, and
# changing the hash in secrets (or restarting the server) signs every session out.
_SESSION_KEY = "_unitwise_editor_session"
_PROCESS_KEY = _random.token_bytes(32)


def session_token(encoded_hash: str) -> str:
    message = b"unitwise editor session\0" + encoded_hash.strip().encode("utf-8")
    return hmac.new(_PROCESS_KEY, message, hashlib.sha256).hexdigest()


def token_matches(token: object, encoded_hash: object) -> bool:
    if not isinstance(token, str) or _parse_hash(encoded_hash) is None:
        return False
    expected = session_token(str(encoded_hash))
    return hmac.compare_digest(token.encode("utf-8", "replace"), expected.encode("ascii"))


# ---------------------------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------------------------


def store_kind(url: str) -> str:
    """The store's backend from its URL: ``sqlite``, ``postgresql``, ... (``unknown`` when the URL
    does not parse; anything but ``sqlite`` is treated as a shared store)."""
    from tracking.db import normalize_url

    try:
        return normalize_url(url).get_backend_name()
    except Exception:  # a URL we cannot read is no reason to make the store editable
        return "unknown"


def _section(secrets: Mapping[str, Any]) -> Mapping[str, Any]:
    section = secrets.get(SECTION)
    return section if isinstance(section, Mapping) else {}


def auth_configured(secrets: Mapping[str, Any]) -> bool:
    """Whether secrets have a non-empty ``[auth]`` section (Streamlit's OIDC login)."""
    auth = secrets.get(AUTH_SECTION)
    return isinstance(auth, Mapping) and len(auth) > 0


def login_providers(secrets: Mapping[str, Any]) -> list[str | None]:
    """The OIDC providers ``st.login`` can use: None for the unnamed one in ``[auth]`` itself,
    then the names of ``[auth.<name>]`` sections."""
    auth = secrets.get(AUTH_SECTION)
    if not isinstance(auth, Mapping):
        return []
    providers: list[str | None] = [None] if "client_id" in auth else []
    providers += sorted(
        str(name)
        for name, value in auth.items()
        if isinstance(value, Mapping) and "client_id" in value
    )
    return providers


def editors(secrets: Mapping[str, Any]) -> list[str] | None:
    """``[unitwise] editors`` casefolded (one string is a list of one); None when it is not a
    string or a list of strings."""
    value = _section(secrets).get(EDITORS_KEY, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(e, str) for e in value):
        return None
    return [e.strip().casefold() for e in value if e.strip()]


def password_hash(secrets: Mapping[str, Any]) -> object:
    """``[unitwise] editor_password_hash`` as found (None when absent); check it with
    :func:`is_valid_hash`."""
    return _section(secrets).get(HASH_KEY)


_HOW_TO_ENABLE = (
    "To enable editing, add to `.streamlit/secrets.toml` either an editor password:"
    f' `[{SECTION}]` `{HASH_KEY} = "..."` (make the hash with `{HASH_COMMAND}`), or an OIDC'
    f" login: an `[{AUTH_SECTION}]` section for `st.login` and `[{SECTION}]`"
    f' `{EDITORS_KEY} = ["you@example.com"]`.'
)


def decide_access(
    kind: str,
    secrets: Mapping[str, Any],
    *,
    email: str | None = None,
    email_verified: bool | None = None,
    password_ok: bool = False,
) -> Access:
    """Who may edit, from the store kind (``sqlite``, ``postgresql``, ...), the secrets mapping,
    the logged-in e-mail (None when not logged in), whether the login's provider said the e-mail is
    unverified (``email_verified=False`` refuses it), and whether the editor password was entered
    correctly this session. Never raises on odd secrets: they make the store read-only."""
    if kind == "sqlite":
        return Access(True, LOCAL_WHO, "The embedded SQLite store is editable.", "local")

    label = {"postgresql": "PostgreSQL"}.get(kind, kind)
    shared = f"This is a shared store ({label}): editing needs the editor role."
    if auth_configured(secrets):
        if not login_providers(secrets):
            return Access(
                False,
                None,
                f"{shared} `[{AUTH_SECTION}]` is in secrets but names no OIDC provider"
                " (`client_id`, `client_secret`, `server_metadata_url`, in `[auth]` or in"
                " `[auth.<provider>]`).",
                "none",
            )
        allowed = editors(secrets)
        if allowed is None:
            return Access(
                False,
                None,
                f"{shared} `[{SECTION}] {EDITORS_KEY}` in secrets must be a list of e-mails,"
                ' e.g. `editors = ["you@example.com"]`.',
                "none",
            )
        if not allowed:
            return Access(
                False,
                None,
                f"{shared} Login is set up (`[{AUTH_SECTION}]`) but no editors are listed: add"
                f' `[{SECTION}]` `{EDITORS_KEY} = ["you@example.com"]` to secrets.',
                "none",
            )
        if email is None or not email.strip():
            unused = (
                f" (`{HASH_KEY}` is not used while `[{AUTH_SECTION}]` is configured.)"
                if password_hash(secrets) is not None
                else ""
            )
            return Access(
                False, None, f"{shared} Log in with an editor's account to edit.{unused}", "login"
            )
        if email_verified is False:
            return Access(
                False,
                None,
                f"{shared} Your login's e-mail ({email.strip()}) is not verified by the provider.",
                "login",
            )
        if email.strip().casefold() not in allowed:
            return Access(
                False,
                None,
                f"{shared} You are logged in as {email.strip()}, who is not in"
                f" `[{SECTION}] {EDITORS_KEY}`; log out and in with an editor's account, or ask an"
                " admin to add you.",
                "login",
            )
        return Access(True, email.strip(), f"Editing as {email.strip()}.", "login")

    encoded = password_hash(secrets)
    if encoded is not None:
        if not is_valid_hash(encoded):
            return Access(
                False,
                None,
                f"{shared} `[{SECTION}] {HASH_KEY}` in secrets is not a valid hash, so editing"
                f" is off. Make one with `{HASH_COMMAND}` and paste its output there.",
                "none",
            )
        if password_ok:
            return Access(True, PASSWORD_WHO, "Editing with the editor password.", "password")
        return Access(False, None, f"{shared} Enter the editor password to edit.", "password")

    return Access(False, None, f"{shared} None is set up, so it is read-only. {_HOW_TO_ENABLE}")


# ---------------------------------------------------------------------------------------------
# Streamlit
# ---------------------------------------------------------------------------------------------


def _read_secrets() -> dict[str, Any]:
    import streamlit as st

    try:
        return st.secrets.to_dict()
    except FileNotFoundError:  # no secrets.toml (or one Streamlit cannot parse): nothing set up
        return {}


def editor_access(url: str) -> Access:
    """This session's access to the store at ``url``: reads ``st.secrets``, ``st.user`` (only
    when ``[auth]`` is configured) and the password sign-in kept in session state."""
    import streamlit as st

    secrets = _read_secrets()
    kind = store_kind(url)
    email: str | None = None
    verified: bool | None = None
    if kind != "sqlite" and auth_configured(secrets):
        user = st.user
        if user.get("is_logged_in") is True:
            claimed = user.get("email")
            email = claimed if isinstance(claimed, str) else None
            flag = user.get("email_verified")
            verified = flag if isinstance(flag, bool) else None
    encoded = password_hash(secrets)
    password_ok = token_matches(st.session_state.get(_SESSION_KEY), encoded)
    return decide_access(
        kind, secrets, email=email, email_verified=verified, password_ok=password_ok
    )


def sign_in(access: Access) -> None:
    """For a reader who cannot edit: the reason, and the control that lets an editor in (a login
    button, the password form, or only the how-to). For a password editor: a sign-out button.
    Call it once per page run, after :func:`editor_access`."""
    import streamlit as st
    from streamlit.errors import StreamlitAuthError

    if access.can_edit:
        if access.method == "password" and st.button(
            "Stop editing (sign out)", key="unitwise_editor_sign_out"
        ):
            st.session_state.pop(_SESSION_KEY, None)
            st.rerun()
        return

    st.info(access.reason)
    if access.method == "login":
        if st.user.get("is_logged_in") is True:
            if st.button("Log out", key="unitwise_editor_logout"):
                st.logout()
            return
        for provider in login_providers(_read_secrets()):
            label = "Log in to edit" if provider is None else f"Log in with {provider} to edit"
            if st.button(label, key=f"unitwise_editor_login_{provider or 'default'}"):
                try:
                    st.login(provider)
                except StreamlitAuthError as exc:  # Authlib missing, or [auth] incomplete
                    st.error(f"Login is not available: {exc}")
    elif access.method == "password":
        with st.form("unitwise_editor_sign_in", clear_on_submit=True):
            password = st.text_input(
                "Editor password", type="password", autocomplete="current-password"
            )
            submitted = st.form_submit_button("Sign in to edit")
        if submitted:
            encoded = password_hash(_read_secrets())
            if not password:
                st.error("Enter the editor password.")
            elif verify_password(password, encoded):
                st.session_state[_SESSION_KEY] = session_token(str(encoded))
                st.rerun()
            else:
                st.error("That is not the editor password.")


# ---------------------------------------------------------------------------------------------
# CLI: python -m dashboard.access hash-password
# ---------------------------------------------------------------------------------------------


def _read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Editor password: ")
        if getpass.getpass("Again: ") != first:
            raise SystemExit("The two passwords differ; nothing printed.")
        return first
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dashboard.access", description="The app's editor role."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "hash-password",
        help="print a hash of the editor password (read from a prompt, or stdin when not a tty)",
    )
    parser.parse_args(argv)
    password = _read_password()
    if not password:
        print("The editor password must not be empty; nothing printed.", file=sys.stderr)
        return 2
    print(hash_password(password))
    print(
        f'Put it in .streamlit/secrets.toml under [{SECTION}] as {HASH_KEY} = "<the line above>".',
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
