"""A managed identity that Kubernetes pods sign in as (AKS workload identity), with no secret.

The workload identity webhook mounts a short-lived token of the pod's service account; Entra ID
exchanges it for the identity's, trusting the cluster's OIDC issuer through the federated credential.
"""

from __future__ import annotations

import pulumi
from pulumi_azure_native import managedidentity

FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


def federated_identity(
    name: str,
    *,
    resource_group_name: pulumi.Input[str],
    location: pulumi.Input[str],
    oidc_issuer_url: pulumi.Input[str],
    namespace: pulumi.Input[str],
    service_account: str,
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> managedidentity.UserAssignedIdentity:
    """`<name>-identity`, federated (`<name>-federation`) with `service_account` in `namespace`."""
    child = pulumi.ResourceOptions(parent=parent)
    identity = managedidentity.UserAssignedIdentity(
        f"{name}-identity", resource_group_name=resource_group_name, location=location, tags=tags, opts=child
    )
    managedidentity.FederatedIdentityCredential(
        f"{name}-federation",
        resource_group_name=resource_group_name,
        resource_name_=identity.name,
        issuer=oidc_issuer_url,
        subject=pulumi.Output.concat("system:serviceaccount:", namespace, ":", service_account),
        audiences=[FEDERATION_AUDIENCE],
        opts=child,
    )
    return identity
