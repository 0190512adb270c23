"""Dashboards as code: an Azure workbook over Application Insights, a CloudWatch dashboard for SageMaker.

Each shows what a person on call asks first: how many requests, how many failed, how slow, for which
model version, and did the inputs drift (the weekly drift report's verdict, scripts/drift_publish.py).
The stack exports their URLs (`dashboard_url`, `sagemaker_dashboard_url`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi_azure_native import applicationinsights

from stacks.drift_signal import DRIFT_EVENT, DRIFT_NAMESPACE

# The server's request telemetry (serving/telemetry.py) puts these on every request span; the Azure
# Monitor exporter turns span attributes into the `requests` table's customDimensions.
MODEL_VERSION_DIMENSION = "mlserve.model.version"
WINDOW_MS = 24 * 60 * 60 * 1000  # the workbook's default time range: the last day
DRIFT_WINDOW_MS = 35 * WINDOW_MS  # the drift report runs weekly: five weeks, as far as retention keeps them

# KQL over Application Insights' `requests` table. itemCount: each sampled item stands for that many
# requests (the server samples its request telemetry), so counts stay right, as in the alerts.
WORKBOOK_QUERIES: dict[str, tuple[str, str]] = {
    "Requests per model version": (
        "requests"
        f" | extend version = tostring(customDimensions['{MODEL_VERSION_DIMENSION}'])"
        " | summarize requests = sum(itemCount) by version, bin(timestamp, 5m)",
        "timechart",
    ),
    "Failed requests (5xx) per model version": (
        "requests"
        f" | extend version = tostring(customDimensions['{MODEL_VERSION_DIMENSION}'])"
        " | summarize failed = sumif(itemCount, toint(resultCode) >= 500) by version, bin(timestamp, 5m)",
        "timechart",
    ),
    "Latency (ms): p50, p95, p99": (
        "requests"
        " | summarize p50 = percentile(duration, 50), p95 = percentile(duration, 95),"
        " p99 = percentile(duration, 99) by bin(timestamp, 5m)",
        "timechart",
    ),
    "Answers by status code": (
        "requests | summarize answers = sum(itemCount) by resultCode | order by answers desc",
        "table",
    ),
}
DRIFT_QUERY = (
    "customEvents"
    f" | where name == '{DRIFT_EVENT}'"
    " | extend d = customDimensions"
    " | project timestamp, target = tostring(d.target), version = tostring(d.version),"
    " drifted = tostring(d.drifted), columns = tostring(d.drifted_columns), rows = toint(d.rows),"
    " report = tostring(d.report)"
    " | order by timestamp desc"
)


def workbook_content(title: str) -> str:
    """The workbook's serializedData: Azure Workbooks' `Notebook/1.0` schema."""
    items: list[dict[str, Any]] = [{"type": 1, "name": "title", "content": {"json": f"## {title}"}}]
    queries = [
        (heading, query, visualization, WINDOW_MS) for heading, (query, visualization) in WORKBOOK_QUERIES.items()
    ]
    queries.append(("Drift report (weekly): recent verdicts", DRIFT_QUERY, "table", DRIFT_WINDOW_MS))
    for index, (heading, query, visualization, window) in enumerate(queries):
        items.append(
            {
                "type": 3,
                "name": f"query-{index}",
                "content": {
                    "version": "KqlItem/1.0",
                    "title": heading,
                    "query": query,
                    "size": 0,
                    "timeContext": {"durationMs": window},
                    "queryType": 0,
                    "resourceType": "microsoft.insights/components",
                    "visualization": visualization,
                },
            }
        )
    return json.dumps({"version": "Notebook/1.0", "items": items, "isLocked": False}, separators=(",", ":"))


def workbook_id(project: str, stack: str) -> str:
    """Workbook resource names must be GUIDs: one derived from the stack, so every `up` names the same one."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mlserve:{project}/{stack}/workbook"))


@dataclass
class AzureDashboardArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    insights_id: pulumi.Input[str]  # the Application Insights component the server reports to
    workbook_id: str  # a GUID (workbook_id())
    title: str
    tags: dict[str, str]


