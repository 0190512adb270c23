"""The AWS side of the real stacks under mocks: ECR, IAM, SageMaker, alarms, autoscaling, data capture."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
import pytest

from offline.mocks import Evaluation, Recorded, evaluate, merged
from stacks.config import ConfigError
from stacks.image import image_tag
from stacks.sagemaker import deregister_scalable_target_script
from tests.conftest import SAMPLE_ROWS
from tests.serving.server import running_server

ACCOUNT = "123456789012"


def policy_statements(resource: Recorded, key: str = "policy") -> list[dict]:
    document = json.loads(resource.inputs[key])
    return document["Statement"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_ecr_repository(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    repo = evaluation.one("aws:ecr/repository:Repository")
    assert repo.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
    assert repo.inputs["imageTagMutability"] == "IMMUTABLE"
    if stack == "dev":
        assert repo.inputs["encryptionConfigurations"] == [{"encryptionType": "AES256"}]
    else:  # real-time prod: the stack's own KMS key
        assert repo.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mlserve-prod-kms-key-0000"}
        ]
    assert repo.inputs["forceDelete"] is (stack == "dev")
    assert repo.protect is (stack == "prod")
    rules = json.loads(evaluation.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])["rules"]
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}


def test_only_enabled_registries_receive_the_image() -> None:
    azure_only = evaluate("dev", {"mlserve:targets": ["aci"]}, remove=("mlserve:sagemaker",))
    assert "aws:ecr/repository:Repository" not in azure_only.types()
    assert len(azure_only.serving_image().inputs["registries"]) == 1
    aws_only = evaluate(
        "dev", {"mlserve:targets": ["sagemaker"]}, remove=("mlserve:azure", "mlserve:aci", "mlserve:capture")
    )
    assert not any(t.startswith("azure") for t in aws_only.types())
    image = aws_only.serving_image().inputs
    assert [r["address"] for r in image["registries"]] == [f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"]
    assert "ecr:GetAuthorizationToken" not in str(image)  # the token is a credential, not in the build's inputs
    assert "primary_key" not in aws_only.outputs, "SageMaker callers authenticate with IAM"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_execution_role_is_least_privilege(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    role = evaluation.one("aws:iam/role:Role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "sagemaker.amazonaws.com"},
            "Action": "sts:AssumeRole",
            # Confused-deputy protection: SageMaker acting for another account cannot assume it.
            "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
        }
    ]
    assert evaluation.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == [], "no managed policies"
    statements = policy_statements(evaluation.one("aws:iam/rolePolicy:RolePolicy"))
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert not any(a == "*" or a.endswith(":*") for a in actions), statement
        if statement["Resource"] == "*":
            # Only actions AWS offers without resource-level permissions, and metrics only in SageMaker's namespace.
            assert actions in (["ecr:GetAuthorizationToken"], ["cloudwatch:PutMetricData"]), statement
    by_sid = {s["Sid"]: s for s in statements}
    assert (
        by_sid["PullServingImage"]["Resource"]
        == f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/mlserve-{stack}-ecr-repo-1a2b"
    )
    assert by_sid["EndpointMetrics"]["Condition"]["StringEquals"]["cloudwatch:namespace"]
    assert all(
        r.startswith(f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/mlserve-{stack}")
        for r in by_sid["EndpointLogs"]["Resource"]
    )
    assert ("WriteDataCapture" in by_sid) is (stack == "prod")


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_model_runs_the_pinned_image_with_the_server_settings(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    model = evaluation.one("aws:sagemaker/model:Model").inputs
    container = model["primaryContainer"]
    assert container["image"].startswith(f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/")
    assert "@sha256:" in container["image"]
    assert container["environment"]["SERVING_MAX_CONCURRENT_REQUESTS"] == "2"
    assert "SERVING_API_KEYS" not in container["environment"]
    # Serverless endpoints refuse network isolation; instance-based ones get it.
    assert model["enableNetworkIsolation"] is (stack == "prod")
    assert evaluation.outputs["sagemaker_image"] == container["image"]


def test_dev_is_serverless_and_scales_to_zero(dev: Evaluation) -> None:
    variant = dev.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs["productionVariants"][0]
    assert variant["serverlessConfig"] == {"memorySizeInMb": 2048, "maxConcurrency": 5}
    assert "instanceType" not in variant
    assert "aws:appautoscaling/target:Target" not in dev.types()
    endpoint = dev.one("aws:sagemaker/endpoint:Endpoint").inputs
    assert "deploymentConfig" not in endpoint
    assert "sagemaker_capture_uri" not in dev.outputs  # no capture: no drift report for model-drift.yml


def test_prod_is_real_time_on_two_instances_with_autoscaling(prod: Evaluation) -> None:
    variant = prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs["productionVariants"][0]
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.m5.large", 2)
    assert variant["variantName"] == "AllTraffic"
    target = prod.one("aws:appautoscaling/target:Target").inputs
    assert target["resourceId"] == "endpoint/mlserve-prod/variant/AllTraffic"
    assert target["scalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    policy = prod.one("aws:appautoscaling/policy:Policy").inputs
    assert policy["policyType"] == "TargetTrackingScaling"
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert (tracking["targetValue"], tracking["scaleInCooldown"], tracking["scaleOutCooldown"]) == (200, 300, 60)


def test_endpoint_config_is_auto_named_and_the_endpoint_keeps_its_name(prod: Evaluation) -> None:
    config = prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert "name" not in config, "a fixed name would delete the old config before the endpoint moves"
    endpoint = prod.one("aws:sagemaker/endpoint:Endpoint").inputs
    assert endpoint["name"] == "mlserve-prod"
    assert endpoint["endpointConfigName"] == "mlserve-prod-sagemaker-config-1a2b"


def test_rollout_is_canary_with_rollback_on_this_stacks_alarms(prod: Evaluation) -> None:
    alarms = {a.name: a.inputs for a in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    errors, latency = alarms["mlserve-prod-sagemaker-5xx"], alarms["mlserve-prod-sagemaker-latency"]
    for alarm in (errors, latency):
        assert alarm["namespace"] == "AWS/SageMaker"
        assert alarm["dimensions"] == {"EndpointName": "mlserve-prod", "VariantName": "AllTraffic"}
    assert errors["metricName"] == "Invocation5XXErrors"
    assert latency["metricName"] == "ModelLatency"
    assert latency["threshold"] == 500_000  # microseconds
    config = prod.one("aws:sagemaker/endpoint:Endpoint").inputs["deploymentConfig"]
    routing = config["blueGreenUpdatePolicy"]["trafficRoutingConfiguration"]
    assert routing == {
        "type": "CANARY",
        "waitIntervalInSeconds": 300,
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
    }
    assert config["autoRollbackConfiguration"]["alarms"] == [
        {"alarmName": "mlserve-prod-sagemaker-5xx-1a2b"},
        {"alarmName": "mlserve-prod-sagemaker-latency-1a2b"},
    ]


def test_data_capture_bucket_is_private_and_encrypted(prod: Evaluation) -> None:
    config = prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs["dataCaptureConfig"]
    assert config["enableCapture"] is True
    assert config["initialSamplingPercentage"] == 10
    assert config["destinationS3Uri"] == "s3://mlserve-prod-sagemaker-capture-1a2b/capture"
    # Where the drift report reads (model-drift.yml): Data Capture adds <endpoint>/<variant>/YYYY/... to the URI.
    assert prod.outputs["sagemaker_capture_uri"] == "s3://mlserve-prod-sagemaker-capture-1a2b/capture/mlserve-prod"
    block = prod.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock").inputs
    assert all(
        block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    sse = prod.one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration").inputs
    assert sse["rules"][0]["applyServerSideEncryptionByDefault"] == {
        "sseAlgorithm": "aws:kms",
        "kmsMasterKeyId": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mlserve-prod-kms-key-0000",
    }


def test_prod_encrypts_with_its_own_rotated_key(prod: Evaluation) -> None:
    key = prod.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert key.inputs["deletionWindowInDays"] == 30
    assert key.protect is True
    arn = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/mlserve-prod-kms-key-0000"
    assert prod.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs["kmsKeyArn"] == arn
    statements = {s["Sid"]: s for s in policy_statements(prod.one("aws:iam/rolePolicy:RolePolicy"))}
    assert statements["UseStackKey"]["Resource"] == arn
    assert "aws:kms/key:Key" not in evaluate("dev").types(), "serverless dev needs no key of its own"


def test_outputs_tell_how_to_invoke(prod: Evaluation) -> None:
    assert prod.outputs["sagemaker_endpoint_name"] == "mlserve-prod"
    assert prod.outputs["sagemaker_invoke_url"] == (
        "https://runtime.sagemaker.eu-west-1.amazonaws.com/endpoints/mlserve-prod/invocations"
    )
    assert prod.outputs["sagemaker_region"] == "eu-west-1"
    assert prod.outputs["sagemaker_invoke_example"].startswith(
        "aws sagemaker-runtime invoke-endpoint --region eu-west-1 --endpoint-name mlserve-prod"
    )
    # CSV in and CSV out, as the documented call: without --accept the answer would be JSON.
    assert "--content-type text/csv --accept text/csv" in prod.outputs["sagemaker_invoke_example"]
    assert prod.outputs["sagemaker_endpoint_arn"].endswith(":endpoint/mlserve-prod")


def test_kms_key_encrypts_repository_endpoint_and_capture() -> None:
    key = f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    stack = evaluate("prod", {"mlserve:sagemaker": {"mode": "realtime", "kmsKeyArn": key, "dataCapturePercent": 5}})
    assert "aws:kms/key:Key" not in stack.types(), "a configured key replaces the stack's own"
    assert stack.one("aws:ecr/repository:Repository").inputs["encryptionConfigurations"] == [
        {"encryptionType": "KMS", "kmsKey": key}
    ]
    config = stack.one("aws:sagemaker/endpointConfiguration:EndpointConfiguration").inputs
    assert config["kmsKeyArn"] == key
    assert config["dataCaptureConfig"]["kmsKeyId"] == key
    statements = {s["Sid"]: s for s in policy_statements(stack.one("aws:iam/rolePolicy:RolePolicy"))}
    assert statements["UseStackKey"]["Resource"] == key


def test_model_artifact_from_s3_is_readable_by_the_role_only() -> None:
    url = "s3://models-bucket/weather/2/model.tar.gz"
    stack = evaluate("dev", {"mlserve:sagemaker": {"modelDataUrl": url}})
    assert stack.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["modelDataUrl"] == url
    statements = {s["Sid"]: s for s in policy_statements(stack.one("aws:iam/rolePolicy:RolePolicy"))}
    assert statements["ReadModelArtifact"] == {
        "Sid": "ReadModelArtifact",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::models-bucket/weather/2/model.tar.gz",
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"mode": "batch"}, "mlserve:sagemaker.mode in Pulumi.dev.yaml"),
        ({"memorySizeMb": 1500}, "mlserve:sagemaker.memorySizeMb in Pulumi.dev.yaml: 1500 is not a serverless size"),
        ({"maxConcurrency": 500}, "mlserve:sagemaker.maxConcurrency in Pulumi.dev.yaml: 500 is out of range"),
        ({"instanceType": "m5.large"}, "mlserve:sagemaker.instanceType in Pulumi.dev.yaml"),
        ({"minCapacity": 3, "maxCapacity": 2, "instanceCount": 3}, "mlserve:sagemaker.maxCapacity in Pulumi.dev.yaml"),
        ({"rollout": {"type": "BIG_BANG"}}, "mlserve:sagemaker.rollout.type in Pulumi.dev.yaml"),
        ({"modelDataUrl": "https://example.com/model.tar.gz"}, "mlserve:sagemaker.modelDataUrl in Pulumi.dev.yaml"),
        ({"kmsKeyArn": "my-key"}, "mlserve:sagemaker.kmsKeyArn in Pulumi.dev.yaml"),
    ],
)
def test_bad_sagemaker_settings_name_the_key(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        evaluate("dev", {"mlserve:sagemaker": settings})
    assert message in str(raised.value)


def test_prod_real_time_endpoint_needs_two_instances() -> None:
    with pytest.raises(ConfigError) as raised:
        evaluate("prod", {"mlserve:sagemaker": {"mode": "realtime", "instanceCount": 1, "minCapacity": 1}})
    assert "mlserve:sagemaker.minCapacity in Pulumi.prod.yaml: a protected (production) real-time endpoint" in str(
        raised.value
    )


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_server_accepts_the_container_environment_the_stack_sets(
    stack: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Start the real server with exactly the Model's environment, as SageMaker would, plus its model dir."""
    evaluation: Evaluation = request.getfixturevalue(stack)
    environment = evaluation.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
    model_dir = Path(__file__).resolve().parents[2] / "serving" / "model"
    with running_server(tmp_path, env={**environment, "SM_MODEL_DIR": str(model_dir)}) as server:
        assert httpx.get(server.url + "/ping").status_code == 200
        response = httpx.post(
            server.url + "/invocations",
            content="\n".join(",".join(map(str, r)) for r in SAMPLE_ROWS),
            headers={"Content-Type": "text/csv"},
        )
        assert response.status_code == 200
        assert len(response.json()["predictions"]) == 3


