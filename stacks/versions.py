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
MINIMUM_KUBERNETES_VERSION = min(AKS_END_OF_LIFE, key=lambda v: tuple(map(int, v.split("."))))

# The Istio service mesh add-on's revision a new cluster gets (its managed gateway terminates TLS).
# AKS upgrades patches itself; a minor upgrade is a canary: list both revisions, then only the new one.
# Which revisions a region and Kubernetes version support: `az aks mesh get-revisions -l <region>`.
DEFAULT_ISTIO_REVISION = "asm-1-30"

# kubelogin signs the Kubernetes provider in through the Azure CLI on AKS (workflows install it).
KUBELOGIN_VERSION = "v0.2.9"


def minor(version: str) -> str:
    """`1.35.2` -> `1.35`."""
    return ".".join(version.split(".")[:2])


def kubernetes_version_problem(version: str) -> str | None:
    if minor(version) in AKS_END_OF_LIFE:
        return None
    known = ", ".join(AKS_END_OF_LIFE)
    newest = max(AKS_END_OF_LIFE, key=lambda v: tuple(map(int, v.split("."))))
    if tuple(map(int, minor(version).split("."))) < tuple(map(int, MINIMUM_KUBERNETES_VERSION.split("."))):
        return f"{version} is past its AKS end of life and AKS no longer creates it; use one of {known}"
    return f"{version} is newer than this program knows ({newest}); use one of {known} or update stacks/versions.py"
