"""Azure Container Instances: the dev endpoint, one container group: the TLS proxy in front of the server.

Only the proxy's ports (443, and 80 for redirects and ACME) are public; the server listens inside the
group. The proxy keeps its certificates and ACME account on an Azure Files share, so a restarted
group reuses them instead of asking the CA again (Let's Encrypt limits issuance per name and week).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import containerinstance, managedidentity, storage

from stacks.azure_roles import ACR_PULL, grant, propagated
from stacks.azure_storage import secure_account
from stacks.capture_store import CaptureTarget
from stacks.proxy import DATA_DIR, HTTP_PORT, HTTPS_PORT, aci_hosts_pattern, proxy_environment

PORT = 8080
PROXY_CPU = 0.5
PROXY_MEMORY_GB = 0.5
CERTIFICATE_SHARE = "proxy-data"


@dataclass
class AciServiceArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    location_name: str  # the region as configured, for the proxy's host-name rule
    subscription_id: pulumi.Input[str]
    image_ref: pulumi.Input[str]  # by digest
    proxy_image_ref: pulumi.Input[str]  # the TLS proxy, by digest, from the same registry
    registry_server: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    cpu: float
    memory_gb: float
    dns_label: str
    custom_domain: str | None  # served instead of the group's FQDN; its DNS points at the FQDN (CNAME)
    environment: dict[str, str]  # plain SERVING_* settings
    api_keys: pulumi.Input[str] | None  # secret, "primary,secondary"; None: auth off
    monitoring_connection_string: pulumi.Input[str]  # secret
    workspace_customer_id: pulumi.Input[str]
    workspace_key: pulumi.Input[str]  # secret
    rbac_wait_seconds: int  # the group pulls its image with the new identity's AcrPull as soon as it exists
    tags: dict[str, str]
    capture: CaptureTarget | None = None  # payload capture on: where, and the settings


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
        capture: list[dict[str, Any]] = []
        if args.capture is not None:
            args.capture.grant_writer(f"{name}-capture-writer", identity.principal_id, self)
            capture = [{"name": k, "value": v} for k, v in sorted(args.capture.environment.items())]
            # The group's identity is user-assigned: the credential is told which one to sign in as.
            capture.append({"name": "AZURE_CLIENT_ID", "value": identity.client_id})
        certificates = CertificateShare(f"{name}-certs", args, self)
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
                    # Loopback only: the group's containers share it, nothing outside the group reaches it.
                    "command": ["python", "-m", "serving", "serve", "--host", "127.0.0.1", "--port", str(PORT)],
                    "resources": {"requests": {"cpu": args.cpu, "memory_in_gb": args.memory_gb}},
                    "environment_variables": [
                        {"name": key, "value": value} for key, value in sorted(args.environment.items())
                    ]
                    + capture
                    + secure,
                    # Probes run inside the container (an HTTP probe would come from outside the group).
                    "liveness_probe": {
                        "exec": loopback_probe("/v2/health/live"),
                        "initial_delay_seconds": 10,
                        **probe_timing,
                    },
                    "readiness_probe": {
                        "exec": loopback_probe("/v2/health/ready"),
                        "initial_delay_seconds": 5,
                        **probe_timing,
                    },
                },
                {
                    "name": "tls-proxy",
                    "image": args.proxy_image_ref,
                    "resources": {"requests": {"cpu": PROXY_CPU, "memory_in_gb": PROXY_MEMORY_GB}},
                    "ports": [{"port": HTTPS_PORT, "protocol": "TCP"}, {"port": HTTP_PORT, "protocol": "TCP"}],
                    "environment_variables": [
                        {"name": key, "value": value}
                        for key, value in sorted(
                            proxy_environment(
                                aci_hosts_pattern(args.dns_label, args.location_name, args.custom_domain), PORT
                            ).items()
                        )
                    ],
                    "volume_mounts": [{"name": "proxy-data", "mount_path": DATA_DIR}],
                },
            ],
            volumes=[
                {
                    "name": "proxy-data",
                    "azure_file": {
                        "share_name": certificates.share.name,
                        "storage_account_name": certificates.account.name,
                        "storage_account_key": certificates.key,
                    },
                }
            ],
            ip_address={
                "type": "Public",
                # The server's port is not here: it is reachable only from inside the group.
                "ports": [{"port": HTTPS_PORT, "protocol": "TCP"}, {"port": HTTP_PORT, "protocol": "TCP"}],
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
            opts=group_options(self, [pull_ready]),
        )
        self.fqdn = self.group.ip_address.apply(lambda ip: ip.fqdn if ip else "")
        host = args.custom_domain or self.fqdn
        self.endpoint = pulumi.Output.concat("https://", host)
        self.register_outputs({"endpoint": self.endpoint, "fqdn": self.fqdn})


def loopback_probe(path: str) -> dict[str, Any]:
    """A probe command: GET the server's health route on loopback; non-2xx or no answer fails it."""
    check = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{PORT}{path}', timeout=2)"
    return {"command": ["python", "-c", check]}


# What Azure cannot change on an existing container group (ACI, "Update containers in Azure Container
# Instances": properties that require deleting the group first): a change of these replaces it.
REPLACED_ON_CHANGE = ["containers[*].resources", "restartPolicy", "diagnostics", "osType", "sku", "volumes"]


def group_options(parent: pulumi.Resource, ready: list[pulumi.Resource]) -> pulumi.ResourceOptions:
    """The container group's options (mocks never see options: tested directly).

    Replaced, deleting first, when what ACI cannot update changes: the new group keeps the DNS label,
    which two groups cannot hold at once. The identity must be allowed to pull before the group
    starts (ACI fails on a refused pull)."""
    return pulumi.ResourceOptions(
        parent=parent, depends_on=ready, replace_on_changes=REPLACED_ON_CHANGE, delete_before_replace=True
    )


class CertificateShare(pulumi.ComponentResource):
    """An Azure Files share for the proxy's certificates and ACME account.

    ACI mounts Azure Files with the account key only (no managed identity), so this account, unlike
    the batch one, allows shared keys; it holds nothing but this share.
    """

    def __init__(self, name: str, args: AciServiceArgs, parent: pulumi.Resource) -> None:
        super().__init__("mlserve:azure:CertificateShare", name, None, pulumi.ResourceOptions(parent=parent))
        child = pulumi.ResourceOptions(parent=self)
        self.account = secure_account(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku="Standard_LRS",
            shared_keys=True,
            tags=args.tags,
            opts=child,
        )
        self.share = storage.FileShare(
            f"{name}-share",
            resource_group_name=args.resource_group_name,
            account_name=self.account.name,
            share_name=CERTIFICATE_SHARE,
            share_quota=1,  # GiB; certificates are a few KB
            opts=child,
        )
        keys = storage.list_storage_account_keys_output(
            resource_group_name=args.resource_group_name, account_name=self.account.name
        )
        self.key = pulumi.Output.secret(keys.keys[0].value)
        self.register_outputs({"account": self.account.name})
