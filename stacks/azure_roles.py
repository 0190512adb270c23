"""Built-in Azure role definitions this project grants, a helper to grant them, and the wait for them.

Azure RBAC assignments are eventually consistent: "role assignment changes can take up to 10
minutes" (Azure RBAC troubleshooting), AKS RBAC "up to five minutes" (AKS, "Use Azure RBAC for
Kubernetes authorization"). Whatever relies on a new assignment in the same `pulumi up` waits for it
with `propagated`, which sleeps only when an assignment is created or replaced.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumiverse_time as time
from pulumi_azure_native import authorization

from stacks.config import PRINCIPAL_TYPES

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
STORAGE_BLOB_DATA_CONTRIBUTOR = "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
AKS_RBAC_CLUSTER_ADMIN = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"
AKS_RBAC_READER = "7f6c6a51-bcf8-42ba-9220-52d62157d7db"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
NETWORK_CONTRIBUTOR = "4d97b98b-1d4f-4787-a291-c67834d212e7"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"


def grant(
    name: str,
    role: str,
    principal_id: pulumi.Input[str],
    scope: pulumi.Input[str],
    subscription_id: pulumi.Input[str],
    parent: pulumi.Resource,
    principal_type: str = "ServicePrincipal",
) -> authorization.RoleAssignment:
    """Assign `role`; `principal_type` must match the object or ARM answers UnmatchedPrincipalType."""
    if principal_type not in PRINCIPAL_TYPES:
        raise ValueError(f"principal_type {principal_type!r} is not one of {PRINCIPAL_TYPES}")
    return authorization.RoleAssignment(
        name,
        principal_id=principal_id,
        principal_type=principal_type,
        role_definition_id=pulumi.Output.concat(
            "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
        ),
        scope=scope,
        opts=pulumi.ResourceOptions(parent=parent),
    )


def propagated(
    name: str, assignments: Sequence[authorization.RoleAssignment], seconds: int, parent: pulumi.Resource
) -> time.Sleep:
    """A pause after `assignments` are created; a dependency on it means "the roles are in effect"."""
    return time.Sleep(
        name,
        create_duration=f"{seconds}s",
        # A new or replaced assignment has a new id, which replaces the sleep: it waits again then only.
        triggers={f"assignment{i}": a.id for i, a in enumerate(assignments)},
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(assignments)),
    )
