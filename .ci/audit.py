"""CI's dependency audit: pip-audit over the packages installed in .venv, against PyPI's
vulnerability data and, when that audits nothing, OSV's. A known vulnerability fails CI (exit 1).
A service that cannot be reached does not: pip-audit then reports every package as "not found"
(or crashes), and this prints, loudly, that nothing was verified, with the reason.

Run by .ci/run after the tests: ``.venv/bin/python .ci/audit.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
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


def main() -> int:
    reasons = []
    for service in SERVICES:
        packages, failure = audit(service)
        code, line = verdict(service, packages)
        if code is not None:
            print(line)
            return code
        reasons.append(f"{service}: {failure}" if failure else line)
    print(
        "pip-audit: NOT VERIFIED - no vulnerability service could be reached from here ("
        + "; ".join(reasons)
        + "). Nothing was audited; CI does not fail on that, only on a found vulnerability."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
