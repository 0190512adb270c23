"""The drift verdict reaches the stack's dashboards: CloudWatch metric data for SageMaker (moto), an
Application Insights event for ACI and AKS (a stand-in of its ingestion endpoint), read by the very
queries and widgets the dashboards declare."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from scripts import stack_drift
from scripts.drift_publish import PublishError, to_application_insights, to_cloudwatch
from stacks.dashboards import DRIFT_QUERY, cloudwatch_body
from stacks.drift_signal import DRIFT_EVENT, DRIFT_METRICS, DRIFT_NAMESPACE
from tests.drift.week import OURS, SAGEMAKER, model_with_baseline, write_week

SUMMARY = {
    "model": {"name": "weather-rain", "version": "3"},
    "period": {"since": "2026-11-30T06:00:00Z", "until": "2026-12-07T06:00:00Z"},
    "rows": 1680,
    "drifted": True,
    "drifted_columns": ["Temperature_C", "predictions"],
}


class Ingestion:
    """Application Insights' ingestion endpoint (`/v2.1/track`): keeps each envelope, answers as it does."""

    def __init__(self, status: int = 200) -> None:
        self.envelopes: list[dict[str, Any]] = []
        self.status = status
        self.first_statuses: list[int] = []  # answered before `status`, one per request
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                items = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests += 1
                status = outer.first_statuses.pop(0) if outer.first_statuses else outer.status
                outer.envelopes += items if self.path == "/v2.1/track" and status == 200 else []
                accepted = len(items) if status == 200 else 0
                errors = (
                    []
                    if accepted
                    else [{"index": i, "statusCode": 400, "message": "refused"} for i in range(len(items))]
                )
                body = json.dumps({"itemsReceived": len(items), "itemsAccepted": accepted, "errors": errors})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.connection_string = (
            "InstrumentationKey=00000000-0000-0000-0000-00000000d71f;"
            f"IngestionEndpoint=http://127.0.0.1:{self.server.server_port}/"
        )

    def events(self) -> list[dict[str, Any]]:
        return [e["data"]["baseData"] for e in self.envelopes if e["data"]["baseType"] == "EventData"]


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    stand_in = Ingestion()
    yield stand_in
    stand_in.server.shutdown()


@pytest.fixture
def cloudwatch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("cloudwatch", region_name="eu-west-1")


def datapoints(client: Any, endpoint: str, metric: str) -> list[float]:
    """What the dashboard's drift widget would plot for the endpoint (its namespace, dimension, statistic)."""
    end = datetime.now(UTC) + timedelta(minutes=5)
    answer = client.get_metric_statistics(
        Namespace=DRIFT_NAMESPACE, MetricName=metric, Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        StartTime=end - timedelta(days=35), EndTime=end, Period=86400, Statistics=["Maximum"],
    )  # fmt: skip
    return [point["Maximum"] for point in answer["Datapoints"]]


