"""Azure Container Instances: the dev endpoint, one container group running the serving image."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import containerinstance, managedidentity

from stacks.azure_roles import ACR_PULL, grant, propagated

PORT = 8080


@dataclass
class AciServiceArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    image_ref: pulumi.Input[str]  # by digest
    registry_server: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    cpu: float
    memory_gb: float
    dns_label: pulumi.Input[str]
    environment: dict[str, str]  # plain SERVING_* settings
    api_keys: pulumi.Input[str] | None  # secret, "primary,secondary"; None: auth off
    monitoring_connection_string: pulumi.Input[str]  # secret
    workspace_customer_id: pulumi.Input[str]
    workspace_key: pulumi.Input[str]  # secret
    rbac_wait_seconds: int  # the group pulls its image with the new identity's AcrPull as soon as it exists
    tags: dict[str, str]


class AciService(pulumi.ComponentResource):
    def __init__(self, name: str, args: AciServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:AciService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=args.tags,
            opts=child,
        )
        pull = grant(f"{name}-acr-pull", ACR_PULL, identity.principal_id, args.registry_id, args.subscription_id, self)
        pull_ready = propagated(f"{name}-acr-pull-propagation", [pull], args.rbac_wait_seconds, self)
        secure = [{"name": "APPLICATIONINSIGHTS_CONNECTION_STRING", "secure_value": args.monitoring_connection_string}]
        if args.api_keys is not None:
            secure.append({"name": "SERVING_API_KEYS", "secure_value": args.api_keys})
        probe_timing = {"period_seconds": 10, "timeout_seconds": 3, "failure_threshold": 3}
        self.group = containerinstance.ContainerGroup(
            f"{name}-group",
            resource_group_name=args.resource_group_name,
            location=args.location,
            os_type="Linux",
            sku="Standard",
            restart_policy="Always",
            identity={"type": "UserAssigned", "user_assigned_identities": [identity.id]},
            image_registry_credentials=[{"server": args.registry_server, "identity": identity.id}],
            containers=[
                {
                    "name": "serving",
                    "image": args.image_ref,
                    "command": ["python", "-m", "serving", "serve"],
                    "resources": {"requests": {"cpu": args.cpu, "memory_in_gb": args.memory_gb}},
                    "ports": [{"port": PORT, "protocol": "TCP"}],
                    "environment_variables": [
                        {"name": key, "value": value} for key, value in sorted(args.environment.items())
                    ]
                    + secure,
                    "liveness_probe": {
                        "http_get": {"path": "/v2/health/live", "port": PORT, "scheme": "http"},
                        "initial_delay_seconds": 10,
                        **probe_timing,
                    },
                    "readiness_probe": {
                        "http_get": {"path": "/v2/health/ready", "port": PORT, "scheme": "http"},
                        "initial_delay_seconds": 5,
                        **probe_timing,
                    },
                }
            ],
            ip_address={
                "type": "Public",
                "ports": [{"port": PORT, "protocol": "TCP"}],
                "dns_name_label": args.dns_label,
                # Labels are unique per region across all of Azure: every user of this project would
                # claim `mlserve-dev-weather-rain`. A tenant-scoped hash in the FQDN keeps it unique
                # and guards the name against subdomain takeover once the group is deleted.
                "auto_generated_domain_name_label_scope": "TenantReuse",
            },
            diagnostics={
                "log_analytics": {
                    "workspace_id": args.workspace_customer_id,
                    "workspace_key": args.workspace_key,
                    "log_type": "ContainerInsights",
                }
            },
            tags=args.tags,
            # The identity must be allowed to pull before the group starts (ACI fails on a refused pull).
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pull_ready]),
        )
        self.endpoint = pulumi.Output.concat("http://", self.group.ip_address.apply(lambda ip: ip.fqdn), f":{PORT}")
        self.register_outputs({"endpoint": self.endpoint})
