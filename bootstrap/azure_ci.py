"""Entra ID applications for GitHub Actions (OIDC, no secrets), their roles, and the cluster admins group."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread
from pulumi_azure_native import authorization

from bootstrap.permissions import (
    AZURE_AUDIENCE,
    AZURE_PREVIEW_DATA_ACTIONS,
    CONTRIBUTOR,
    ENVIRONMENTS,
    GITHUB_OIDC_ISSUER,
    RBAC_ADMINISTRATOR,
    STORAGE_BLOB_DATA_READER,
    azure_preview_actions,
    capture_reader_condition,
    rbac_administrator_condition,
)
from stacks.capture_store import CONTAINER as CAPTURE_CONTAINER


@dataclass
class AzureCiArgs:
    repository: str  # owner/name
    subscription_id: pulumi.Input[str]
    cluster_admins: tuple[str, ...]  # people's object ids, besides the deploy identity


def _role_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
    )


class AzureCiIdentities(pulumi.ComponentResource):
    """`deploy` (dev, production, review) and `read` (preview, production-read) applications."""

    def __init__(self, name: str, args: AzureCiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:bootstrap:AzureCiIdentities", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        scope = pulumi.Output.concat("/subscriptions/", args.subscription_id)
        self.client_ids: dict[str, pulumi.Output[str]] = {}
        principals: dict[str, azuread.ServicePrincipal] = {}
        for identity in ("deploy", "read"):
            app = azuread.Application(f"{name}-{identity}", display_name=f"{name}-{identity}", opts=child)
            principals[identity] = azuread.ServicePrincipal(f"{name}-{identity}", client_id=app.client_id, opts=child)
            self.client_ids[identity] = app.client_id
            for environment in (e for e, who in ENVIRONMENTS.items() if who == identity):
                azuread.ApplicationFederatedIdentityCredential(
                    f"{name}-{identity}-{environment}",
                    application_id=app.id,
                    display_name=f"github-{environment}",
                    issuer=GITHUB_OIDC_ISSUER,
                    subject=f"repo:{args.repository}:environment:{environment}",
                    audiences=[AZURE_AUDIENCE],
                    opts=child,
                )
        deploy, read = principals["deploy"].object_id, principals["read"].object_id

        def assign(key: str, role: pulumi.Input[str], principal: pulumi.Input[str], **extra: object) -> None:
            authorization.RoleAssignment(
                f"{name}-{key}",
                principal_id=principal,
                principal_type="ServicePrincipal",
                role_definition_id=role,
                scope=scope,
                **extra,
                opts=child,
            )

        # Deploy: create anything, and assign only the roles the program assigns (a conditioned delegation).
        assign("deploy-contributor", _role_id(args.subscription_id, CONTRIBUTOR), deploy)
        assign(
            "deploy-role-assignments",
            _role_id(args.subscription_id, RBAC_ADMINISTRATOR),
            deploy,
            condition=rbac_administrator_condition(),
            condition_version="2.0",
        )
        # Read: Reader plus the few POST actions the program's invokes make, and Kubernetes objects.
        preview_role = authorization.RoleDefinition(
            f"{name}-preview-role",
            role_name=f"{name} preview and drift",
            description="Reads what `pulumi preview` and `refresh` of mlserve read; changes nothing",
            assignable_scopes=[scope],
            permissions=[{"actions": azure_preview_actions(), "data_actions": AZURE_PREVIEW_DATA_ACTIONS}],
            scope=scope,
            opts=child,
        )
        self.preview_role = preview_role
        assign("read-preview", preview_role.id, read)
        # The weekly drift report reads the stacks' captured requests (dev's runs as the deploy identity):
        # blob data is not in Reader or Contributor, and the condition keeps other containers out.
        for key, principal in (("deploy", deploy), ("read", read)):
            assign(
                f"{key}-capture-reader",
                _role_id(args.subscription_id, STORAGE_BLOB_DATA_READER),
                principal,
                condition=capture_reader_condition(CAPTURE_CONTAINER),
                condition_version="2.0",
            )
        # Cluster admins: granted on each cluster by the main program. The deploy identity is a member
        # before any cluster exists, so its first `up` does not wait on a new membership.
        self.cluster_admins = azuread.Group(
            f"{name}-cluster-admins",
            display_name=f"{name} AKS cluster admins",
            security_enabled=True,
            members=[deploy, *args.cluster_admins],
            opts=child,
        )
        self.register_outputs({"client_ids": self.client_ids, "cluster_admins_group_id": self.cluster_admins.object_id})
