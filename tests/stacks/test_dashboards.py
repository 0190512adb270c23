"""The dashboards show what the server reports: the dimension it sets, the endpoint's own metrics."""

from __future__ import annotations

import json

from offline.mocks import Evaluation
from serving.telemetry import Telemetry
from stacks.dashboards import MODEL_VERSION_DIMENSION, WORKBOOK_QUERIES, cloudwatch_body, workbook_content


def test_workbook_queries_split_by_the_version_the_server_reports() -> None:
    """A renamed span attribute in serving/telemetry.py would leave the per-version charts empty."""
    import inspect

    assert f'"{MODEL_VERSION_DIMENSION}": model_version' in inspect.getsource(Telemetry)
    content = json.loads(workbook_content("weather-rain (dev)"))
    queries = [item["content"]["query"] for item in content["items"] if item["type"] == 3]
    assert queries == [query for query, _ in WORKBOOK_QUERIES.values()]
    assert all(q.startswith("requests") for q in queries)
    assert sum(MODEL_VERSION_DIMENSION in q for q in queries) == 2


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