def test_image_tag_changes_with_every_build_input(tmp_path: Path) -> None:
    """ECR tags are immutable: whatever makes docker-build rebuild must also make a new tag."""
    tag = image_tag("m-1", None, {"build_args": {"EXTRAS": ""}})
    assert tag == image_tag("m-1", None, {"build_args": {"EXTRAS": ""}}), "stable for the same inputs"
    assert tag != image_tag("m-1", None, {"build_args": {"EXTRAS": "batch"}})
    assert tag != image_tag("m-1", None, {"build_args": {"EXTRAS": ""}, "labels": {"a": "b"}})
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.onnx").write_bytes(b"onnx")
    with_model = image_tag("m-1", str(model), {})
    (model / "model.onnx").chmod(0o600)
    assert image_tag("m-1", str(model), {}) != with_model, "a file mode change rebuilds the image"


def test_toggling_batch_scoring_gives_the_image_a_new_tag() -> None:
    def tags(batch: bool) -> list[str]:
        overrides = {"mlserve:batch": merged("prod", "mlserve:batch", {"enabled": batch})}
        return evaluate("prod", overrides).serving_image().inputs["tags"]

    with_batch, without = tags(True), tags(False)
    assert [t.rsplit(":", 1)[0] for t in with_batch] == [t.rsplit(":", 1)[0] for t in without]
    assert not set(with_batch) & set(without)


