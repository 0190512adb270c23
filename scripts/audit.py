"""Known vulnerabilities in what the image installs: pip-audit over its locks, with a reviewed allow-list.

    python scripts/audit.py                      # serving/requirements.txt and requirements-batch.txt
    python scripts/audit.py path/to/lock.txt     # any fully pinned requirements file
    python scripts/audit.py --osv-url URL        # against a mirror of OSV's query API (or MLSERVE_AUDIT_OSV_URL)
    python scripts/audit.py --service pypi       # against PyPI's JSON API instead of OSV

The advisories come from OSV (api.osv.dev): the PyPA advisory database that PyPI shows, and GitHub's
reviewed advisories besides. Only names and pinned versions are sent; nothing is downloaded or installed.

Fails (exit 1) on a known vulnerability that has a fixed version and is not allow-listed, and on an
allow-list entry that is malformed or expired. A vulnerability with no fix yet is reported, not fatal:
there is nothing to update to. Exit 2 when the audit could not run or skipped a package (pip-audit
itself exits 0 then, "No known vulnerabilities found", having checked nothing).

The allow-list (audit-allowlist.toml) holds [[ignore]] entries: id (the advisory, as pip-audit names
it, or one of its aliases), package, reason, expires (a date at most MAX_DAYS ahead).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving.exit_codes import ExitCode

REPO = Path(__file__).resolve().parent.parent
LOCKS = [REPO / "serving" / "requirements.txt", REPO / "serving" / "requirements-batch.txt"]
ALLOWLIST = REPO / "audit-allowlist.toml"
MAX_DAYS = 90  # an accepted vulnerability is looked at again at least this often
OSV_URL = "https://api.osv.dev/v1/query"  # pip-audit's default; a mirror answers the same POST


class Audit(ExitCode):
    """`python scripts/audit.py` (`make audit`)."""

    PASSED = 0, "No known vulnerability with a fixed version, other than allow-listed ones"
    FAILED = (
        1,
        "A known vulnerability with a fixed version (VULNERABLE lines), or an allow-list entry malformed or expired",
    )
    NOT_AUDITED = 2, "The audit could not run or look every package up: nothing was checked, so it does not pass"


class AllowlistError(ValueError):
    """The allow-list is malformed or has an expired entry."""


class AuditIncomplete(RuntimeError):
    """pip-audit did not run, or could not look some packages up."""


@dataclass(frozen=True)
class Allowed:
    id: str
    package: str
    reason: str
    expires: datetime.date


@dataclass
class Verdict:
    failures: list[str] = field(default_factory=list)  # fixable and not accepted: the audit fails
    unfixed: list[str] = field(default_factory=list)  # no fixed version published yet
    accepted: list[str] = field(default_factory=list)
    used: set[Allowed] = field(default_factory=set)


def load_allowlist(path: Path, today: datetime.date) -> list[Allowed]:
    """The entries of `path`; raises AllowlistError naming each bad or expired entry."""
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("ignore", [])
    allowed, problems = [], []
    for number, entry in enumerate(entries, 1):
        where = f"{path.name} entry {number} ({entry.get('id', 'no id')})"
        missing = [k for k in ("id", "package", "reason", "expires") if not entry.get(k)]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        expires = entry["expires"]
        if not isinstance(expires, datetime.date) or isinstance(expires, datetime.datetime):
            problems.append(f"{where}: expires must be a TOML date (expires = 2027-01-31)")
        elif expires < today:
            again = "review the entry again and set a new date"
            problems.append(f"{where}: expired on {expires.isoformat()}; update {entry['package']} or {again}")
        elif (expires - today).days > MAX_DAYS:
            problems.append(f"{where}: expires more than {MAX_DAYS} days ahead; accept it for less time")
        else:
            allowed.append(Allowed(entry["id"], normalise(entry["package"]), entry["reason"], expires))
    if problems:
        raise AllowlistError("\n".join(problems))
    return allowed


def normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def judge(report: dict[str, Any], allowed: list[Allowed], verdict: Verdict | None = None) -> Verdict:
    """Sort pip-audit's JSON report into failures, unfixed and accepted findings."""
    verdict = Verdict() if verdict is None else verdict
    skipped = [f"{d['name']}: {d['skip_reason']}" for d in report["dependencies"] if d.get("skip_reason")]
    if skipped:
        more = f"\n  ... and {len(skipped) - 5} more" if len(skipped) > 5 else ""
        raise AuditIncomplete(f"{len(skipped)} packages not audited:\n  " + "\n  ".join(skipped[:5]) + more)
    for dependency in report["dependencies"]:
        name, version = normalise(dependency["name"]), dependency["version"]
        for vuln in dependency.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            line = f"{name} {version}: {' / '.join(sorted(ids))}"
            match = next((a for a in allowed if a.package == name and a.id in ids), None)
            if match:
                verdict.used.add(match)
                verdict.accepted.append(f"{line} (allowed until {match.expires.isoformat()}: {match.reason})")
            elif vuln.get("fix_versions"):
                verdict.failures.append(f"{line}, fixed in {', '.join(vuln['fix_versions'])}")
            else:
                verdict.unfixed.append(f"{line}, no fixed version yet")
    return verdict


