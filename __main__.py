"""The Pulumi program: read the stack's config, compose the components of its targets, export endpoints."""

from __future__ import annotations

import csv
import io
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi_azure_native import authorization, resources

from stacks.aci import AciService, AciServiceArgs
from stacks.aks import AksCluster, AksClusterArgs
from stacks.aks_ingress import GATEWAY_NAMESPACE, TlsIngress, TlsIngressArgs
from stacks.aks_network import ClusterNetwork, ClusterNetworkArgs
from stacks.azure_batch import AzureBatchJob, AzureBatchJobArgs
from stacks.capture_store import CaptureStore, CaptureStoreArgs
from stacks.config import StackConfig, load_config
from stacks.dashboards import (
    AzureDashboard,
    AzureDashboardArgs,
    SageMakerDashboard,
    SageMakerDashboardArgs,
    workbook_id,
)
from stacks.image import ServingImage, ServingImageArgs
from stacks.k8s_workload import ServingWorkload, ServingWorkloadArgs
from stacks.keys import ApiKeys, ApiKeysArgs
from stacks.kms import StackKey, StackKeyArgs
from stacks.model_source import BUNDLED_MODEL, resolve, sample_row
from stacks.observability import AzureMonitoring, AzureMonitoringArgs
from stacks.proxy import ProxyImage, ProxyImageArgs
from stacks.registry import AcrRegistry, AcrRegistryArgs, EcrRegistry, EcrRegistryArgs, PushTarget
from stacks.sagemaker import VARIANT, RolloutArgs, SageMakerEndpoint, SageMakerEndpointArgs
from stacks.serving_identity import ServingIdentity, ServingIdentityArgs
from stacks.tags import cloud_tags, kubernetes_labels


@dataclass
class AzureBase:
    """What every Azure target shares: resource group, monitoring, registry."""

    group: resources.ResourceGroup
    client: pulumi.Output[authorization.GetClientConfigResult]
    monitoring: AzureMonitoring
    registry: AcrRegistry


def azure_base(config: StackConfig, name: str) -> AzureBase:
    if config.azure is None:
        raise ValueError("Azure targets need the azure settings")
    tags = cloud_tags(config)
    # Protected like the registry and cluster: deleting the group deletes everything in it.
    group = resources.ResourceGroup(
        f"{name}-rg",
        location=config.azure.location,
        tags=tags,
        opts=pulumi.ResourceOptions(protect=config.protect),
    )
    client = authorization.get_client_config_output()
    monitoring = AzureMonitoring(
        f"{name}-monitoring",
        AzureMonitoringArgs(
            group.name,
            group.location,
            config.observability.retention_days,
            config.observability.alert_email,
            config.observability.failure_alert_percent,
            config.observability.latency_alert_ms,
            tags,
        ),
    )
    registry = AcrRegistry(
        f"{name}-acr",
        AcrRegistryArgs(
            group.name, group.location, client.subscription_id, config.azure.registry_sku, config.protect, tags
        ),
    )
    dashboard = AzureDashboard(
        f"{name}-dashboard",
        AzureDashboardArgs(
            group.name,
            group.location,
            monitoring.insights.id,
            workbook_id(config.project, config.stack),
            f"{config.model.name} ({config.stack})",
            tags,
        ),
    )
    pulumi.export("dashboard_url", dashboard.url)
    return AzureBase(group, client, monitoring, registry)


