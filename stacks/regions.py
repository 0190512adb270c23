"""The regions a stack may name, so a misspelled one (`westeruope`, `eu-wset-1`) stops the program at once,
naming the nearest real one, rather than planning cleanly and failing half-way through `pulumi up`."""

from __future__ import annotations

import difflib
from functools import cache

# Azure's physical regions, as `az account list-locations --query "[?metadata.regionType=='Physical'].name"`
# lists them (public cloud), plus the US Government and China clouds' regions. Neither Azure provider
# ships this list: the weekly Upkeep run compares it with a subscription's list (scripts/azure_regions.py)
# and names a region Azure opened that is missing here.
AZURE_REGIONS = frozenset(
    {
        "australiacentral", "australiacentral2", "australiaeast", "australiasoutheast", "austriaeast",
        "belgiumcentral", "brazilsouth", "brazilsoutheast", "canadacentral", "canadaeast", "centralindia",
        "centralus", "centraluseuap", "chilecentral", "eastasia", "eastus", "eastus2", "eastus2euap",
        "francecentral", "francesouth", "germanynorth", "germanywestcentral", "indonesiacentral",
        "israelcentral", "italynorth", "japaneast", "japanwest", "jioindiacentral", "jioindiawest",
        "koreacentral", "koreasouth", "malaysiawest", "mexicocentral", "newzealandnorth", "northcentralus",
        "northeurope", "norwayeast", "norwaywest", "polandcentral", "qatarcentral", "southafricanorth",
        "southafricawest", "southcentralus", "southeastasia", "southindia", "spaincentral", "swedencentral",
        "switzerlandnorth", "switzerlandwest", "uaecentral", "uaenorth", "uksouth", "ukwest", "westcentralus",
        "westeurope", "westindia", "westus", "westus2", "westus3",
        "usgovarizona", "usgovtexas", "usgovvirginia", "usdodcentral", "usdodeast",
        "chinaeast", "chinaeast2", "chinaeast3", "chinanorth", "chinanorth2", "chinanorth3",
    }
)  # fmt: skip


@cache
def aws_regions() -> frozenset[str]:
    """The regions SageMaker runs in, from botocore's bundled endpoint data (updated with every boto3 release)."""
    import botocore.session

    session = botocore.session.get_session()
    return frozenset(
        region
        for partition in session.get_available_partitions()
        for region in session.get_available_regions("sagemaker", partition_name=partition)
    )


def region_problem(region: str, known: frozenset[str], cloud: str, source: str, unlisted: str = "") -> str | None:
    """None for a known region; else what is wrong, with the nearest known region when there is one
    (a misspelling) or an example, and `unlisted` (what to do about a region newer than the list)."""
    if region in known:
        return None
    nearest = difflib.get_close_matches(region.lower(), sorted(known), n=1, cutoff=0.6)
    hint = f"did you mean {nearest[0]}?" if nearest else f"e.g. {min(known)}"
    return f"{region!r} is not {cloud} region ({source}); {hint}{unlisted}"


def azure_region_problem(region: str) -> str | None:
    return region_problem(
        region, AZURE_REGIONS, "an Azure", "az account list-locations; stacks/regions.py",
        f" (if Azure opened {region!r} after this list was made, add it to AZURE_REGIONS in stacks/regions.py)",
    )  # fmt: skip


def aws_region_problem(region: str) -> str | None:
    return region_problem(region, aws_regions(), "a SageMaker", "botocore's endpoint data")
