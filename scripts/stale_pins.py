"""Pins that Dependabot cannot read or is told to leave: the AKS version table, kubelogin, the image's Python.

    python scripts/stale_pins.py            # all (asks GitHub for kubelogin's latest release)
    python scripts/stale_pins.py --offline  # all but kubelogin

Exits 1 naming what to update, 0 when nothing is due. The weekly Upkeep workflow runs it, so the team
hears of an AKS end of life while there is still time to move, not when a deployment is refused.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from stacks.versions import AKS_END_OF_LIFE, DEFAULT_KUBERNETES_VERSION, KUBELOGIN_VERSION

WARN_DAYS = 60  # AKS announces a minor's end of life months ahead; this leaves two sprints to move
CALENDAR = "https://learn.microsoft.com/azure/aks/supported-kubernetes-versions#aks-kubernetes-release-calendar"
KUBELOGIN_RELEASES = "https://api.github.com/repos/Azure/kubelogin/releases/latest"
SERVING_DOCKERFILE = Path(__file__).resolve().parent.parent / "serving" / "Dockerfile"
# End of life of each Python minor (PEP 602: five years after its October release). Dependabot never
# proposes a new minor for the image (the locks are compiled for one), so this says when to move.
PYTHON_END_OF_LIFE = {
    "3.11": datetime.date(2027, 10, 31),
    "3.12": datetime.date(2028, 10, 31),
    "3.13": datetime.date(2029, 10, 31),
    "3.14": datetime.date(2030, 10, 31),
}
PYTHON_WARN_DAYS = 180  # a new interpreter means new locks, a new base image and a full test run


def _order(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def aks_problems(
    today: datetime.date,
    table: dict[str, datetime.date] = AKS_END_OF_LIFE,
    default: str = DEFAULT_KUBERNETES_VERSION,
    warn_days: int = WARN_DAYS,
) -> list[str]:
    """What in stacks/versions.py's AKS table is due for an update within `warn_days` of `today`."""
    problems = []
    horizon = today + datetime.timedelta(days=warn_days)
    newest = max(table, key=_order)
    if table[newest] <= horizon:
        problems.append(
            f"stacks/versions.py: the newest AKS minor it knows, {newest}, reaches its end of life on "
            f"{table[newest].isoformat()}; add the newer minors and their end-of-life dates ({CALENDAR})"
        )
    end = table.get(default)
    if end is None or end <= horizon:
        when = f"on {end.isoformat()}" if end else "(not in the table)"
        supported = [v for v in sorted(table, key=_order) if table[v] > horizon]
        problems.append(
            f"stacks/versions.py: DEFAULT_KUBERNETES_VERSION {default} reaches its AKS end of life {when}; "
            f"move it to {' or '.join(supported) or 'a newer minor'} (and upgrade the stacks' clusters)"
        )
    return problems


def kubelogin_problem(pinned: str, latest: str) -> str | None:
    """Why the pinned kubelogin is stale, or None."""
    if _order(latest) <= _order(pinned):
        return None
    return (
        f"kubelogin {latest} is released; KUBELOGIN_VERSION in stacks/versions.py and the workflows' "
        f"kubelogin-version pin {pinned} (tests/test_delivery.py checks they agree)"
    )


def python_problem(dockerfile: str, today: datetime.date, warn_days: int = PYTHON_WARN_DAYS) -> str | None:
    """Why the image's Python (its `FROM python:<minor>` line) is due for a move, or None."""
    match = re.search(r"^FROM\s+(?:docker\.io/library/)?python:(\d+\.\d+)", dockerfile, re.MULTILINE)
    if match is None:
        return "serving/Dockerfile: no `FROM python:<minor>` line; update scripts/stale_pins.py"
    minor = match.group(1)
    end = PYTHON_END_OF_LIFE.get(minor)
    if end is not None and end > today + datetime.timedelta(days=warn_days):
        return None
    when = f"on {end.isoformat()}" if end else "(unknown to scripts/stale_pins.py)"
    return (
        f"serving/Dockerfile: Python {minor} reaches its end of life {when}; move the image, the locks "
        "(make lock's --python-version) and the workflows' python-version to a newer minor"
    )


def latest_kubelogin() -> str:
    """The tag of kubelogin's latest GitHub release (GITHUB_TOKEN, where set, lifts the rate limit)."""
    request = urllib.request.Request(KUBELOGIN_RELEASES, headers={"Accept": "application/vnd.github+json"})
    if token := os.environ.get("GITHUB_TOKEN"):
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (a fixed https URL)
        tag: str = json.load(response)["tag_name"]
    return tag


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/stale_pins.py", description=__doc__.split("\n", 1)[0])
    parser.add_argument("--offline", action="store_true", help="skip the kubelogin release lookup")
    args = parser.parse_args(argv)
    today = datetime.date.today()
    problems = aks_problems(today)
    if problem := python_problem(SERVING_DOCKERFILE.read_text(), today):
        problems.append(problem)
    if not args.offline and (problem := kubelogin_problem(KUBELOGIN_VERSION, latest_kubelogin())):
        problems.append(problem)
    for problem in problems:
        print(f"stale: {problem}")
    if not problems:
        print("stale pins: none (AKS version table, the image's Python" + (")" if args.offline else ", kubelogin)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
