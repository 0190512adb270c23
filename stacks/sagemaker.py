"""SageMaker: execution role, Model, EndpointConfiguration, Endpoint, alarms, autoscaling, data capture.

dev runs serverless (scale to zero, no idle cost); prod runs instances with target-tracking
autoscaling and blue/green rollouts that roll back on this stack's CloudWatch alarms.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_command as command

from stacks.config import has_instance_storage

VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRICS_NAMESPACES = ["/aws/sagemaker/Endpoints", "AWS/SageMaker"]


@dataclass(frozen=True)
class RolloutArgs:
    """How a new endpoint config replaces the old: blue/green with auto-rollback on the two alarms."""

    kind: str  # CANARY | LINEAR | ALL_AT_ONCE
    step_percent: int  # the canary's size, or the linear step
    wait_seconds: int
    latency_alarm_ms: int  # p99 model latency that rolls back
    error_alarm_count: int  # 5xx answers in a minute that roll back


@dataclass
class SageMakerEndpointArgs:
    image_ref: pulumi.Input[str]  # ECR, by digest, in the endpoint's region
    repository_arn: pulumi.Input[str]
    environment: dict[str, str]  # the server's SERVING_* settings
    mode: str  # serverless | realtime
    endpoint_name: str
    memory_size_mb: int  # serverless
    max_concurrency: int  # serverless
    instance_type: str  # realtime, and the rest below
    instance_count: int
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: int
    scale_in_cooldown: int
    scale_out_cooldown: int
    rollout: RolloutArgs
    model_data_url: str | None  # s3://.../model.tar.gz, unpacked to /opt/ml/model
    data_capture_percent: int  # 0: off
    data_capture_retention_days: int
    kms_key_arn: pulumi.Input[str] | None  # the configured key, the stack's own, or None
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    alert_email: str | None  # subscribed to the alarms' topic
    protect: bool
    tags: dict[str, str]


def trust_policy(account_id: str) -> dict[str, Any]:
    """SageMaker may assume the role only on behalf of this account (confused-deputy protection)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            }
        ],
    }


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    """Refuse every request to the bucket that does not use TLS (S3 security best practices)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def deregister_scalable_target_script() -> str:
    """Shell run before the endpoint moves to a new instance type.

    AWS ("Update endpoints that use auto scaling"): an update that changes the instance type of an
    autoscaled variant fails; deregister it first (that also deletes its policies), register after.
    A target that does not exist yet (the first `up`) is not an error.
    """
    common = (
        '--service-namespace sagemaker --resource-id "endpoint/$ENDPOINT/variant/$VARIANT" '
        f"--scalable-dimension {SCALABLE_DIMENSION}"
    )
    return (
        "set -eu\n"
        f"registered=$(aws application-autoscaling describe-scalable-targets --service-namespace sagemaker "
        f'--resource-ids "endpoint/$ENDPOINT/variant/$VARIANT" --query "length(ScalableTargets)" --output text)\n'
        f'if [ "$registered" != "0" ]; then aws application-autoscaling deregister-scalable-target {common}; fi\n'
    )


def _s3_object_arn(url: str) -> str:
    return "arn:aws:s3:::" + url.removeprefix("s3://")


def execution_policy(
    repository_arn: str,
    region: str,
    account: str,
    endpoint_name: str,
    model_data_url: str | None,
    capture_bucket_arn: str | None,
    kms_key_arn: str | None,
) -> dict[str, Any]:
    """Least privilege: this image, this endpoint's logs, its model artifact and capture bucket only."""
    log_group = f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint_name}"
    statements = [
        {
            "Sid": "PullServingImage",
            "Effect": "Allow",
            "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            "Resource": repository_arn,
        },
        # GetAuthorizationToken has no resource-level permissions: "*" is the only form AWS accepts.
        {"Sid": "RegistryLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
        {
            "Sid": "EndpointLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            "Resource": [log_group, f"{log_group}:*"],
        },
        # PutMetricData has no resource-level permissions either; the condition limits it to SageMaker's namespaces.
        {
            "Sid": "EndpointMetrics",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": METRICS_NAMESPACES}},
        },
    ]
    if model_data_url:
        statements.append(
            {
                "Sid": "ReadModelArtifact",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": _s3_object_arn(model_data_url),
            }
        )
    if capture_bucket_arn:
        statements.append(
            {
                "Sid": "WriteDataCapture",
                "Effect": "Allow",
                "Action": "s3:PutObject",
                "Resource": f"{capture_bucket_arn}/*",
            }
        )
    if kms_key_arn:
        statements.append(
            {
                "Sid": "UseStackKey",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:CreateGrant", "kms:DescribeKey"],
                "Resource": kms_key_arn,
            }
        )
    return {"Version": "2012-10-17", "Statement": statements}


class SageMakerEndpoint(pulumi.ComponentResource):
    def __init__(self, name: str, args: SageMakerEndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:aws:SageMakerEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        realtime = args.mode == "realtime"

        capture_bucket = self._capture_bucket(name, args) if args.data_capture_percent else None
        self.capture_uri: pulumi.Output[str] | None = (
            pulumi.Output.concat("s3://", capture_bucket.bucket, "/capture") if capture_bucket else None
        )
        role = aws.iam.Role(
            f"{name}-execution",
            assume_role_policy=pulumi.Output.json_dumps(pulumi.Output.from_input(args.account_id).apply(trust_policy)),
            tags=args.tags,
            opts=child,
        )
        policy = aws.iam.RolePolicy(
            f"{name}-execution",
            role=role.id,
            policy=pulumi.Output.all(
                args.repository_arn,
                args.region,
                args.account_id,
                capture_bucket.arn if capture_bucket else None,
                args.kms_key_arn,
            ).apply(
                lambda v: json.dumps(
                    execution_policy(v[0], v[1], v[2], args.endpoint_name, args.model_data_url, v[3], v[4])
                )
            ),
            opts=child,
        )
        container: dict[str, Any] = {"image": args.image_ref, "mode": "SingleModel", "environment": args.environment}
        if args.model_data_url:
            container["model_data_url"] = args.model_data_url  # unpacked to /opt/ml/model, where the server looks
        model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=role.arn,
            primary_container=container,
            # The server needs no outbound network; serverless endpoints refuse network isolation
            # (SageMaker developer guide, "Serverless Inference": feature exclusions).
            enable_network_isolation=realtime,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        if realtime:
            variant: dict[str, Any] = {
                "variant_name": VARIANT,
                "model_name": model.name,
                "instance_type": args.instance_type,
                "initial_instance_count": args.instance_count,
                "container_startup_health_check_timeout_in_seconds": 600,
            }
        else:
            variant = {
                "variant_name": VARIANT,
                "model_name": model.name,
                "serverless_config": {
                    "memory_size_in_mb": args.memory_size_mb,
                    "max_concurrency": args.max_concurrency,
                },
            }
        config_args: dict[str, Any] = {"production_variants": [variant], "tags": args.tags}
        if realtime and args.kms_key_arn is not None and not has_instance_storage(args.instance_type):
            # Encrypts the instances' storage volumes. Instance types with local NVMe storage encrypt it
            # in hardware, and CreateEndpointConfig refuses a key for them.
            config_args["kms_key_arn"] = args.kms_key_arn
        if capture_bucket is not None:
            config_args["data_capture_config"] = {
                "enable_capture": True,
                "initial_sampling_percentage": args.data_capture_percent,
                "destination_s3_uri": self.capture_uri,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                **({"kms_key_id": args.kms_key_arn} if args.kms_key_arn is not None else {}),
            }
        # Auto-named on purpose: a changed configuration is a new one, created before the endpoint moves to it.
        endpoint_config = aws.sagemaker.EndpointConfiguration(f"{name}-config", **config_args, opts=child)

        dimensions = {"EndpointName": args.endpoint_name, "VariantName": VARIANT}
        # Alarms notify a person, not only the rollback: a topic, and an e-mail subscription from config.
        self.alarm_topic = aws.sns.Topic(f"{name}-alarms", tags=args.tags, opts=child)
        if args.alert_email:
            aws.sns.TopicSubscription(
                f"{name}-alarms-email",
                topic=self.alarm_topic.arn,
                protocol="email",
                endpoint=args.alert_email,
                opts=child,
            )
        notify = {"alarm_actions": [self.alarm_topic.arn], "ok_actions": [self.alarm_topic.arn]}
        self.error_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-5xx",
            alarm_description=f"5xx answers from {args.endpoint_name}",
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions=dimensions,
            statistic="Sum",
            period=60,
            evaluation_periods=2,
            threshold=args.rollout.error_alarm_count,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            **notify,
            tags=args.tags,
            opts=child,
        )
        self.latency_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-latency",
            alarm_description=f"p99 model latency of {args.endpoint_name} above {args.rollout.latency_alarm_ms} ms",
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",  # microseconds
            dimensions=dimensions,
            extended_statistic="p99",
            period=60,
            evaluation_periods=3,
            threshold=args.rollout.latency_alarm_ms * 1000,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            **notify,
            tags=args.tags,
            opts=child,
        )
        endpoint_args: dict[str, Any] = {}
        if realtime:
            routing: dict[str, Any] = {"type": args.rollout.kind, "wait_interval_in_seconds": args.rollout.wait_seconds}
            step = {"type": "CAPACITY_PERCENT", "value": args.rollout.step_percent}
            if args.rollout.kind == "CANARY":
                routing["canary_size"] = step
            elif args.rollout.kind == "LINEAR":
                routing["linear_step_size"] = step
            endpoint_args["deployment_config"] = {
                "blue_green_update_policy": {
                    "traffic_routing_configuration": routing,
                    "termination_wait_in_seconds": 120,
                    "maximum_execution_timeout_in_seconds": 3600,
                },
                "auto_rollback_configuration": {
                    "alarms": [
                        {"alarm_name": self.error_alarm.name},
                        {"alarm_name": self.latency_alarm.name},
                    ]
                },
            }
        endpoint_options = child
        if realtime:
            # Runs only when the instance type changes (and on the first up, when there is nothing to do).
            deregistered = command.local.Command(
                f"{name}-deregister-scaling",
                create=deregister_scalable_target_script(),
                # A change of the script or its environment alone updates the resource: nothing to run
                # then (without `update`, pulumi-command would run `create` again and deregister the
                # live registration). Only a new instance type (the trigger) replaces it and runs it.
                update="true",
                environment={"ENDPOINT": args.endpoint_name, "VARIANT": VARIANT, "AWS_REGION": args.region},
                triggers=[args.instance_type],
                opts=child,
            )
            endpoint_options = pulumi.ResourceOptions(parent=self, depends_on=[deregistered])
        # A fixed endpoint name keeps the invoke URL stable; updates switch it to the new configuration.
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=endpoint_config.name,
            tags=args.tags,
            **endpoint_args,
            opts=endpoint_options,
        )
        if realtime:
            # Keyed on the instance type: a new type is a new registration after the endpoint update.
            # The old one was deregistered by the command above, so its removal from the state must not
            # call AWS again (it would deregister the new one, which has the same id).
            scaling = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
            key = args.instance_type.replace(".", "-")
            target = aws.appautoscaling.Target(
                f"{name}-scaling-{key}",
                service_namespace="sagemaker",
                scalable_dimension=SCALABLE_DIMENSION,
                resource_id=pulumi.Output.concat("endpoint/", self.endpoint.name, f"/variant/{VARIANT}"),
                min_capacity=args.min_capacity,
                max_capacity=args.max_capacity,
                opts=scaling,
            )
            aws.appautoscaling.Policy(
                f"{name}-invocations-{key}",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration={
                    "target_value": args.target_invocations_per_instance,
                    "predefined_metric_specification": {
                        "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                    },
                    "scale_in_cooldown": args.scale_in_cooldown,
                    "scale_out_cooldown": args.scale_out_cooldown,
                },
                opts=scaling,
            )
        self.invoke_url = pulumi.Output.concat(
            "https://runtime.sagemaker.", args.region, ".amazonaws.com/endpoints/", self.endpoint.name, "/invocations"
        )
        # Where Data Capture writes this endpoint's records (<capture_uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/):
        # the drift report's --source (model-drift.yml reads it from the stack's outputs).
        self.records_uri: pulumi.Output[str] | None = None
        if self.capture_uri is not None:
            self.records_uri = pulumi.Output.concat(self.capture_uri, "/", self.endpoint.name)
        self.register_outputs({"endpoint_name": self.endpoint.name, "invoke_url": self.invoke_url})

    def _capture_bucket(self, name: str, args: SageMakerEndpointArgs) -> aws.s3.Bucket:
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(
            f"{name}-capture",
            force_destroy=not args.protect,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        kms = args.kms_key_arn
        encryption: dict[str, Any] = {"sse_algorithm": "AES256"}
        if kms is not None:
            encryption = {"sse_algorithm": "aws:kms", "kms_master_key_id": kms}
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-capture",
            bucket=bucket.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": encryption,
                    "bucket_key_enabled": kms is not None,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-capture",
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-capture", bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=child
        )
        aws.s3.BucketPolicy(
            f"{name}-capture-tls-only",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: pulumi.Output.json_dumps(tls_only_policy(arn))),
            opts=child,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-capture-expiry",
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-captured-data",
                    "status": "Enabled",
                    "filter": {"prefix": "capture/"},
                    "expiration": {"days": args.data_capture_retention_days},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=child,
        )
        return bucket
