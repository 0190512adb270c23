"""The AKS serving pods' Azure identity (workload identity), allowed to write captured records."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from stacks.capture_store import CaptureTarget
from stacks.k8s_workload import SERVICE_ACCOUNT
from stacks.workload_identity import federated_identity


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
        identity = federated_identity(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            oidc_issuer_url=args.oidc_issuer_url,
            namespace=args.namespace,
            service_account=SERVICE_ACCOUNT,
            tags=args.tags,
            parent=self,
        )
        args.capture.grant_writer(f"{name}-capture-writer", identity.principal_id, self)
        self.client_id = identity.client_id
        self.register_outputs({"client_id": self.client_id})