def deploy_azure(
    config: StackConfig, name: str, base: AzureBase, image_ref: pulumi.Output[str], api_keys: pulumi.Output[str] | None
) -> dict[str, pulumi.Output[str]]:
    tags = cloud_tags(config)
    if config.azure is None:
        raise ValueError("Azure targets need the azure settings")
    azure = config.azure
    group, client, monitoring, registry = base.group, base.client, base.monitoring, base.registry
    environment = config.server_environment(azure=True)
    endpoints: dict[str, pulumi.Output[str]] = {}
    capture = None
    if config.capture.enabled:
        capture = CaptureStore(
            f"{name}-capture",
            CaptureStoreArgs(group.name, group.location, config.capture.retention_days, config.protect, tags),
        )
        pulumi.export("capture_location", capture.location)
    if config.aci is not None:
        proxy = ProxyImage(f"{name}-proxy", ProxyImageArgs(registry.push_target, tag_prefix="caddy"))
        aci = AciService(
            f"{name}-aci",
            AciServiceArgs(
                resource_group_name=group.name,
                location=group.location,
                subscription_id=client.subscription_id,
                location_name=azure.location,
                image_ref=image_ref,
                proxy_image_ref=proxy.ref,
                registry_server=registry.registry.login_server,
                registry_id=registry.registry.id,
                cpu=config.aci.cpu,
                memory_gb=config.aci.memory_gb,
                dns_label=config.aci.dns_label or f"{name}-{config.model.name}",
                custom_domain=config.aci.domain,
                environment=environment,
                api_keys=api_keys,
                monitoring_connection_string=monitoring.connection_string,
                workspace_customer_id=monitoring.workspace_customer_id,
                workspace_key=monitoring.workspace_key,
                rbac_wait_seconds=azure.rbac_wait_seconds,
                tags=tags,
                capture=capture.target(config.capture.environment(f"{name}-aci"), client.subscription_id)
                if capture
                else None,
            ),
        )
        if capture is not None:
            pulumi.export("aci_capture_uri", capture.records_uri(f"{name}-aci"))
        endpoints["aci"] = aci.endpoint
        pulumi.export("aci_fqdn", aci.fqdn)  # a custom domain's CNAME target
    if config.aks is not None and config.kubernetes is not None:
        network = ClusterNetwork(
            f"{name}-network",
            ClusterNetworkArgs(group.name, group.location, config.aks.allowed_source_ranges, tags),
        )
        cluster = AksCluster(
            f"{name}-aks",
            AksClusterArgs(
                resource_group_name=group.name,
                location=group.location,
                subscription_id=client.subscription_id,
                registry_id=registry.registry.id,
                workspace_id=monitoring.workspace.id,
                node_subnet_id=network.subnet.id,
                kubernetes_version=config.aks.kubernetes_version,
                node_vm_size=config.aks.node_vm_size,
                system_node_vm_size=config.aks.system_node_vm_size,
                min_nodes=config.aks.min_nodes,
                max_nodes=config.aks.max_nodes,
                availability_zones=config.aks.availability_zones,
                private_cluster=config.aks.private_cluster,
                network_policy=config.aks.network_policy,
                authorized_ip_ranges=config.aks.authorized_ip_ranges,
                admins=[(admin.object_id, admin.type) for admin in config.aks.admins],
                istio_revisions=config.aks.istio_revisions,
                rbac_wait_seconds=azure.rbac_wait_seconds,
                protect=config.protect,
                tags=tags,
            ),
        )
        aks_capture = (
            capture.target(config.capture.environment(f"{name}-aks"), client.subscription_id) if capture else None
        )
        if capture is not None:
            pulumi.export("aks_capture_uri", capture.records_uri(f"{name}-aks"))
        serving_identity = None
        if aks_capture is not None:
            serving_identity = ServingIdentity(
                f"{name}-serving-identity",
                ServingIdentityArgs(
                    group.name, group.location, cluster.oidc_issuer_url, config.kubernetes.namespace, aks_capture, tags
                ),
            )
        workload = ServingWorkload(
            f"{name}-serving",
            ServingWorkloadArgs(
                provider=cluster.provider,
                image_ref=image_ref,
                namespace=config.kubernetes.namespace,
                min_replicas=config.kubernetes.min_replicas,
                max_replicas=config.kubernetes.max_replicas,
                target_cpu_utilization=config.kubernetes.target_cpu_utilization,
                cpu=config.kubernetes.cpu,
                memory=config.kubernetes.memory,
                environment=environment,
                api_keys=api_keys,
                monitoring_connection_string=monitoring.connection_string,
                drain_seconds=config.server.drain_seconds,
                ingress_namespaces=[GATEWAY_NAMESPACE],
                labels=kubernetes_labels(config),
                capture_environment=aks_capture.environment if aks_capture else None,
                azure_client_id=serving_identity.client_id if serving_identity else None,
            ),
        )
        certificate = config.aks.tls_certificate
        ingress = TlsIngress(
            f"{name}-tls",
            TlsIngressArgs(
                provider=cluster.provider,
                namespace=workload.namespace.metadata.name,
                service_name=workload.service.metadata.name,
                service_port=80,
                domain=config.aks.domain,
                key_vault_id=certificate.key_vault_id,
                certificate_name=certificate.name,
                tenant_id=client.tenant_id,
                csi_identity_client_id=cluster.csi_identity_client_id,
                csi_identity_object_id=cluster.csi_identity_object_id,
                rbac_wait_seconds=azure.rbac_wait_seconds,
                sync_image_ref=image_ref,
                labels=kubernetes_labels(config),
                kubeconfig=cluster.kubeconfig,
                dns_zone_id=config.aks.dns_zone_id,
            ),
        )
        endpoints["aks"] = ingress.endpoint
        # Without aks.dnsZoneId, point the domain's A record at the gateway's address:
        pulumi.export(
            "aks_gateway_address_command",
            f"kubectl get service aks-istio-ingressgateway-external -n {GATEWAY_NAMESPACE} "
            "-o jsonpath='{.status.loadBalancer.ingress[0].ip}'",
        )
        pulumi.export("kubeconfig", cluster.kubeconfig)
        if config.batch.enabled:
            batch = AzureBatchJob(
                f"{name}-batch",
                AzureBatchJobArgs(
                    resource_group_name=group.name,
                    location=group.location,
                    subscription_id=client.subscription_id,
                    oidc_issuer_url=cluster.oidc_issuer_url,
                    provider=cluster.provider,
                    namespace=workload.namespace.metadata.name,
                    image_ref=image_ref,
                    schedule=config.batch.schedule,
                    input_blob=config.batch.input_blob,
                    output_blob=config.batch.output_blob,
                    protect=config.protect,
                    tags=tags,
                    labels={**kubernetes_labels(config), "app.kubernetes.io/component": "batch"},
                ),
            )
            pulumi.export("batch_input", batch.input_url)
            pulumi.export("batch_output", batch.output_url)
    pulumi.export("resource_group", group.name)
    pulumi.export("registry", registry.registry.login_server)
    pulumi.export("application_insights_connection_string", monitoring.connection_string)
    return endpoints


