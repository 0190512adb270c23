"""Where the weekly drift report (model-drift.yml) leaves its verdict for the dashboards to show.

Written by scripts/drift_publish.py, read by stacks/dashboards.py, allowed by bootstrap/ (the AWS read
role may put metric data in DRIFT_NAMESPACE only).
"""

DRIFT_EVENT = "mlserve drift report"  # an Application Insights custom event (the customEvents table)
# CloudWatch PutMetricData: a namespace of our own (not AWS/...), metrics by EndpointName.
DRIFT_NAMESPACE = "mlserve/Drift"
DRIFT_METRICS = {"Drifted": "None", "DriftedColumns": "Count", "Rows": "Count"}  # name: CloudWatch unit
