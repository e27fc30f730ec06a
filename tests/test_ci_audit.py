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


def test_a_project_page_audits_only_a_package_installed_at_its_latest_release() -> None:
    """PyPI's project page lists its latest release's vulnerabilities: a package installed at
    that release is audited by it, an older one is named as not verified (here: setuptools
    65.5.0, which a new venv of Python 3.11 carries, has CVE-2022-40897; its latest has none)."""
    installed = {"sqlalchemy": "2.0.40", "setuptools": "65.5.0", "zipp": "3.20.0"}
    latest = {"sqlalchemy": ("2.0.40", []), "setuptools": ("84.2.1", []), "zipp": None}
    code, line = audit_module().latest_verdict(installed, latest)
    assert code == 0 and "1 installed packages at their latest release audited" in line
    assert "2 NOT VERIFIED: setuptools 65.5.0 (latest 84.2.1), zipp 3.20.0 (no answer)" in line


def test_a_vulnerability_of_an_installed_latest_release_fails_ci() -> None:
    installed = {"ecdsa": "0.19.2", "sqlalchemy": "2.0.40"}
    latest = {"ecdsa": ("0.19.2", ["PYSEC-2026-1325"]), "sqlalchemy": ("2.0.40", [])}
    code, line = audit_module().latest_verdict(installed, latest)
    assert code == 1 and "ecdsa 0.19.2: PYSEC-2026-1325" in line


def test_no_project_page_answering_is_not_a_clean_audit() -> None:
    code, line = audit_module().latest_verdict({"zipp": "3.20.0"}, {"zipp": None})
    assert code is None and "none of 1 packages could be audited" in line


def test_a_withdrawn_advisory_does_not_fail_ci() -> None:
    page = {
        "info": {"version": "1.0"},
        "vulnerabilities": [{"id": "GHSA-old", "withdrawn": "2026-01-02T00:00:00"}, {"id": "X-1"}],
    }
    assert audit_module().project_page_release(page) == ("1.0", ["X-1"])


def test_a_page_that_is_not_a_project_page_is_no_answer() -> None:
    release = audit_module().project_page_release
    assert release(None) is None and release({"message": "blocked"}) is None
    assert release({"info": {"version": None}}) is None


def test_a_cut_answer_is_no_answer_not_a_crash(monkeypatch) -> None:
    """A network fault of any kind leaves the package not verified; it never fails CI."""
    import http.client
    import urllib.request

    module = audit_module()

    def cut(*_args: object, **_kwargs: object) -> None:
        raise http.client.IncompleteRead(b"{")

    monkeypatch.setattr(urllib.request, "urlopen", cut)
    assert module.latest_release("sqlalchemy") is None


def test_without_pip_audits_list_the_installed_packages_are_audited() -> None:
    """pip-audit that failed before writing its report (a non-404 refusal) lists nothing: the
    project pages then audit what is installed here, the project itself left out."""
    names = {n.lower() for n in audit_module().installed_names()}
    assert {"sqlalchemy", "streamlit", "pandas"} <= names
    assert "unitwise" not in names