def deploy_sagemaker(
    config: StackConfig,
    name: str,
    ecr: EcrRegistry,
    image_ref: pulumi.Output[str],
    kms_key_arn: pulumi.Input[str] | None,
    sample: list[Any],
) -> None:
    if config.sagemaker is None:
        raise ValueError("the sagemaker target needs its settings")
    region = aws.get_region_output()
    identity = aws.get_caller_identity_output()
    sm = config.sagemaker
    endpoint = SageMakerEndpoint(
        f"{name}-sagemaker",
        SageMakerEndpointArgs(
            image_ref=image_ref,
            repository_arn=ecr.repository.arn,
            # SageMaker authenticates callers with IAM (SigV4), so the container needs no API keys.
            environment=config.server_environment(),
            mode=sm.mode,
            endpoint_name=sm.endpoint_name,
            memory_size_mb=sm.memory_size_mb,
            max_concurrency=sm.max_concurrency,
            instance_type=sm.instance_type,
            instance_count=sm.instance_count,
            min_capacity=sm.min_capacity,
            max_capacity=sm.max_capacity,
            target_invocations_per_instance=sm.target_invocations_per_instance,
            scale_in_cooldown=sm.scale_in_cooldown,
            scale_out_cooldown=sm.scale_out_cooldown,
            rollout=RolloutArgs(
                kind=sm.rollout.kind,
                step_percent=sm.rollout.step_percent,
                wait_seconds=sm.rollout.wait_seconds,
                latency_alarm_ms=sm.rollout.latency_alarm_ms,
                error_alarm_count=sm.rollout.error_alarm_count,
            ),
            model_data_url=sm.model_data_url,
            data_capture_percent=sm.data_capture_percent,
            data_capture_retention_days=sm.data_capture_retention_days,
            kms_key_arn=kms_key_arn,
            region=region.region,
            account_id=identity.account_id,
            alert_email=config.observability.alert_email,
            protect=config.protect,
            tags=cloud_tags(config),
        ),
    )
    dashboard = SageMakerDashboard(
        f"{name}-sagemaker-dashboard",
        SageMakerDashboardArgs(
            dashboard_name=f"{name}-sagemaker",  # <project>-<stack>-…: the deploy role's scope
            endpoint_name=endpoint.endpoint.name,
            variant_name=VARIANT,
            region=region.region,
            realtime=sm.mode == "realtime",
            capture_uri=endpoint.records_uri,
        ),
    )
    pulumi.export("sagemaker_dashboard_url", dashboard.url)
    pulumi.export("sagemaker_endpoint_name", endpoint.endpoint.name)
    pulumi.export("sagemaker_endpoint_arn", endpoint.endpoint.arn)
    pulumi.export("sagemaker_invoke_url", endpoint.invoke_url)
    pulumi.export("sagemaker_region", region.region)
    pulumi.export("sagemaker_image", image_ref)
    if endpoint.records_uri is not None:
        pulumi.export("sagemaker_capture_uri", endpoint.records_uri)
    pulumi.export(
        "sagemaker_invoke_example",
        pulumi.Output.concat(
            "aws sagemaker-runtime invoke-endpoint --region ",
            region.region,
            " --endpoint-name ",
            endpoint.endpoint.name,
            " --content-type text/csv --accept text/csv --body ",
            shlex.quote(csv_line(sample)),
            " --cli-binary-format raw-in-base64-out /dev/stdout",
        ),
    )


