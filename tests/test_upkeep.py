"""Upkeep: every pinned file is covered by Dependabot, the pins it cannot read are checked, the audit works."""

from __future__ import annotations

import copy
import datetime
import fnmatch
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.version import Version

from scripts import audit, azure_regions, stale_pins
from stacks.image import base_image
from tests import osv
from tests.serving.server import REPO

DEPENDABOT = REPO / ".github" / "dependabot.yml"
# Not searched for pinned files: environments, caches, and the tests (their fixtures are old on purpose).
SKIPPED_DIRECTORIES = {".git", ".tools", "node_modules", "__pycache__", "tests"}


def pinned_files(root: Path = REPO) -> dict[str, str]:
    """Every file in the tree that pins something, with the Dependabot ecosystem that reads it."""
    found = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in SKIPPED_DIRECTORIES and not d.startswith(".venv")]
        for name in files:
            path = Path(directory, name)
            relative = path.relative_to(root).as_posix()
            if re.fullmatch(r"requirements.*\.(txt|in)", name):
                found[relative] = "pip"
            elif name in ("Dockerfile", "Containerfile") or name.endswith(".Dockerfile"):
                found[relative] = "docker"
            elif fnmatch.fnmatch(relative, ".github/workflows/*.y*ml") and re.search(
                r"^\s*(-\s+)?uses:\s+[^.\s]", path.read_text(), re.MULTILINE
            ):
                found[relative] = "github-actions"
    return found


def uncovered(files: dict[str, str], config: dict[str, Any]) -> list[str]:
    """The pinned files no update entry of `config` reads: its ecosystem, its directory, not excluded."""

    def covers(entry: dict[str, Any], path: str, ecosystem: str) -> bool:
        if entry["package-ecosystem"] != ecosystem:
            return False
        if any(fnmatch.fnmatch(path, pattern) for pattern in entry.get("exclude-paths", [])):
            return False
        # Workflows are read from .github/workflows whatever the entry's directory ("/").
        folder = "/" if ecosystem == "github-actions" else "/" + str(Path(path).parent).removeprefix(".")
        directories = entry.get("directories") or [entry["directory"]]
        return any(fnmatch.fnmatch(folder.rstrip("/") or "/", d.rstrip("/") or "/") for d in directories)

    return sorted(
        path
        for path, ecosystem in files.items()
        if not any(covers(entry, path, ecosystem) for entry in config["updates"])
    )


def dependabot() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(DEPENDABOT.read_text())
    return config


def test_dependabot_config_is_valid_against_its_published_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.dependabot", str(DEPENDABOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_pinned_file_has_update_pull_requests() -> None:
    files = pinned_files()
    # The discovery finds what the project ships, so a broken search cannot pass by finding nothing.
    for expected, ecosystem in {
        "serving/requirements.in": "pip",
        "serving/requirements.txt": "pip",
        "serving/requirements-batch.txt": "pip",
        "serving/requirements-drift.txt": "pip",
        "requirements-dev.txt": "pip",  # the Pulumi SDK and providers
        "requirements-checkov.txt": "pip",
        "policy/requirements.txt": "pip",
        "serving/Dockerfile": "docker",
        "proxy/Dockerfile": "docker",
        ".github/workflows/pull-request.yml": "github-actions",
        ".github/workflows/docs.yml": "github-actions",  # the documentation site's publication
    }.items():
        assert files.get(expected) == ecosystem, expected
    assert uncovered(files, dependabot()) == [], "add them to .github/dependabot.yml"


def test_a_pinned_file_nobody_covers_is_reported(tmp_path: Path) -> None:
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "requirements.txt").write_text("ruff==0.1.0\n")
    (tmp_path / "proxy").mkdir()
    (tmp_path / "proxy" / "Dockerfile").write_text("FROM caddy:2@sha256:" + "0" * 64 + "\n")
    files = pinned_files(tmp_path)
    assert uncovered(files, dependabot()) == ["tools/requirements.txt"]
    without_docker = copy.deepcopy(dependabot())
    without_docker["updates"] = [u for u in without_docker["updates"] if u["package-ecosystem"] != "docker"]
    assert uncovered(files, without_docker) == ["proxy/Dockerfile", "tools/requirements.txt"]


