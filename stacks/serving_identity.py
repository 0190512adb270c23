"""The AKS serving pods' Azure identity (workload identity): a managed identity their service account signs
in as, with a federated credential for the cluster's OIDC issuer. No secret: the workload identity
webhook mounts a short-lived service account token, which Entra ID exchanges for the identity's."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import managedidentity

from stacks.capture_store import CaptureTarget
from stacks.k8s_workload import SERVICE_ACCOUNT

FEDERATION_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class ServingIdentityArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    namespace: str
    capture: CaptureTarget  # what the identity may do: write captured records
    tags: dict[str, str]


class ServingIdentity(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServingIdentityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:ServingIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=args.tags,
            opts=child,
        )
        managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_group_name=args.resource_group_name,
            resource_name_=identity.name,
            issuer=args.oidc_issuer_url,
            subject=f"system:serviceaccount:{args.namespace}:{SERVICE_ACCOUNT}",
            audiences=[FEDERATION_AUDIENCE],
            opts=child,
        )
        args.capture.grant_writer(f"{name}-capture-writer", identity.principal_id, self)
        self.client_id = identity.client_id
        self.register_outputs({"client_id": self.client_id})
