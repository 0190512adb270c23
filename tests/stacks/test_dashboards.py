"""The dashboards show what the server reports: the dimension it sets, the endpoint's own metrics."""

from __future__ import annotations

import json

from offline.mocks import Evaluation
from serving.telemetry import Telemetry
from stacks.dashboards import (
    DRIFT_QUERY,
    DRIFT_WINDOW_MS,
    MODEL_VERSION_DIMENSION,
    WORKBOOK_QUERIES,
    cloudwatch_body,
    workbook_content,
)
from stacks.drift_signal import DRIFT_EVENT, DRIFT_METRICS, DRIFT_NAMESPACE


def test_workbook_queries_split_by_the_version_the_server_reports() -> None:
    """A renamed span attribute in serving/telemetry.py would leave the per-version charts empty."""
    import inspect

    assert f'"{MODEL_VERSION_DIMENSION}": model_version' in inspect.getsource(Telemetry)
    content = json.loads(workbook_content("weather-rain (dev)"))
    queries = [item["content"]["query"] for item in content["items"] if item["type"] == 3]
    assert queries[:-1] == [query for query, _ in WORKBOOK_QUERIES.values()]
    assert all(q.startswith("requests") for q in queries[:-1])
    assert sum(MODEL_VERSION_DIMENSION in q for q in queries) == 2


def test_the_workbook_lists_the_weekly_drift_verdicts() -> None:
    """The last tile is the drift report's events (tests/drift/test_publish.py sends one and checks the
    columns it projects), over five weeks rather than the day of the other tiles."""
    content = json.loads(workbook_content("weather-rain (prod)"))
    drift = content["items"][-1]["content"]
    assert drift["query"] == DRIFT_QUERY
    assert drift["query"].startswith(f"customEvents | where name == '{DRIFT_EVENT}'")
    assert (drift["visualization"], drift["timeContext"]) == ("table", {"durationMs": DRIFT_WINDOW_MS})
    assert DRIFT_WINDOW_MS == 35 * 24 * 3600 * 1000


def test_the_cloudwatch_dashboard_plots_the_weekly_drift_verdict() -> None:
    body = cloudwatch_body("mlserve-prod", "AllTraffic", "eu-west-1", False, None)
    (drift,) = [w for w in body["widgets"] if w["type"] == "metric" and "Drift" in w["properties"]["title"]]
    properties = drift["properties"]
    assert properties["metrics"] == [[DRIFT_NAMESPACE, "DriftedColumns", "EndpointName", "mlserve-prod",
                                      {"stat": "Maximum"}]]  # fmt: skip
    assert "DriftedColumns" in DRIFT_METRICS
    # A point a week: a day's period over five weeks, whatever range the dashboard opens with (3 hours).
    assert (properties["start"], properties["period"]) == ("-P5W", 86400)


def test_stacks_export_their_dashboards(dev: Evaluation) -> None:
    assert dev.outputs["dashboard_url"].startswith("https://portal.azure.com/#resource")
    assert dev.outputs["dashboard_url"].endswith("/workbook")
    assert dev.outputs["sagemaker_dashboard_url"] == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#dashboards/dashboard/mlserve-dev-sagemaker"
    )


def test_instance_metrics_only_for_instance_based_endpoints_and_capture_named() -> None:
    def metrics(body: dict) -> set[str]:
        return {m[1] for w in body["widgets"] if w["type"] == "metric" for m in w["properties"]["metrics"]}

    serverless = cloudwatch_body("mlserve-dev", "AllTraffic", "eu-west-1", False, None)
    realtime = cloudwatch_body("mlserve-dev", "AllTraffic", "eu-west-1", True, "s3://bucket/capture")
    assert metrics(realtime) - metrics(serverless) == {"CPUUtilization", "MemoryUtilization"}
    assert "ModelLatency" in metrics(serverless)
    assert "s3://bucket/capture" in realtime["widgets"][-1]["properties"]["markdown"]
    assert "off" in serverless["widgets"][-1]["properties"]["markdown"]