def test_base_images_are_pinned_where_dependabot_reads_them() -> None:
    """FROM lines with a digest: Dependabot reads no ARG defaults, so an image there would never move."""
    for path in (p for p, ecosystem in pinned_files().items() if ecosystem == "docker"):
        text = (REPO / path).read_text()
        stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.MULTILINE | re.IGNORECASE))
        for image in re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE):
            pinned = re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", image)
            assert image == "scratch" or image in stages or pinned, f"{path}: FROM {image}"
        assert not re.search(r"^ARG\s+\w+=\S+@sha256:", text, re.MULTILINE), f"{path}: an image pinned in an ARG"
    assert base_image("serving").startswith("python:3.11-slim-bookworm@sha256:")
    assert base_image("proxy").startswith("caddy:")


# The AKS table and kubelogin: pins outside Dependabot, checked weekly by scripts/stale_pins.py.
TABLE = {"1.34": datetime.date(2026, 11, 30), "1.35": datetime.date(2027, 3, 31)}


def test_an_aks_table_about_to_run_out_names_what_to_update() -> None:
    assert stale_pins.aks_problems(datetime.date(2026, 12, 1), TABLE, "1.35") == []
    problems = stale_pins.aks_problems(datetime.date(2027, 2, 15), TABLE, "1.35")
    assert len(problems) == 2
    assert "newest AKS minor it knows, 1.35, reaches its end of life on 2027-03-31; add the newer" in problems[0]
    assert "DEFAULT_KUBERNETES_VERSION 1.35 reaches its AKS end of life on 2027-03-31" in problems[1]
    # Only the default is due: the table has a newer minor to move to.
    (problem,) = stale_pins.aks_problems(datetime.date(2026, 11, 1), TABLE, "1.34")
    assert "DEFAULT_KUBERNETES_VERSION 1.34" in problem
    assert "move it to 1.35" in problem


def test_a_newer_kubelogin_release_is_reported() -> None:
    assert stale_pins.kubelogin_problem("v0.2.9", "v0.2.9") is None
    assert stale_pins.kubelogin_problem("v0.2.9", "v0.2.8") is None
    problem = stale_pins.kubelogin_problem("v0.2.9", "v0.2.10")
    assert problem is not None
    assert "kubelogin v0.2.10 is released" in problem
    assert "pin v0.2.9" in problem


