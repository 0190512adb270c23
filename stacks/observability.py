"""Log Analytics workspace, Application Insights, and alerts on it that reach a person."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import applicationinsights, monitor, operationalinsights


@dataclass
class AzureMonitoringArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    retention_days: int
    alert_email: str | None  # receives the alerts; None: the action group has no receiver yet
    failure_alert_percent: float  # server errors (5xx) among requests, over 5 minutes
    latency_alert_ms: int  # p99 request duration, over 5 minutes
    tags: dict[str, str]


# KQL over the Application Insights `requests` table. itemCount: each sampled item stands for that
# many requests (the server samples its request telemetry), so rates and counts stay right.
FAILURE_RATE_QUERY = (
    "requests | summarize total = sum(itemCount), failed = sumif(itemCount, toint(resultCode) >= 500) "
    "| where total > 0 | extend failed_percent = 100.0 * failed / total"
)
LATENCY_QUERY = "requests | summarize p99_ms = percentile(duration, 99)"


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
        self.action_group = monitor.ActionGroup(
            f"{name}-oncall",
            resource_group_name=args.resource_group_name,
            location="Global",
            group_short_name="mlserve",  # at most 12 characters; shown in e-mails and SMS
            enabled=True,
            email_receivers=[{"name": "oncall", "email_address": args.alert_email, "use_common_alert_schema": True}]
            if args.alert_email
            else [],
            tags=args.tags,
            opts=child,
        )
        alerts = {
            "failures": (
                f"More than {args.failure_alert_percent} % of requests failed with 5xx in 5 minutes",
                FAILURE_RATE_QUERY,
                "failed_percent",
                args.failure_alert_percent,
                1,
            ),
            "latency": (
                f"p99 request duration above {args.latency_alert_ms} ms over 5 minutes",
                LATENCY_QUERY,
                "p99_ms",
                args.latency_alert_ms,
                2,
            ),
        }
        for key, (description, query, column, threshold, severity) in alerts.items():
            monitor.ScheduledQueryRule(
                f"{name}-{key}",
                resource_group_name=args.resource_group_name,
                location=args.location,
                kind="LogAlert",
                description=description,
                enabled=True,
                severity=severity,
                scopes=[self.insights.id],
                evaluation_frequency="PT5M",
                window_size="PT5M",
                criteria={
                    "all_of": [
                        {
                            "query": query,
                            "time_aggregation": "Maximum",
                            "metric_measure_column": column,
                            "operator": "GreaterThan",
                            "threshold": threshold,
                            "failing_periods": {
                                "number_of_evaluation_periods": 1,
                                "min_failing_periods_to_alert": 1,
                            },
                        }
                    ]
                },
                auto_mitigate=True,
                # Azure validates the query against the component's tables, which a component created
                # in the same `up` does not have yet: the first up would fail. The queries are fixed here.
                skip_query_validation=True,
                actions={"action_groups": [self.action_group.id]},
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
