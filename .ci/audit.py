"""CI's dependency audit: pip-audit over the packages installed in .venv, against PyPI's
vulnerability data and, when that audits nothing, OSV's. A known vulnerability fails CI (exit 1).
A service that cannot be reached does not: pip-audit then reports every package as "not found"
(or crashes), and this prints, loudly, that nothing was verified, with the reason.

When pip-audit audited nothing, PyPI's project pages are read instead (``/pypi/<name>/json``,
which a network may answer when the release pages pip-audit asks for, ``/pypi/<name>/<version>/
json``, are refused: so on the project's machines). A project page lists the vulnerabilities of
its latest release only, so it audits a package installed at that release; every other package
is named as not verified.

Run by .ci/run after the tests: ``.venv/bin/python .ci/audit.py``.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import tempfile
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PIP_AUDIT = Path(sys.executable).with_name("pip-audit")
SERVICES = ("pypi", "osv")


def audit(service: str) -> tuple[list[dict], str]:
    """The packages pip-audit reported with ``service`` (empty, with why, when it failed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        argv = [str(PIP_AUDIT), "--local", "--skip-editable", "--progress-spinner", "off"]
        argv += ["--vulnerability-service", service, "--format", "json", "--output", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)  # noqa: S603 - a fixed argv: this venv's pip-audit
        if not out.exists():
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            return [], lines[-1] if lines else f"pip-audit exited {done.returncode}"
        return json.loads(out.read_text())["dependencies"], ""


def verdict(service: str, packages: list[dict]) -> tuple[int | None, str]:
    """Exit code and line for one service's report: 1 on a known vulnerability, 0 when some
    packages were audited, None when it audited none (unreachable: try the next service)."""
    vulnerable = [p for p in packages if p.get("vulns")]
    if vulnerable:
        found = "; ".join(
            f"{p['name']} {p.get('version', '')}: " + ", ".join(v["id"] for v in p["vulns"])
            for p in vulnerable
        )
        return 1, f"pip-audit ({service}): KNOWN VULNERABILITIES: {found}"
    audited = [p for p in packages if "skip_reason" not in p]
    if not audited:
        return None, f"{service}: all {len(packages)} packages 'not found'"
    skipped = len(packages) - len(audited)
    return 0, (
        f"pip-audit ({service}): {len(audited)} installed packages audited, no known"
        f" vulnerabilities ({skipped} could not be audited)."
    )


PROJECT_PAGE = "https://pypi.org/pypi/{name}/json"


def latest_release(name: str) -> tuple[str, list[str]] | None:
    """The latest release on PyPI and the ids of its known vulnerabilities (None: no answer)."""
    url = PROJECT_PAGE.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=20) as answer:  # noqa: S310 - a fixed https URL
            return project_page_release(json.load(answer))
    except Exception:  # a refused, cut or garbled answer (IncompleteRead is not an OSError)
        return None


def project_page_release(page: object) -> tuple[str, list[str]] | None:
    """A project page's latest release and its vulnerabilities, withdrawn advisories left out
    (as pip-audit does); None for a page that is not one (a proxy's own JSON, say)."""
    if not isinstance(page, dict) or not isinstance(page.get("info"), dict):
        return None
    version = page["info"].get("version")
    vulns = page.get("vulnerabilities") or []
    if not isinstance(version, str) or not isinstance(vulns, list):
        return None
    return version, [
        str(v["id"]) for v in vulns if isinstance(v, dict) and "id" in v and not v.get("withdrawn")
    ]


def installed_names() -> list[str]:
    """The packages installed in this venv, editable ones (the project itself) left out: what
    the project pages audit when pip-audit failed before it listed any."""
    names, editable = set(), set()
    for dist in importlib.metadata.distributions():  # the checkout's egg-info is one more copy
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        (editable if direct.get("dir_info", {}).get("editable") else names).add(
            dist.metadata["Name"]
        )
    return sorted(names - editable, key=str.lower)


def latest_verdict(
    installed: dict[str, str], latest: dict[str, tuple[str, list[str]] | None]
) -> tuple[int | None, str]:
    """Exit code and line for the project pages: 1 on a known vulnerability of a package
    installed at its latest release, 0 when some were audited, None when none could be."""
    at_latest = {n: v for n, v in installed.items() if (latest.get(n) or ("",))[0] == v}
    vulnerable = {n: latest[n][1] for n in at_latest if (latest[n] or ("", []))[1]}
    not_verified = sorted(set(installed) - set(at_latest))
    why = ", ".join(
        f"{n} {installed[n]}" + (f" (latest {latest[n][0]})" if latest.get(n) else " (no answer)")
        for n in not_verified
    )
    if vulnerable:
        found = "; ".join(f"{n} {installed[n]}: {', '.join(ids)}" for n, ids in vulnerable.items())
        return 1, f"PyPI project pages: KNOWN VULNERABILITIES: {found}"
    if not at_latest:
        return None, f"PyPI project pages: none of {len(installed)} packages could be audited"
    return 0, (
        f"PyPI project pages: {len(at_latest)} installed packages at their latest release"
        f" audited, no known vulnerabilities; {len(not_verified)} NOT VERIFIED: {why or 'none'}"
    )


def audit_latest(names: list[str]) -> tuple[int | None, str]:
    """The project-page audit of the packages pip-audit listed, at their installed versions."""
    installed = {n: importlib.metadata.version(n) for n in names}
    with ThreadPoolExecutor(16) as pool:
        latest = dict(zip(names, pool.map(latest_release, names), strict=True))
    return latest_verdict(installed, latest)


def main() -> int:
    reasons = []
    listed: list[str] = []
    for service in SERVICES:
        packages, failure = audit(service)
        listed = listed or [
            p["name"] for p in packages if "editable" not in p.get("skip_reason", "")
        ]
        code, line = verdict(service, packages)
        if code is not None:
            print(line)
            return code
        reasons.append(f"{service}: {failure}" if failure else line)
    print(
        "pip-audit: NOT VERIFIED - no vulnerability service could be reached from here ("
        + "; ".join(reasons)
        + "). Nothing was audited by pip-audit; CI does not fail on that, only on a found"
        " vulnerability."
    )
    code, line = audit_latest(listed or installed_names())
    if line:
        print(line)
    return code or 0


if __name__ == "__main__":
    raise SystemExit(main())