def test_changing_the_instance_type_deregisters_autoscaling_first(prod: Evaluation) -> None:
    """AWS refuses an instance-type change on an autoscaled variant: the command deregisters it before."""
    (deregister,) = prod.of_type("command:local:Command")
    assert deregister.inputs["triggers"] == ["ml.m5.large"]
    assert deregister.inputs["environment"]["ENDPOINT"] == "mlserve-prod"
    assert "deregister-scalable-target" in deregister.inputs["create"]
    endpoint = prod.one("aws:sagemaker/endpoint:Endpoint")
    assert deregister.urn in endpoint.dependencies
    bigger = evaluate(
        "prod", {"mlserve:sagemaker": merged("prod", "mlserve:sagemaker", {"instanceType": "ml.c5.xlarge"})}
    )
    (target,) = bigger.of_type("aws:appautoscaling/target:Target")
    assert target.name == "mlserve-prod-sagemaker-scaling-ml-c5-xlarge", "a new registration after the update"
    assert target.retain_on_delete


def test_deregistration_script_tolerates_a_missing_target(tmp_path: Path) -> None:
    """The first `up` has no target yet: the script checks before deregistering, and fails on real errors."""
    calls = tmp_path / "calls"
    fake_aws = tmp_path / "aws"
    fake_aws.write_text(
        f'#!/bin/sh\necho "$@" >> {calls}\n'
        'case "$2" in describe-scalable-targets) echo "$REGISTERED";; deregister-scalable-target) exit "$FAIL";; esac\n'
    )
    fake_aws.chmod(0o755)
    script = deregister_scalable_target_script()

    def run(registered: str, fail: str) -> int:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "ENDPOINT": "e", "VARIANT": "AllTraffic"}
        return subprocess.run(
            ["sh", "-c", script], env={**env, "REGISTERED": registered, "FAIL": fail}, check=False
        ).returncode

    assert run("0", "1") == 0
    assert "deregister" not in calls.read_text().split("\n", 1)[0]
    assert run("1", "0") == 0
    assert "deregister-scalable-target --service-namespace sagemaker --resource-id endpoint/e/variant/AllTraffic" in (
        calls.read_text()
    )
    assert run("1", "1") != 0, "a refused deregistration stops the update"