def pip_audit(lock: Path, service: str, osv_url: str = OSV_URL) -> dict[str, Any]:
    """pip-audit's JSON report on `lock`, read as pinned (no resolver, no virtual environment)."""
    # A hashed lock is read as is (--disable-pip); an unhashed one needs --no-deps to say it is complete.
    pinning = [] if "--hash=" in lock.read_text() else ["--no-deps"]
    command = [sys.executable, "-m", "pip_audit", "-r", str(lock), "--disable-pip", *pinning]
    command += ["--vulnerability-service", service, "--format", "json", "--aliases", "on", "--progress-spinner", "off"]
    if service == "osv":
        command += ["--osv-url", osv_url]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    # pip-audit exits 1 when it finds vulnerabilities; the JSON on stdout says which.
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AuditIncomplete(f"pip-audit failed on {lock} (exit {result.returncode}):\n{result.stderr}") from None
    return report


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python scripts/audit.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("locks", nargs="*", type=Path, default=LOCKS)
    parser.add_argument("--allowlist", type=Path, default=ALLOWLIST)
    # OSV: the PyPA advisory database (what PyPI's JSON API reports) and GitHub's reviewed advisories.
    parser.add_argument("--service", choices=["osv", "pypi"], default="osv")
    parser.add_argument(
        "--osv-url",
        default=os.environ.get("MLSERVE_AUDIT_OSV_URL") or OSV_URL,
        help=f"OSV's query endpoint, or a mirror's (default: $MLSERVE_AUDIT_OSV_URL, else {OSV_URL})",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    where = f"osv service at {args.osv_url}" if args.service == "osv" else f"{args.service} service"
    try:
        allowed = load_allowlist(args.allowlist, datetime.date.today())
        verdict = Verdict()
        for lock in args.locks:
            judge(pip_audit(lock, args.service, args.osv_url), allowed, verdict)
    except AllowlistError as error:
        print(f"audit: the allow-list is not valid:\n{error}", file=sys.stderr)
        return Audit.FAILED
    except AuditIncomplete as error:
        print(f"audit: could not audit ({where}): {error}", file=sys.stderr)
        return Audit.NOT_AUDITED
    for line in verdict.accepted:
        print(f"accepted  {line}")
    for line in verdict.unfixed:
        print(f"unfixed   {line}")
    for entry in sorted(set(allowed) - verdict.used, key=lambda a: a.id):
        print(f"unused    {args.allowlist.name}: {entry.id} ({entry.package}) no longer matches: remove it")
    for line in verdict.failures:
        print(f"VULNERABLE {line}")
    if verdict.failures:
        print("audit: update these pins (make lock), or allow-list them with reason and expiry", file=sys.stderr)
        return Audit.FAILED
    print(f"audit: {', '.join(map(str, args.locks))}: no fixable known vulnerability")
    return Audit.PASSED


if __name__ == "__main__":
    sys.exit(main())