def test_a_sagemaker_verdict_is_what_the_cloudwatch_dashboard_plots(cloudwatch: Any) -> None:
    to_cloudwatch(SUMMARY, "mlserve-prod", "eu-west-1")
    (widget,) = [
        w for w in cloudwatch_body("mlserve-prod", "AllTraffic", "eu-west-1", True, None)["widgets"]
        if w["type"] == "metric" and w["properties"]["metrics"][0][0] == DRIFT_NAMESPACE
    ]  # fmt: skip
    _, metric, dimension, endpoint, options = widget["properties"]["metrics"][0]
    assert (dimension, endpoint, options) == ("EndpointName", "mlserve-prod", {"stat": "Maximum"})
    assert datapoints(cloudwatch, endpoint, metric) == [2.0]  # Temperature_C and the predictions
    assert datapoints(cloudwatch, endpoint, "Drifted") == [1.0]
    assert datapoints(cloudwatch, endpoint, "Rows") == [1680.0]
    listed = cloudwatch.list_metrics(Namespace=DRIFT_NAMESPACE)["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == sorted(DRIFT_METRICS)


def test_cloudwatch_refusing_the_metric_names_the_permission(cloudwatch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    def refuse(*args: object, **kwargs: object) -> None:
        error = {"Error": {"Code": "AccessDenied", "Message": "not authorized to perform cloudwatch:PutMetricData"}}
        raise ClientError(error, "PutMetricData")  # type: ignore[arg-type]

    monkeypatch.setattr("botocore.client.BaseClient._make_api_call", refuse)
    with pytest.raises(PublishError, match=r"AccessDenied.*cloudwatch:PutMetricData in mlserve/Drift: bootstrap/"):
        to_cloudwatch(SUMMARY, "mlserve-prod", "eu-west-1")


def test_an_aci_verdict_is_an_event_with_what_the_workbook_table_projects(ingestion: Ingestion) -> None:
    report = "https://github.com/acme/models/actions/runs/42"
    to_application_insights(SUMMARY, "prod", "aci", report, ingestion.connection_string)
    (event,) = ingestion.events()
    assert len(ingestion.envelopes) == 1  # the event, and none of the exporter's own telemetry
    assert event["name"] == DRIFT_EVENT
    assert f"where name == '{DRIFT_EVENT}'" in DRIFT_QUERY
    properties = event["properties"]
    shown = ("stack", "target", "version", "drifted", "drifted_columns", "rows", "report")
    assert {k: properties[k] for k in shown} == {
        "stack": "prod", "target": "aci", "version": "3", "drifted": "true",
        "drifted_columns": "Temperature_C, predictions", "rows": "1680", "report": report,
    }  # fmt: skip
    # Every custom dimension the workbook's table projects is one the event carries.
    projected = {part.split("(d.")[1].split(")")[0] for part in DRIFT_QUERY.split("tostring")[1:]}
    projected |= {part.split("(d.")[1].split(")")[0] for part in DRIFT_QUERY.split("toint")[1:]}
    assert projected == {"target", "version", "drifted", "drifted_columns", "rows", "report"}
    assert projected <= set(properties)


def test_an_event_refused_for_a_moment_is_sent_again(ingestion: Ingestion, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("scripts.drift_publish.RETRY_DELAYS", (0.0, 0.0))
    ingestion.first_statuses = [429, 503]  # throttled, then briefly unavailable
    to_application_insights(SUMMARY, "dev", "aks", None, ingestion.connection_string)
    (event,) = ingestion.events()
    assert event["properties"]["target"] == "aks"
    assert ingestion.requests >= 3


def test_an_event_application_insights_refuses_or_cannot_take_is_an_error(
    ingestion: Ingestion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("scripts.drift_publish.RETRY_DELAYS", (0.0, 0.0))
    ingestion.status = 400
    with pytest.raises(PublishError, match=r"Application Insights did not take the aks drift event \(3 tries;"):
        to_application_insights(SUMMARY, "dev", "aks", None, ingestion.connection_string)
    assert not ingestion.events()
    ingestion.server.shutdown()
    ingestion.server.server_close()
    with pytest.raises(PublishError, match="ingestion endpoint is reachable, and that the component accepts"):
        to_application_insights(SUMMARY, "dev", "aks", None, ingestion.connection_string)
    with pytest.raises(PublishError, match=r"set APPLICATIONINSIGHTS_CONNECTION_STRING to the stack's"):
        to_application_insights(SUMMARY, "dev", "aks", None, None)


@pytest.fixture(scope="module")
def stack_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project directory whose prod stack serves the demo model with its baseline."""
    root = tmp_path_factory.mktemp("project")
    model = model_with_baseline(root / "model.onnx")
    (root / "Pulumi.prod.yaml").write_text(
        f'config:\n  mlserve:model:\n    name: weather-rain\n    source: "{model}"\n'
    )
    return root


def test_the_stack_report_publishes_each_targets_verdict(
    stack_files: Path, tmp_path: Path, ingestion: Ingestion, cloudwatch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ACI's week drifted (the event says which columns), SageMaker's did not (its metric says 0)."""
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    outputs = {
        "aci_capture_uri": str(write_week(tmp_path / "aci", OURS, ("Temperature_C",), until=until)),
        "sagemaker_capture_uri": str(write_week(tmp_path / "sm", SAGEMAKER, until=until)),
        "sagemaker_endpoint_name": "mlserve-prod",
        "sagemaker_region": "eu-west-1",
    }
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.chdir(stack_files)
    monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", ingestion.connection_string)
    command = ["--stack", "prod", "--outputs", str(tmp_path / "outputs.json"), "--days", "6", "--publish",
               "--output-dir", str(tmp_path / "report"), "--report-url", "https://example.test/1"]  # fmt: skip
    assert stack_drift.main(command) == 1
    (event,) = ingestion.events()
    assert (event["properties"]["target"], event["properties"]["drifted"]) == ("aci", "true")
    assert event["properties"]["drifted_columns"] == "Temperature_C"
    assert datapoints(cloudwatch, "mlserve-prod", "Drifted") == [0.0]
    assert datapoints(cloudwatch, "mlserve-prod", "DriftedColumns") == [0.0]


def test_a_verdict_that_cannot_be_published_is_exit_3_with_the_report_kept(
    stack_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    until = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    outputs = {"aks_capture_uri": str(write_week(tmp_path / "aks", OURS, until=until))}
    (tmp_path / "outputs.json").write_text(json.dumps(outputs))
    monkeypatch.chdir(stack_files)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    command = ["--stack", "prod", "--outputs", str(tmp_path / "outputs.json"), "--days", "6",
               "--output-dir", str(tmp_path / "report"), "--publish"]  # fmt: skip
    assert stack_drift.main(command) == stack_drift.StackDrift.NOT_PUBLISHED == 3
    assert "error: the aks verdict is not on the dashboard: no Application Insights connection string" in (
        capsys.readouterr().err
    )
    assert json.loads((tmp_path / "report" / "aks" / "summary.json").read_text())["drifted"] is False


def test_the_drift_metrics_are_what_put_metric_data_accepts() -> None:
    """CloudWatch API reference, PutMetricData: Namespace 1-255 characters, not starting with ':' nor
    'AWS/' (reserved); MetricName 1-255; Unit one of StandardUnit's values."""
    standard_units = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
                      "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
                      "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
                      "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
                      "Terabits/Second", "Count/Second", "None"}  # fmt: skip
    assert 1 <= len(DRIFT_NAMESPACE) <= 255
    assert not DRIFT_NAMESPACE.startswith((":", "AWS/"))
    assert all(1 <= len(name) <= 255 for name in DRIFT_METRICS)
    assert set(DRIFT_METRICS.values()) <= standard_units
