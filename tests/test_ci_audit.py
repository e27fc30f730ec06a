"""CI's dependency audit (.ci/audit.py) reads pip-audit's JSON report: a known vulnerability
fails CI, packages audited clean pass, and a report in which every package was "not found" (the
vulnerability service unreachable, as on a machine without the internet) is not taken for a
clean audit."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

AUDIT = Path(__file__).resolve().parent.parent / ".ci" / "audit.py"
SKIPPED = {"name": "zipp", "skip_reason": "Dependency not found on PyPI and could not be audited"}
CLEAN = {"name": "sqlalchemy", "version": "2.0.40", "vulns": []}
BAD = {"name": "jinja2", "version": "3.1.2", "vulns": [{"id": "GHSA-h5c8-rqwp-cp95"}]}


def audit_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ci_audit", AUDIT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_known_vulnerability_fails_ci() -> None:
    code, line = audit_module().verdict("pypi", [CLEAN, BAD, SKIPPED])
    assert code == 1 and "jinja2 3.1.2: GHSA-h5c8-rqwp-cp95" in line


def test_packages_audited_clean_pass_and_say_how_many() -> None:
    code, line = audit_module().verdict("osv", [CLEAN, SKIPPED])
    assert code == 0 and "1 installed packages audited" in line and "(1 could not" in line


def test_nothing_audited_is_not_a_clean_audit() -> None:
    code, line = audit_module().verdict("pypi", [SKIPPED, SKIPPED])
    assert code is None and "all 2 packages 'not found'" in line