def test_alarms_notify_the_configured_address(prod: Evaluation, dev: Evaluation) -> None:
    topic = prod.one("aws:sns/topic:Topic")
    subscription = prod.one("aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == ("email", "ml-oncall@example.com")
    for alarm in prod.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == alarm.inputs["okActions"] == [subscription["topic"]]
    assert topic.urn in prod.one("aws:sns/topicSubscription:TopicSubscription").dependencies
    assert "aws:sns/topicSubscription:TopicSubscription" not in dev.types(), "no address configured in dev"


def test_capture_bucket_refuses_plain_http_and_expires_data(prod: Evaluation) -> None:
    policy = json.loads(prod.one("aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    (deny,) = policy["Statement"]
    assert (deny["Effect"], deny["Action"]) == ("Deny", "s3:*")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (rule,) = prod.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").inputs["rules"]
    assert (rule["status"], rule["expiration"]["days"]) == ("Enabled", 90)


@pytest.mark.parametrize(("stack", "cloud", "other"), [("azure-dev", "azure", "aws:"), ("aws-dev", "aws", "azure")])
def test_one_cloud_example_stacks_need_only_their_cloud(stack: str, cloud: str, other: str) -> None:
    """A team on one cloud starts from a stack that needs only that cloud's credentials."""
    evaluation = evaluate(stack)
    types = evaluation.types()
    assert any(t.startswith(cloud) for t in types)
    assert not [t for t in types if t.startswith(other) or t.startswith(f"pulumi:providers:{other.rstrip(':')}")]
    assert not [i for i in evaluation.invokes if i.startswith(other)], "no lookups in the other cloud either"
    assert evaluation.outputs.get("scoring_uri" if cloud == "azure" else "sagemaker_invoke_url")


def test_a_model_with_text_columns_gets_a_pasteable_invoke_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample row of a model with text columns holds text: the example quotes it for CSV and the shell."""
    import csv
    import hashlib
    import shlex

    from tests.serving.models import BANK_COLUMNS, bank_frame, bank_model

    frame = bank_frame()
    frame.loc[0, "job"] = "A 'self-employed', shop"  # first of the categories: the sample's job
    model, _ = bank_model(tmp_path / "bank.onnx", frame)
    monkeypatch.setenv("MLSERVE_MODEL_CACHE", str(tmp_path / "cache"))
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    settings = {"name": "bank", "version": "1", "source": str(model), "sha256": digest}
    outputs = evaluate("dev", {"mlserve:model": settings}).outputs
    sample = outputs["model_sample"]
    assert "A 'self-employed', shop" in sample, "a comma and quotes: CSV and shell quoting both needed"
    words = shlex.split(outputs["sagemaker_invoke_example"])
    (row,) = csv.reader([words[words.index("--body") + 1]])
    assert len(row) == len(BANK_COLUMNS)
    assert row == [v if isinstance(v, str) else f"{v:g}" for v in sample]