class AzureDashboard(pulumi.ComponentResource):
    """A shared workbook linked to the stack's Application Insights; `url` opens it in the portal."""

    def __init__(self, name: str, args: AzureDashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:Dashboard", name, None, opts)
        self.workbook = applicationinsights.Workbook(
            f"{name}-workbook",
            resource_name_=args.workbook_id,
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind="shared",
            category="workbook",
            display_name=args.title,
            serialized_data=workbook_content(args.title),
            version="Notebook/1.0",
            source_id=args.insights_id,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.concat("https://portal.azure.com/#resource", self.workbook.id, "/workbook")
        self.register_outputs({"url": self.url})


# (title, namespace, metric, statistic): AWS/SageMaker's invocation metrics and, for instance-based
# endpoints, /aws/sagemaker/Endpoints' instance metrics (SageMaker developer guide, "Amazon SageMaker
# AI metrics in Amazon CloudWatch"). ModelLatency is in microseconds.
INVOCATION_WIDGETS: list[tuple[str, list[tuple[str, str, str]]]] = [
    ("Invocations", [("AWS/SageMaker", "Invocations", "Sum")]),
    (
        "Errors (4xx, 5xx)",
        [("AWS/SageMaker", "Invocation4XXErrors", "Sum"), ("AWS/SageMaker", "Invocation5XXErrors", "Sum")],
    ),
    (
        "Model latency (µs): p50, p95, p99",
        [("AWS/SageMaker", "ModelLatency", p) for p in ("p50", "p95", "p99")],
    ),
]
INSTANCE_WIDGETS: list[tuple[str, list[tuple[str, str, str]]]] = [
    (
        "CPU and memory (%)",
        [("/aws/sagemaker/Endpoints", m, "Average") for m in ("CPUUtilization", "MemoryUtilization")],
    )
]


def cloudwatch_body(
    endpoint: str, variant: str, region: str, realtime: bool, capture_uri: str | None
) -> dict[str, Any]:
    """The dashboard body (CloudWatch's dashboard body structure): one row of metric widgets per concern."""
    widgets: list[dict[str, Any]] = []
    for index, (title, metrics) in enumerate(INVOCATION_WIDGETS + (INSTANCE_WIDGETS if realtime else [])):
        widgets.append(
            {
                "type": "metric",
                "x": (index % 2) * 12,
                "y": (index // 2) * 6,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": title,
                    "region": region,
                    "view": "timeSeries",
                    "period": 300,
                    "metrics": [
                        [namespace, metric, "EndpointName", endpoint, "VariantName", variant, {"stat": stat}]
                        for namespace, metric, stat in metrics
                    ],
                },
            }
        )
    # The weekly drift report's verdict (scripts/drift_publish.py): a point a week, so five weeks of them.
    widgets.append(
        {
            "type": "metric",
            "x": (len(widgets) % 2) * 12,
            "y": (len(widgets) // 2) * 6,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Drift report (weekly): columns past the threshold",
                "region": region,
                "view": "timeSeries",
                # A widget's own range (as AWS CDK's GraphWidget `start` writes it), not the dashboard's.
                "start": "-P5W",
                "period": 86400,
                "metrics": [[DRIFT_NAMESPACE, "DriftedColumns", "EndpointName", endpoint, {"stat": "Maximum"}]],
                "annotations": {"horizontal": [{"label": "drift", "value": 1}]},
            },
        }
    )
    capture = (
        f"Data Capture writes the sampled requests and answers to `{capture_uri}`; the weekly drift report reads them."
        if capture_uri
        else "Data Capture is off (`mlserve:sagemaker.dataCapturePercent`)."
    )
    widgets.append(
        {
            "type": "text",
            "x": 0,
            "y": (len(widgets) + 1) // 2 * 6,
            "width": 24,
            "height": 2,
            "properties": {"markdown": f"## {endpoint}\n{capture}"},
        }
    )
    return {"widgets": widgets}


@dataclass
class SageMakerDashboardArgs:
    dashboard_name: str  # letters, digits, - and _ only, at most 255 characters
    endpoint_name: pulumi.Input[str]
    variant_name: str
    region: pulumi.Input[str]
    realtime: bool  # instance metrics exist only for instance-based endpoints
    capture_uri: pulumi.Input[str] | None = None


class SageMakerDashboard(pulumi.ComponentResource):
    """A CloudWatch dashboard of one endpoint; `url` opens it in the console."""

    def __init__(self, name: str, args: SageMakerDashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:aws:Dashboard", name, None, opts)
        body = pulumi.Output.all(args.endpoint_name, args.region, args.capture_uri).apply(
            lambda v: json.dumps(cloudwatch_body(v[0], args.variant_name, v[1], args.realtime, v[2]))
        )
        self.dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=args.dashboard_name,
            dashboard_body=body,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.url = pulumi.Output.concat(
            "https://",
            args.region,
            ".console.aws.amazon.com/cloudwatch/home?region=",
            args.region,
            "#dashboards/dashboard/",
            self.dashboard.dashboard_name,
        )
        self.register_outputs({"url": self.url})
