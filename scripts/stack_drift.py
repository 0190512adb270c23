"""The drift report of one stack (model-drift.yml): every capture location among the stack's outputs
against the model the stack serves.

    pulumi stack output --stack acme/prod --json > outputs.json
    python scripts/stack_drift.py --stack prod --outputs outputs.json --days 7 --output-dir drift-report/prod

Capture locations are the outputs named `*capture_uri` (SageMaker Data Capture's bucket, the ACI/AKS
capture container). The model is the stack file's mlserve:model.source, fetched and checked against its
sha256 as `pulumi up` does, or the bundled demo model. Each location's report goes to
OUTPUT_DIR/<output name>/; with --markdown each summary is appended there ($GITHUB_STEP_SUMMARY).
With --publish each verdict goes where the stack's dashboard shows it (scripts/drift_publish.py): a
CloudWatch metric for SageMaker, an Application Insights event for ACI and AKS (the connection string
in $APPLICATIONINSIGHTS_CONNECTION_STRING).
Exit codes (StackDrift): the worst of the reports'; 0 when capture is off; 3 when the reports were
made but a verdict could not be published (and nothing worse happened).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.drift_publish import CONNECTION_STRING_VARIABLE, PublishError, to_application_insights, to_cloudwatch
from serving.drift.__main__ import main as drift
from serving.exit_codes import ExitCode
from stacks.model_source import BUNDLED_MODEL, ModelSourceError, fetch_model

SUFFIX = "capture_uri"


class StackDrift(ExitCode):
    """`python scripts/stack_drift.py` (model-drift.yml)."""

    NO_DRIFT = 0, "No drift in any capture location of the stack, or capture is off"
    DRIFT = 1, "Drift past a threshold in a capture location; its report says where"
    BAD_INPUT = 2, "A report could not be made (outputs, the stack's model, a capture location): one line saying what"
    NOT_PUBLISHED = 3, "The reports were made (no drift), but a verdict could not be sent to the stack's dashboard"


def stack_model(stack: str) -> Path:
    path = Path(f"Pulumi.{stack}.yaml")
    if not path.is_file():
        raise ModelSourceError(f"{path}: no such stack file")
    model = ((yaml.safe_load(path.read_text()) or {}).get("config") or {}).get("mlserve:model") or {}
    if not model.get("source"):
        return BUNDLED_MODEL
    artifact = fetch_model(str(model["source"]), model.get("sha256") or None)
    return Path(artifact.directory) / "model.onnx"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stack's name, as in Pulumi.<stack>.yaml")
    parser.add_argument("--outputs", type=Path, required=True, help="`pulumi stack output --json`")
    parser.add_argument("--days", default="7")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--markdown", help="append each summary to this file")
    parser.add_argument("--publish", action="store_true", help="send each verdict to the stack's dashboard")
    parser.add_argument("--report-url", help="where the report can be opened (the workflow run), for the dashboard")
    args = parser.parse_args(argv)
    try:
        outputs = json.loads(args.outputs.read_text())
    except (OSError, ValueError) as error:
        print(f"error: --outputs {args.outputs}: {error}", file=sys.stderr)
        return StackDrift.BAD_INPUT
    sources = {k: v for k, v in sorted(outputs.items()) if k.endswith(SUFFIX) and isinstance(v, str) and v}
    if not sources:
        print(f"{args.stack}: no capture location among the stack's outputs (capture is off): no report")
        return StackDrift.NO_DRIFT
    try:
        model = stack_model(args.stack)
    except ModelSourceError as error:
        print(f"error: the stack's model: {error}", file=sys.stderr)
        return StackDrift.BAD_INPUT
    worst, unpublished = 0, False
    for name, source in sources.items():
        print(f"{args.stack}: {name} = {source}", flush=True)
        target = name.removesuffix(SUFFIX).rstrip("_") or "capture"  # sagemaker_capture_uri: sagemaker
        where = args.output_dir / target
        command = ["--source", source, "--model", str(model), "--days", args.days, "--output-dir", str(where)]
        if args.markdown:
            command += ["--markdown", args.markdown]
        code = drift(command)
        worst = max(worst, code)
        if args.publish and code in (0, 1):
            try:
                publish(args, target, outputs, _summary(where / "summary.json"))
            except PublishError as error:
                print(f"error: the {target} verdict is not on the dashboard: {error}", file=sys.stderr)
                unpublished = True
    return StackDrift.NOT_PUBLISHED if unpublished and worst == 0 else worst


def _summary(path: Path) -> dict:
    try:
        summary: dict = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PublishError(f"the report's summary {path}: {error}") from None
    return summary


def publish(args: argparse.Namespace, target: str, outputs: dict, summary: dict) -> None:
    """One verdict to the dashboard of the target it was captured on."""
    if target == "sagemaker":
        endpoint, region = outputs.get("sagemaker_endpoint_name"), outputs.get("sagemaker_region")
        if not (isinstance(endpoint, str) and isinstance(region, str)):
            raise PublishError("the stack's outputs lack sagemaker_endpoint_name or sagemaker_region")
        to_cloudwatch(summary, endpoint, region)
        print(f"{args.stack}: the sagemaker verdict is on the CloudWatch dashboard ({endpoint}, {region})")
    else:
        connection = os.environ.get(CONNECTION_STRING_VARIABLE)
        to_application_insights(summary, args.stack, target, args.report_url, connection)
        print(f"{args.stack}: the {target} verdict is on the workbook (Application Insights)")


if __name__ == "__main__":
    sys.exit(main())
