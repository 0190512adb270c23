"""Batch scoring on AKS: a CronJob running `serving batch` on a blob the stack's storage account holds.

The job reaches storage with workload identity (a federated managed identity), never account keys:
shared-key access is disabled on the account.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import storage

from stacks.azure_roles import STORAGE_BLOB_DATA_CONTRIBUTOR, grant
from stacks.azure_storage import secure_account
from stacks.k8s_workload import restricted_container_security, restricted_pod_security
from stacks.workload_identity import federated_identity

CONTAINER = "batch"
SERVICE_ACCOUNT = "mlserve-batch"


@dataclass
class AzureBatchJobArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    provider: k8s.Provider
    namespace: pulumi.Input[str]
    image_ref: pulumi.Input[str]  # built with the batch extras (adlfs)
    schedule: str  # a CronJob schedule (validated by stacks.config)
    input_blob: str  # paths in the stack's `batch` container
    output_blob: str
    protect: bool
    tags: dict[str, str]
    labels: dict[str, str]


class AzureBatchJob(pulumi.ComponentResource):
    def __init__(self, name: str, args: AzureBatchJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:BatchJob", name, None, opts)
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
        container = storage.BlobContainer(
            f"{name}-container",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            container_name=CONTAINER,
            public_access="None",
            opts=child,
        )
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
        grant(
            f"{name}-blob-data",
            STORAGE_BLOB_DATA_CONTRIBUTOR,
            identity.principal_id,
            self.account.id,
            args.subscription_id,
            self,
        )
        k8s_child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata={
                "name": SERVICE_ACCOUNT,
                "namespace": args.namespace,
                "labels": args.labels,
                "annotations": {"azure.workload.identity/client-id": identity.client_id},
            },
            automount_service_account_token=False,
            opts=k8s_child,
        )

        def blob_url(path: str) -> pulumi.Output[str]:
            return pulumi.Output.concat(
                "abfs://", container.name, "@", self.account.name, ".dfs.core.windows.net/", path
            )

        self.cron_job = k8s.batch.v1.CronJob(
            f"{name}-cronjob",
            metadata={"name": "mlserve-batch", "namespace": args.namespace, "labels": args.labels},
            spec={
                "schedule": args.schedule,
                "concurrency_policy": "Forbid",
                "successful_jobs_history_limit": 3,
                "failed_jobs_history_limit": 3,
                "job_template": {
                    "spec": {
                        "backoff_limit": 2,
                        "template": {
                            "metadata": {"labels": {**args.labels, "azure.workload.identity/use": "true"}},
                            "spec": {
                                "service_account_name": account.metadata.name,
                                # The workload identity webhook mounts the token it needs itself.
                                "automount_service_account_token": False,
                                "restart_policy": "Never",
                                "security_context": restricted_pod_security(),
                                "containers": [
                                    {
                                        "name": "batch",
                                        "image": args.image_ref,
                                        "args": [
                                            "batch",
                                            "--input",
                                            blob_url(args.input_blob),
                                            "--output",
                                            blob_url(args.output_blob),
                                            "--on-error",
                                            "skip",
                                        ],
                                        "env": [{"name": "AZURE_STORAGE_ANON", "value": "false"}],
                                        "resources": {
                                            "requests": {"cpu": "1", "memory": "1Gi"},
                                            "limits": {"cpu": "1", "memory": "1Gi"},
                                        },
                                        "security_context": restricted_container_security(),
                                        "volume_mounts": [{"name": "tmp", "mount_path": "/tmp"}],
                                    }
                                ],
                                "volumes": [{"name": "tmp", "empty_dir": {"size_limit": "2Gi"}}],
                            },
                        },
                    }
                },
            },
            opts=k8s_child,
        )
        self.input_url = blob_url(args.input_blob)
        self.output_url = blob_url(args.output_blob)
        self.register_outputs({"input": self.input_url, "output": self.output_url})
