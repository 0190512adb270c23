"""Versions the program depends on that expire: one place, so an update touches one file.

AKS stops creating clusters on a Kubernetes minor version after its end of life ("Supported
Kubernetes versions in Azure Kubernetes Service", AKS release calendar). A test fails once the
default version is past its end of life, so this table cannot go stale silently.
"""

from __future__ import annotations

import datetime

# AKS Kubernetes minor versions the program accepts, with their AKS end of life.
AKS_END_OF_LIFE: dict[str, datetime.date] = {
    "1.34": datetime.date(2026, 11, 30),
    "1.35": datetime.date(2027, 3, 31),
    "1.36": datetime.date(2027, 7, 31),
}
DEFAULT_KUBERNETES_VERSION = "1.35"


def _order(version: str) -> tuple[int, ...]:
    return tuple(map(int, version.split(".")))


# The Istio service mesh add-on's revision a new cluster gets (its managed gateway terminates TLS).
# AKS upgrades patches itself; a minor upgrade is a canary: list both revisions, then only the new one.
# Which revisions a region and Kubernetes version support: `az aks mesh get-revisions -l <region>`.
DEFAULT_ISTIO_REVISION = "asm-1-30"

# kubelogin signs the Kubernetes provider in through the Azure CLI on AKS (workflows install it).
KUBELOGIN_VERSION = "v0.2.9"


def minor(version: str) -> str:
    """`1.35.2` -> `1.35`."""
    return ".".join(version.split(".")[:2])


def supported_kubernetes_versions(today: datetime.date | None = None) -> list[str]:
    """The minor versions AKS still creates clusters on `today`, oldest first."""
    today = today or datetime.date.today()
    return sorted((v for v, end in AKS_END_OF_LIFE.items() if end >= today), key=_order)


def kubernetes_version_problem(version: str, today: datetime.date | None = None) -> str | None:
    """Why AKS would refuse to create a cluster on `version` `today`, or None."""
    today = today or datetime.date.today()
    supported = supported_kubernetes_versions(today)
    use = f"use one of {', '.join(supported)}" if supported else "update stacks/versions.py (AKS release calendar)"
    end = AKS_END_OF_LIFE.get(minor(version))
    if end is not None and end >= today:
        return None
    if end is not None:
        return f"{version} reached its AKS end of life on {end.isoformat()} and AKS no longer creates it; {use}"
    if _order(minor(version)) < _order(min(AKS_END_OF_LIFE, key=_order)):
        return f"{version} is past its AKS end of life and AKS no longer creates it; {use}"
    newest = max(AKS_END_OF_LIFE, key=_order)
    return f"{version} is newer than this program knows ({newest}); {use} or update stacks/versions.py"
