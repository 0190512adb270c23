"""The project's storage accounts: one definition of the secure settings every account gets."""

from __future__ import annotations

import re

import pulumi
from pulumi_azure_native import storage

PREFIX_LENGTH = 14  # + the 8-character auto-name suffix = 22, within the 24 Azure allows


def account_prefix(name: str) -> str:
    """3-24 lowercase letters and digits, globally unique: Pulumi appends 8 random characters."""
    return re.sub(r"[^a-z0-9]", "", name.lower())[:PREFIX_LENGTH]


def secure_account(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: pulumi.Input[str],
    sku: str,
    shared_keys: bool,  # ACI mounts Azure Files with the account key only; everything else uses Entra ID
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> storage.StorageAccount:
    """HTTPS only, TLS 1.2, no public blob access."""
    return storage.StorageAccount(
        account_prefix(name),
        resource_group_name=resource_group_name,
        location=location,
        kind="StorageV2",
        sku={"name": sku},
        allow_blob_public_access=False,
        allow_shared_key_access=shared_keys,
        enable_https_traffic_only=True,
        minimum_tls_version="TLS1_2",
        tags=tags,
        opts=opts,
    )
