"""The Pulumi program: read the stack's config, compose the components of its targets, export endpoints."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization, resources

from stacks.aci import AciService, AciServiceArgs
from stacks.aks import AksCluster, AksClusterArgs
from stacks.azure_batch import AzureBatchJob, AzureBatchJobArgs
from stacks.config import StackConfig, load_config
from stacks.image import ServingImage, ServingImageArgs
from stacks.k8s_workload import ServingWorkload, ServingWorkloadArgs
from stacks.keys import ApiKeys
from stacks.observability import AzureMonitoring, AzureMonitoringArgs
from stacks.registry import AcrRegistry, AcrRegistryArgs
from stacks.tags import cloud_tags, kubernetes_labels


def deploy_azure(config: StackConfig, keys: ApiKeys | None) -> None:
    if config.azure is None:
        raise ValueError("deploy_azure needs the azure settings")
    name = f"{config.project}-{config.stack}"
    tags = cloud_tags(config)
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(f"{name}-rg", location=config.azure.location, tags=tags)
    monitoring = AzureMonitoring(
        f"{name}-monitoring",
        AzureMonitoringArgs(group.name, group.location, config.observability.retention_days, tags),
    )
    registry = AcrRegistry(
        f"{name}-acr",
        AcrRegistryArgs(group.name, group.location, "Premium" if config.protect else "Basic", config.protect, tags),
    )
    image = ServingImage(
        f"{name}-azure",
        ServingImageArgs(
            targets=[registry.push_target],
            tag=f"{config.model.name}-{config.model.version}",
            model_directory=config.model.directory,
            batch_extras=config.batch.enabled,
            labels={"mlserve.model": config.model.name, "mlserve.model-version": config.model.version},
        ),
    )
    image_ref = image.refs[0]
    api_keys = keys.joined if keys is not None else None
    environment = config.server.environment()
    endpoints: dict[str, pulumi.Output[str]] = {}

    if config.aci is not None:
        aci = AciService(
            f"{name}-aci",
            AciServiceArgs(
                resource_group_name=group.name,
                location=group.location,
                subscription_id=client.subscription_id,
                image_ref=image_ref,
                registry_server=registry.registry.login_server,
                registry_id=registry.registry.id,
                cpu=config.aci.cpu,
                memory_gb=config.aci.memory_gb,
                dns_label=config.aci.dns_label or f"{name}-{config.model.name}",
                environment=environment,
                api_keys=api_keys,
                monitoring_connection_string=monitoring.connection_string,
                workspace_customer_id=monitoring.workspace_customer_id,
                workspace_key=monitoring.workspace_key,
                tags=tags,
            ),
        )
        endpoints["aci"] = aci.endpoint

    if config.aks is not None and config.kubernetes is not None:
        cluster = AksCluster(
            f"{name}-aks",
            AksClusterArgs(
                resource_group_name=group.name,
                location=group.location,
                subscription_id=client.subscription_id,
                deployer_object_id=client.object_id,
                registry_id=registry.registry.id,
                workspace_id=monitoring.workspace.id,
                settings=config.aks,
                protect=config.protect,
                tags=tags,
            ),
        )
        workload = ServingWorkload(
            f"{name}-serving",
            ServingWorkloadArgs(
                provider=cluster.provider,
                image_ref=image_ref,
                settings=config.kubernetes,
                environment=environment,
                api_keys=api_keys,
                drain_seconds=config.server.drain_seconds,
                labels=kubernetes_labels(config),
            ),
        )
        endpoints["aks"] = workload.endpoint
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
                    settings=config.batch,
                    protect=config.protect,
                    tags=tags,
                    labels={**kubernetes_labels(config), "app.kubernetes.io/component": "batch"},
                ),
            )
            pulumi.export("batch_input", batch.input_url)
            pulumi.export("batch_output", batch.output_url)

    pulumi.export("resource_group", group.name)
    pulumi.export("registry", registry.registry.login_server)
    pulumi.export("image", image_ref)
    pulumi.export("application_insights_connection_string", monitoring.connection_string)
    for target, endpoint in endpoints.items():
        pulumi.export(f"{target}_endpoint", endpoint)
    # What the seeds printed after Model.deploy: where to score, where the API is described.
    primary = endpoints.get("aks", endpoints.get("aci"))
    if primary is not None:
        pulumi.export("scoring_uri", pulumi.Output.concat(primary, "/score"))
        pulumi.export("swagger_uri", pulumi.Output.concat(primary, "/swagger.json"))


def main() -> None:
    config = load_config()
    keys = ApiKeys(f"{config.project}-{config.stack}-keys") if config.server.auth_enabled else None
    if keys is not None:
        pulumi.export("primary_key", keys.primary)
        pulumi.export("secondary_key", keys.secondary)
    if config.uses_azure:
        deploy_azure(config, keys)


main()