def test_a_region_azure_lists_and_the_stacks_list_lacks_makes_the_weekly_check_red(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`az account list-locations` JSON, as names (the workflow's --query) or as location objects."""
    from stacks.regions import azure_region_problem

    listed = tmp_path / "locations.json"
    listed.write_text('["westeurope", "swedencentral", "NorthEurope"]')
    assert azure_regions.main([str(listed)]) == 0
    assert "AZURE_REGIONS has all 3 regions Azure lists" in capsys.readouterr().out
    listed.write_text('[{"name": "westeurope"}, {"name": "atlantiswest"}, {"name": "atlantiseast"}]')
    assert azure_regions.main([str(listed)]) == 1
    assert "AZURE_REGIONS lacks atlantiseast, atlantiswest, which Azure lists" in capsys.readouterr().err
    # ... which is what a stack naming it meets until the list is updated.
    problem = azure_region_problem("atlantiseast")
    assert problem is not None
    assert problem.endswith("(if Azure opened 'atlantiseast' after this list was made, add it to AZURE_REGIONS in "
                            "stacks/regions.py)")  # fmt: skip
    for bad in ('{"name": "westeurope"}', "[1, 2]", "not json"):
        listed.write_text(bad)
        assert azure_regions.main([str(listed)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {listed}: ")


def test_the_upkeep_workflow_checks_the_pins_dependabot_cannot_read_and_audits_weekly() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "upkeep.yml").read_text())
    assert workflow[True]["schedule"], "on: schedule (yaml reads `on` as True)"
    runs = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("scripts/stale_pins.py" in r for r in runs)
    assert any("make audit" in r for r in runs)
    assert any("az account list-locations" in r and "scripts/azure_regions.py" in r for r in runs)


def test_the_audit_gates_pull_requests_and_deployments() -> None:
    for name in ("pull-request.yml", "main.yml"):
        workflow = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
        assert any("make audit" in s.get("run", "") for s in workflow["jobs"]["audit"]["steps"]), name
    main = yaml.safe_load((REPO / ".github" / "workflows" / "main.yml").read_text())
    assert "audit" in main["jobs"]["dev"]["needs"], "nothing deploys with a fixable known vulnerability"


def test_dependabot_pull_requests_skip_only_what_needs_cloud_secrets() -> None:
    """Dependabot's runs get no repository secrets: the preview would fail; the tests and the audit must run."""
    jobs = yaml.safe_load((REPO / ".github" / "workflows" / "pull-request.yml").read_text())["jobs"]
    assert "dependabot[bot]" in jobs["preview"]["if"]
    for job in ("test", "container", "offline-plan", "audit"):
        assert "dependabot" not in str(jobs[job].get("if", "")), job
    # The container tests build from the pinned bases themselves, so a digest update is built and run.
    (run,) = [s["run"] for s in jobs["container"]["steps"] if "tests/container" in s.get("run", "")]
    assert "sudo" in run
    assert "MLSERVE_TEST_BASE_IMAGE" in run
    assert "MLSERVE_TEST_CADDY_IMAGE" in run


# The audit: pip-audit's findings judged against the allow-list.
def report(*vulns: dict[str, Any], name: str = "jinja2", version: str = "2.10") -> dict[str, Any]:
    return {"dependencies": [{"name": name, "version": version, "vulns": list(vulns)}], "fixes": []}


FIXABLE = {"id": "PYSEC-2019-217", "aliases": ["CVE-2019-10906", "GHSA-462w-v97r-4m45"], "fix_versions": ["2.10.1"]}
UNFIXED = {"id": "GHSA-aaaa-bbbb-cccc", "aliases": [], "fix_versions": []}
TODAY = datetime.date(2026, 12, 7)


def allowlist(tmp_path: Path, **fields: object) -> Path:
    entry = {"id": "CVE-2019-10906", "package": "Jinja2", "reason": "sandbox unused", "expires": "2027-01-31"} | fields
    lines = ["[[ignore]]"] + [f"{k} = {v}" if k == "expires" else f'{k} = "{v}"' for k, v in entry.items()]
    path = tmp_path / "audit-allowlist.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_fixable_vulnerability_fails_and_one_without_a_fix_is_reported() -> None:
    verdict = audit.judge(report(FIXABLE, UNFIXED), [])
    assert verdict.failures == [
        "jinja2 2.10: CVE-2019-10906 / GHSA-462w-v97r-4m45 / PYSEC-2019-217, fixed in 2.10.1",
    ]
    assert verdict.unfixed == ["jinja2 2.10: GHSA-aaaa-bbbb-cccc, no fixed version yet"]


def test_an_allow_listed_vulnerability_passes_by_any_of_its_ids_with_its_reason(tmp_path: Path) -> None:
    allowed = audit.load_allowlist(allowlist(tmp_path), TODAY)
    verdict = audit.judge(report(FIXABLE), allowed)
    assert verdict.failures == []
    assert verdict.accepted == [
        "jinja2 2.10: CVE-2019-10906 / GHSA-462w-v97r-4m45 / PYSEC-2019-217 (allowed until 2027-01-31: sandbox unused)"
    ]
    # The same advisory on another package is not covered by the entry.
    assert audit.judge(report(FIXABLE, name="markupsafe"), allowed).failures


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expires": "2026-12-06"}, "expired on 2026-12-06; update Jinja2 or review the entry again"),
        ({"reason": ""}, "missing reason"),
        ({"expires": "2027-12-31"}, "expires more than 90 days ahead"),
        ({"expires": '"soon"'}, "expires must be a TOML date"),
    ],
)
def test_the_allow_list_refuses_expired_and_unreasoned_entries(tmp_path: Path, fields: dict, message: str) -> None:
    with pytest.raises(audit.AllowlistError, match=re.escape(message)):
        audit.load_allowlist(allowlist(tmp_path, **fields), TODAY)