def csv_line(row: list[Any]) -> str:
    """A sample row as one CSV line: numbers as `%g`, a text column's value quoted where CSV needs it."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow([v if isinstance(v, str) else f"{v:g}" for v in row])
    return buffer.getvalue()


def main() -> None:
    config = load_config()
    model = resolve(config.model, config.stack)  # fetched and checked before anything is declared
    sample = sample_row(Path(model.directory) / "model.onnx" if model else BUNDLED_MODEL)
    # One row the model takes, for the smoke test and examples (not the demo's weather row).
    pulumi.export("model_sample", sample)
    pulumi.export("model_name", config.model.name)
    name = f"{config.project}-{config.stack}"
    keys = ApiKeys(f"{name}-keys", ApiKeysArgs()) if config.server.auth_enabled and config.uses_azure else None
    if keys is not None:
        pulumi.export("primary_key", keys.primary)
        pulumi.export("secondary_key", keys.secondary)

    base = azure_base(config, name) if config.uses_azure else None
    ecr = None
    kms_key_arn: pulumi.Input[str] | None = None
    if config.sagemaker is not None:
        kms_key_arn = config.sagemaker.kms_key_arn
        if kms_key_arn is None and config.sagemaker.mode == "realtime":
            # Instance-based endpoints get their volumes encrypted with a key the stack owns (CKV_AWS_98).
            kms_key_arn = StackKey(f"{name}-kms", StackKeyArgs(config.protect, cloud_tags(config))).arn
        ecr = EcrRegistry(
            f"{name}-ecr",
            EcrRegistryArgs(
                keep_images=config.sagemaker.keep_images,
                kms_key_arn=kms_key_arn,
                force_delete=config.sagemaker.force_delete_repository,
                protect=config.protect,
                tags=cloud_tags(config),
            ),
        )
    # One build, pushed only to the registries of the enabled targets.
    registries: dict[str, PushTarget] = {}
    if base is not None:
        registries["azure"] = base.registry.push_target
    if ecr is not None:
        registries["aws"] = ecr.push_target
    image = ServingImage(
        f"{name}-image",
        ServingImageArgs(
            targets=list(registries.values()),
            # <model>-<version>[-<model sha256, 12>]; the build's fingerprint is appended.
            tag_prefix="-".join([config.model.name, config.model.version, *([model.sha256[:12]] if model else [])]),
            model_directory=model.directory if model else None,
            batch_extras=config.batch.enabled,
            labels={
                "mlserve.model": config.model.name,
                "mlserve.model-version": config.model.version,
                **({"mlserve.model-sha256": model.sha256} if model else {}),
            },
        ),
    )
    refs = dict(zip(registries, image.refs, strict=True))  # cloud -> <repository>@<digest>

    endpoints: dict[str, pulumi.Output[str]] = {}
    if base is not None:
        pulumi.export("image", refs["azure"])
        endpoints = deploy_azure(config, name, base, refs["azure"], keys.joined if keys else None)
    if ecr is not None:
        deploy_sagemaker(config, name, ecr, refs["aws"], kms_key_arn, sample)
    for target, endpoint in endpoints.items():
        pulumi.export(f"{target}_endpoint", endpoint)
    # What Azure ML SDK v1 `Model.deploy` scripts printed: where to score, where the API is described.
    primary = endpoints.get("aks", endpoints.get("aci"))
    if primary is not None:
        pulumi.export("scoring_uri", pulumi.Output.concat(primary, "/score"))
        pulumi.export("swagger_uri", pulumi.Output.concat(primary, "/swagger.json"))


main()
