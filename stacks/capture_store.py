"""Where ACI and AKS servers write captured requests: a blob container in a storage account of its own.

Its own account, because a lifecycle policy is one per account (named `default`) and because this
one allows Entra ID only (shared keys off): the serving identity writes, granted Storage Blob Data
Contributor on this container alone, with no key anywhere. Records are deleted `retention_days`
after they are written. Encryption at rest is the storage default (Microsoft-managed keys,
AES-256, always on and not switchable off); HTTPS and TLS 1.2 only (stacks/azure_storage.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, storage

from stacks.azure_roles import STORAGE_BLOB_DATA_CONTRIBUTOR, grant
from stacks.azure_storage import secure_account

CONTAINER = "capture"
PREFIX = "capture"  # blob names start capture/<endpoint>/<model version>/..., as under SageMaker's capture URI
# ARM's rules: the policy's one name is `default`; a rule name is alphanumeric (up to 256).
POLICY_NAME = "default"
RETENTION_RULE = "expireCapturedRecords"


@dataclass
class CaptureStoreArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    retention_days: int
    protect: bool
    tags: dict[str, str]


@dataclass
class CaptureTarget:
    """What a serving workload needs to write captured records: its settings, and where to grant the writer."""

    environment: dict[str, pulumi.Input[str]]  # SERVING_CAPTURE_* settings, the account URL among them
    container_id: pulumi.Input[str]  # the writer's role assignment scope
    subscription_id: pulumi.Input[str]

    def grant_writer(
        self, name: str, principal_id: pulumi.Input[str], parent: pulumi.Resource
    ) -> authorization.RoleAssignment:
        """Storage Blob Data Contributor on the capture container, for the serving identity only.

        Not waited for: an assignment can take minutes to apply, and the server retries 403s until then."""
        return grant(name, STORAGE_BLOB_DATA_CONTRIBUTOR, principal_id, self.container_id, self.subscription_id, parent)


class CaptureStore(pulumi.ComponentResource):
    def __init__(self, name: str, args: CaptureStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:CaptureStore", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = secure_account(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku="Standard_ZRS",
            shared_keys=False,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.container = storage.BlobContainer(
            f"{name}-container",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            container_name=CONTAINER,
            public_access="None",
            opts=child,
        )
        storage.ManagementPolicy(
            f"{name}-retention",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            management_policy_name=POLICY_NAME,
            policy={
                "rules": [
                    {
                        "name": RETENTION_RULE,
                        "enabled": True,
                        "type": "Lifecycle",
                        "definition": {
                            # A prefix starts with the container's name; blobTypes is required.
                            "filters": {"blob_types": ["blockBlob"], "prefix_match": [f"{CONTAINER}/"]},
                            "actions": {
                                "base_blob": {"delete": {"days_after_modification_greater_than": args.retention_days}}
                            },
                        },
                    }
                ]
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
        )
        self.account_url = self.account.primary_endpoints.apply(lambda endpoints: endpoints.blob)
        self.location = pulumi.Output.concat(
            self.account_url.apply(lambda url: url.rstrip("/")), f"/{CONTAINER}/{PREFIX}/"
        )
        self.register_outputs({"location": self.location})

    def records_uri(self, endpoint: str) -> pulumi.Output[str]:
        """Where one endpoint's records are: what `python -m serving drift --source` reads."""
        return pulumi.Output.concat(self.location, endpoint)

    def target(self, settings: dict[str, str], subscription_id: pulumi.Input[str]) -> CaptureTarget:
        """The workload's side: the stack's capture settings plus this account and container."""
        environment: dict[str, pulumi.Input[str]] = {
            **settings,
            "SERVING_CAPTURE_ACCOUNT_URL": self.account_url,
            "SERVING_CAPTURE_CONTAINER": CONTAINER,
            "SERVING_CAPTURE_PREFIX": PREFIX,
        }
        return CaptureTarget(environment, self.container.id, subscription_id)