def test_the_committed_allow_list_is_valid_today() -> None:
    audit.load_allowlist(audit.ALLOWLIST, datetime.date.today())


def test_packages_the_service_could_not_look_up_fail_the_audit_instead_of_passing() -> None:
    """pip-audit says "No known vulnerabilities found" and exits 0 when it could look nothing up."""
    skipped = {"dependencies": [{"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}], "fixes": []}
    with pytest.raises(audit.AuditIncomplete, match="1 packages not audited"):
        audit.judge(skipped, [])


# The audit for real: scripts/audit.py running pip-audit, whose OSV client asks a local stand-in of OSV's
# API (tests/osv.py) serving advisory records copied from the PyPA advisory database (tests/fixtures/osv/).
def run_audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "scripts" / "audit.py"), *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env, timeout=240)


@pytest.fixture
def stand_in() -> Iterator[osv.StandIn]:
    with osv.serve() as served:
        yield served


@pytest.fixture
def old_pin(tmp_path: Path) -> Path:
    """A lock with a deliberately old pin: Jinja2 2.10 (CVE-2019-10906, fixed in 2.10.1)."""
    lock = tmp_path / "old-pins.txt"
    lock.write_text("jinja2==2.10\n")
    return lock


def test_the_audit_reports_a_deliberately_old_pin(old_pin: Path, stand_in: osv.StandIn) -> None:
    result = run_audit(str(old_pin), "--allowlist", str(old_pin.parent / "none.toml"), "--osv-url", stand_in.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert stand_in.asked() == {"jinja2": "2.10"}, "one lookup, by the normalised name and the pinned version"
    assert result.stdout.splitlines() == [
        "VULNERABLE jinja2 2.10: CVE-2019-10906 / PYSEC-2019-217, fixed in 2.10.1",
        "VULNERABLE jinja2 2.10: CVE-2020-28493 / PYSEC-2021-66 / SNYK-PYTHON-JINJA2-1012994, fixed in 2.11.3",
    ], "PYSEC-2019-220 (fixed in 2.8.1) is not about 2.10"
    assert "update these pins" in result.stderr


def test_every_fixed_version_of_an_advisory_is_named(tmp_path: Path, stand_in: osv.StandIn) -> None:
    """PYSEC-2023-212 was fixed on two lines (1.26.18 and 2.0.7); the record lists both in one range."""
    lock = tmp_path / "old-pins.txt"
    lock.write_text("urllib3==2.0.6\n")
    result = run_audit(str(lock), "--allowlist", str(tmp_path / "none.toml"), "--osv-url", stand_in.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "VULNERABLE urllib3 2.0.6: CVE-2023-45803 / GHSA-g4mx-q9vg-27p4 / PYSEC-2023-212, fixed in 1.26.18, 2.0.7"
    ]


def test_an_allow_listed_old_pin_passes_with_its_reason(old_pin: Path, stand_in: osv.StandIn) -> None:
    expires = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
    path = allowlist(old_pin.parent, expires=expires)  # CVE-2019-10906, an alias of PYSEC-2019-217
    with path.open("a") as file:
        file.write(
            f'[[ignore]]\nid = "PYSEC-2021-66"\npackage = "jinja2"\nreason = "urlize unused"\nexpires = {expires}\n'
        )
    result = run_audit(str(old_pin), "--allowlist", str(path), "--osv-url", stand_in.url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        f"accepted  jinja2 2.10: CVE-2019-10906 / PYSEC-2019-217 (allowed until {expires}: sandbox unused)",
        f"accepted  jinja2 2.10: CVE-2020-28493 / PYSEC-2021-66 / SNYK-PYTHON-JINJA2-1012994 (allowed until {expires}: "
        "urlize unused)",
    ]
    assert "no fixable known vulnerability" in result.stdout


def test_the_image_locks_are_looked_up_package_by_package_and_pass(stand_in: osv.StandIn) -> None:
    """`make audit` as CI runs it, with the service's address from the environment (a team's OSV mirror)."""
    env = {**os.environ, "MLSERVE_AUDIT_OSV_URL": stand_in.url}
    result = run_audit(env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "serving/requirements.txt, " in result.stdout
    pinned = {}
    for lock in audit.LOCKS:
        pinned |= dict(re.findall(r"^([a-z0-9-]+)==(\S+)", lock.read_text(), re.MULTILINE))
    assert pinned["urllib3"] != "2.0.6", "a fixture record is about urllib3: the lock's version is not affected"
    assert stand_in.asked() == pinned, "every package of both locks, at its pinned version"


def test_an_unreachable_vulnerability_service_is_not_a_pass(old_pin: Path) -> None:
    with osv.serve() as gone:
        pass  # closed: nothing listens at its address any more
    result = run_audit(str(old_pin), "--osv-url", gone.url)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"audit: could not audit (osv service at {gone.url})" in result.stderr
    with osv.serve() as wrong:  # a server that answers, but not OSV's API: 404
        result = run_audit(str(old_pin), "--osv-url", wrong.url.replace("/v1/", "/v2/"))
    assert result.returncode == 2, result.stdout + result.stderr


def test_the_stand_in_decides_what_a_record_affects_as_osv_does() -> None:
    records = {r["id"]: r for r in osv.load_records()}
    assert set(records) == {"PYSEC-2019-217", "PYSEC-2019-220", "PYSEC-2021-66", "PYSEC-2023-212"}
    assert osv.affects(records["PYSEC-2019-217"], "Jinja2", "2.10")
    assert osv.affects(records["PYSEC-2019-217"], "jinja2", "2.10.0"), "the same PyPI version"
    assert not osv.affects(records["PYSEC-2019-217"], "jinja2", "2.10.1")
    assert not osv.affects(records["PYSEC-2019-217"], "markupsafe", "2.10")
    # By the ECOSYSTEM ranges alone (a version the list does not enumerate): both lines of urllib3.
    ranges = records["PYSEC-2023-212"]["affected"][0]["ranges"]
    assert [osv.in_ranges(Version(v), ranges) for v in ("1.26.17.post1", "1.26.18", "2.0.6.post1", "2.0.7")] == [
        True,
        False,
        True,
        False,
    ]
    assert osv.in_ranges(Version("1.5"), [{"type": "ECOSYSTEM", "events": [{"introduced": "1.0"}]}]), "no fix yet"
    last = [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.2"}]}]
    assert osv.in_ranges(Version("1.2"), last)
    assert not osv.in_ranges(Version("1.2.1"), last)
    assert (
        osv.query(list(records.values()), {"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "3.1.6"})
        == {}
    )


def live_pypi_unreachable() -> str | None:
    url = "https://pypi.org/pypi/jinja2/2.10/json"  # what pip-audit's PyPI service asks
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
    except (urllib.error.URLError, TimeoutError) as error:
        return f"PyPI's vulnerability data ({url}) is not reachable here: {error}"
    return None


def test_the_audit_against_pypi_reports_the_old_pin_too(old_pin: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The other service, live: an extra where PyPI's JSON API answers (the OSV path is tested above)."""
    if reason := live_pypi_unreachable():
        pytest.skip(reason)
    assert audit.main([str(old_pin), "--allowlist", str(old_pin.parent / "none.toml"), "--service", "pypi"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"VULNERABLE jinja2 2\.10: .*CVE-2019-10906.*, fixed in", out), out


def test_the_audit_command_exits_by_what_it_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """main() over canned pip-audit reports: 1 on a fixable finding, 0 once accepted, 2 when incomplete."""
    lock = tmp_path / "lock.txt"
    lock.write_text("jinja2==2.10\n")
    none = tmp_path / "none.toml"
    monkeypatch.setattr(audit, "pip_audit", lambda path, service, osv_url: report(FIXABLE, UNFIXED))
    assert audit.main([str(lock), "--allowlist", str(none)]) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE jinja2 2.10: CVE-2019-10906" in out
    assert "unfixed   jinja2 2.10: GHSA-aaaa-bbbb-cccc" in out

    accepted = allowlist(tmp_path, expires=(datetime.date.today() + datetime.timedelta(days=30)).isoformat())
    with accepted.open("a") as file:
        file.write('[[ignore]]\nid = "GHSA-gone"\npackage = "old"\nreason = "fixed since"\n')
        file.write(f"expires = {datetime.date.today().isoformat()}\n")
    assert audit.main([str(lock), "--allowlist", str(accepted)]) == 0
    out = capsys.readouterr().out
    assert "accepted  jinja2 2.10: CVE-2019-10906" in out
    assert "unused    audit-allowlist.toml: GHSA-gone (old) no longer matches: remove it" in out

    monkeypatch.setattr(audit, "pip_audit", lambda path, service, osv_url: {"dependencies": [], "fixes": []})
    assert audit.main([str(lock), "--allowlist", str(none)]) == 0
    skipped = {"dependencies": [{"name": "jinja2", "skip_reason": "Dependency not found on PyPI"}], "fixes": []}
    monkeypatch.setattr(audit, "pip_audit", lambda path, service, osv_url: skipped)
    assert audit.main([str(lock), "--allowlist", str(none)]) == 2
    assert "could not audit" in capsys.readouterr().err


def test_the_images_python_is_reported_half_a_year_before_its_end_of_life() -> None:
    dockerfile = (REPO / "serving" / "Dockerfile").read_text()
    assert stale_pins.python_problem(dockerfile, datetime.date(2027, 4, 1)) is None
    problem = stale_pins.python_problem(dockerfile, datetime.date(2027, 5, 15))
    assert problem is not None
    assert "Python 3.11 reaches its end of life on 2027-10-31" in problem
    unknown = stale_pins.python_problem("FROM python:3.99-slim@sha256:" + "0" * 64, datetime.date(2027, 1, 1))
    assert unknown is not None
    assert "unknown" in unknown
    other = stale_pins.python_problem("FROM debian:12", datetime.date(2027, 1, 1))
    assert "no `FROM python:<minor>` line" in str(other)


def test_the_stale_pins_command_fails_naming_a_newer_kubelogin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(stale_pins, "aks_problems", lambda today: [])
    monkeypatch.setattr(stale_pins, "python_problem", lambda dockerfile, today: None)
    monkeypatch.setattr(stale_pins, "latest_kubelogin", lambda: stale_pins.KUBELOGIN_VERSION)
    assert stale_pins.main([]) == 0
    monkeypatch.setattr(stale_pins, "latest_kubelogin", lambda: "v99.0.0")
    assert stale_pins.main([]) == 1
    assert "stale: kubelogin v99.0.0 is released" in capsys.readouterr().out
    assert stale_pins.main(["--offline"]) == 0


def test_pip_audit_reads_a_lock_as_pinned_and_a_crash_is_not_a_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        return subprocess.CompletedProcess(command, 1, stdout='{"dependencies": [], "fixes": []}', stderr="")

    monkeypatch.setattr(audit.subprocess, "run", run)
    hashed = tmp_path / "hashed.txt"
    hashed.write_text("jinja2==2.10 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("jinja2==2.10\n")
    assert audit.pip_audit(hashed, "pypi") == {"dependencies": [], "fixes": []}
    audit.pip_audit(plain, "osv")
    assert "--disable-pip" in commands[0]
    assert "--no-deps" not in commands[0], "a hashed lock is complete as it is"
    assert "--no-deps" in commands[1]
    assert commands[1][commands[1].index("--vulnerability-service") + 1] == "osv"
    assert commands[1][commands[1].index("--osv-url") + 1] == "https://api.osv.dev/v1/query"
    assert "--osv-url" not in commands[0], "the PyPI service has no address to choose"

    monkeypatch.setattr(
        audit.subprocess, "run", lambda command, **_: subprocess.CompletedProcess(command, 1, "", "network down")
    )
    with pytest.raises(audit.AuditIncomplete, match="network down"):
        audit.pip_audit(plain, "pypi")
