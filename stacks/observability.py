"""Log Analytics workspace and Application Insights for one stack."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, operationalinsights


@dataclass
class AzureMonitoringArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    retention_days: int
    tags: dict[str, str]


class AzureMonitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: AzureMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = operationalinsights.Workspace(
            f"{name}-logs",
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku={"name": "PerGB2018"},
            retention_in_days=args.retention_days,
            tags=args.tags,
            opts=child,
        )
        self.insights = applicationinsights.Component(
            f"{name}-insights",
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="web",
            application_type="web",
            ingestion_mode="LogAnalytics",
            workspace_resource_id=self.workspace.id,
            tags=args.tags,
            opts=child,
        )
        keys = operationalinsights.get_shared_keys_output(
            resource_group_name=args.resource_group_name, workspace_name=self.workspace.name
        )
        self.workspace_customer_id = self.workspace.customer_id
        self.workspace_key = pulumi.Output.secret(keys.primary_shared_key)
        self.connection_string = pulumi.Output.secret(self.insights.connection_string)
        self.register_outputs({"workspace_id": self.workspace.id, "connection_string": self.connection_string})
