"""The drift report's verdict where the stack's dashboards show it (stacks/dashboards.py, stacks/drift_signal.py).

- SageMaker: CloudWatch metrics in the `mlserve/Drift` namespace, by endpoint name (`Drifted` 0 or 1,
  `DriftedColumns`, `Rows`), graphed on the stack's CloudWatch dashboard.
- ACI and AKS: an Application Insights custom event, `mlserve drift report`, with the verdict, the
  drifted columns and a link to the report, listed on the stack's workbook.

Both are written with the identity the report runs as: the AWS read role may put metric data in that
namespace only; Application Insights takes the event with the stack's connection string.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from stacks.drift_signal import DRIFT_EVENT, DRIFT_METRICS, DRIFT_NAMESPACE

# `pulumi stack output application_insights_connection_string --show-secrets`, set by model-drift.yml.
CONNECTION_STRING_VARIABLE = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# Seconds before each further try of an event Application Insights did not take (a 429 or a 5xx is
# usually gone within seconds; the exporter's own retry needs a local store a one-shot job does not keep).
RETRY_DELAYS = (5.0, 20.0)


class PublishError(RuntimeError):
    """The verdict could not be written where the dashboard reads it (the report itself was made)."""


def metric_values(summary: Mapping[str, Any]) -> dict[str, float]:
    """The value of each of DRIFT_METRICS for one report's summary.json."""
    return {
        "Drifted": float(bool(summary["drifted"])),
        "DriftedColumns": float(len(summary["drifted_columns"])),
        "Rows": float(summary["rows"]),
    }


def to_cloudwatch(summary: Mapping[str, Any], endpoint: str, region: str) -> None:
    """PutMetricData for the endpoint; AWS_ENDPOINT_URL, as boto3 reads it, points elsewhere (a stand-in)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    data = [
        {"MetricName": name, "Dimensions": [{"Name": "EndpointName", "Value": endpoint}], "Value": value,
         "Unit": DRIFT_METRICS[name]}
        for name, value in metric_values(summary).items()
    ]  # fmt: skip
    try:
        boto3.client("cloudwatch", region_name=region).put_metric_data(Namespace=DRIFT_NAMESPACE, MetricData=data)
    except ClientError as error:
        detail = error.response.get("Error", {})
        raise PublishError(
            f"CloudWatch refused the drift metrics of {endpoint} in {region}: {detail.get('Code')}: "
            f"{detail.get('Message')} (the identity needs cloudwatch:PutMetricData in {DRIFT_NAMESPACE}: "
            "bootstrap/ grants it to the read role)"
        ) from None
    except NoCredentialsError:
        raise PublishError(
            "no AWS credentials to put the drift metrics with (the workflow signs in as AWS_PREVIEW_ROLE_ARN)"
        ) from None
    except BotoCoreError as error:
        raise PublishError(f"CloudWatch in {region} could not be called: {error}") from None


def event_properties(summary: Mapping[str, Any], stack: str, target: str, report_url: str | None) -> dict[str, str]:
    """The event's custom dimensions: what the workbook's drift table shows."""
    model = summary.get("model") or {}
    return {
        "stack": stack,
        "target": target,
        "model": str(model.get("name", "")),
        "version": str(model.get("version", "")),
        "drifted": "true" if summary["drifted"] else "false",
        "drifted_columns": ", ".join(summary["drifted_columns"]),
        "rows": str(summary["rows"]),
        "since": str(summary["period"]["since"]),
        "until": str(summary["period"]["until"]),
        "report": report_url or "",
    }


def to_application_insights(
    summary: Mapping[str, Any], stack: str, target: str, report_url: str | None, connection_string: str | None
) -> None:
    """One custom event through the Azure Monitor exporter, sent before this returns."""
    if not connection_string:
        raise PublishError(
            f"no Application Insights connection string for the {target} report: set {CONNECTION_STRING_VARIABLE} "
            "to the stack's `application_insights_connection_string` output (pulumi stack output "
            "application_insights_connection_string --show-secrets)"
        )
    # The exporter's own usage reporting (to Microsoft, and "SDK stats" metrics to the stack's resource)
    # would start threads and send telemetry of its own from a one-shot job.
    os.environ.setdefault("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    os.environ.setdefault("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")
    from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter
    from opentelemetry._logs import LogRecord
    from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    try:
        exporter = AzureMonitorLogExporter(connection_string=connection_string, disable_offline_storage=True)
    except ValueError as error:
        raise PublishError(f"{CONNECTION_STRING_VARIABLE}: {error}") from None

    class Recorded(LogRecordExporter):
        """Keeps the export's result: the processor drops it."""

        def __init__(self) -> None:
            self.results: list[LogRecordExportResult] = []

        def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
            self.results.append(exporter.export(batch))
            return self.results[-1]

        def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: ARG002
            return True  # each export is sent before it returns

        def shutdown(self) -> None:
            exporter.shutdown()

    recorded = Recorded()
    provider = LoggerProvider(resource=Resource.create({"service.name": "mlserve-drift"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(recorded))
    attributes = {"microsoft.custom_event.name": DRIFT_EVENT, **event_properties(summary, stack, target, report_url)}
    logger = provider.get_logger("mlserve.drift")
    try:
        for delay in (*RETRY_DELAYS, None):
            logger.emit(LogRecord(body=DRIFT_EVENT, attributes=attributes))
            if recorded.results[-1:] == [LogRecordExportResult.SUCCESS] or delay is None:
                break
            time.sleep(delay)
    finally:
        provider.shutdown()
    if recorded.results[-1:] != [LogRecordExportResult.SUCCESS]:
        raise PublishError(
            f"Application Insights did not take the {target} drift event ({len(recorded.results)} tries; the "
            f"exporter's log line above says why): check {CONNECTION_STRING_VARIABLE}, that its ingestion endpoint "
            "is reachable, and that the component accepts connection-string (local auth) ingestion"
        )
