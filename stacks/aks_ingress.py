"""HTTPS into the AKS workload through the cluster's managed Istio ingress gateway.

AKS runs and patches the gateway (the Istio service mesh add-on, external gateway). The certificate
is a Key Vault certificate the user owns: Key Vault renews it (with an integrated CA), the Key Vault
CSI add-on syncs it into a Kubernetes TLS Secret (polling every 2 minutes) and the gateway serves it.
The CSI driver creates that Secret only while a pod mounts it, hence the small sync Deployment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_azure_native as azure_native
import pulumi_command as command
import pulumi_kubernetes as k8s
from pulumi_azure_native import dns

from stacks.azure_roles import KEY_VAULT_SECRETS_USER, grant, propagated
from stacks.k8s_workload import restricted_container_security, restricted_pod_security

GATEWAY_NAMESPACE = "aks-istio-ingress"  # the add-on's; its external gateway's pods carry GATEWAY_SELECTOR
GATEWAY_SELECTOR = {"istio": "aks-istio-ingressgateway-external"}
TLS_SECRET = "mlserve-tls"  # noqa: S105 - the name of the Kubernetes TLS Secret
SYNC_MOUNT = "/mnt/tls"
HSTS = "max-age=31536000"


@dataclass
class TlsIngressArgs:
    provider: k8s.Provider
    namespace: pulumi.Input[str]  # the workload's
    service_name: pulumi.Input[str]
    service_port: int
    domain: str
    key_vault_id: str  # /subscriptions/.../providers/Microsoft.KeyVault/vaults/<name>
    certificate_name: str
    tenant_id: pulumi.Input[str]
    csi_identity_client_id: pulumi.Input[str]  # the Key Vault CSI add-on's identity
    csi_identity_object_id: pulumi.Input[str]
    rbac_wait_seconds: int
    sync_image_ref: pulumi.Input[str]  # any image with Python; the serving image, already pulled
    labels: dict[str, str]
    kubeconfig: pulumi.Input[str] | None = None  # secret; with dns_zone_id, to read the gateway's address
    dns_zone_id: str | None = None  # an Azure DNS zone holding `domain`: the A record is made here


GATEWAY_SERVICE = "aks-istio-ingressgateway-external"


def gateway_address_script() -> str:
    """Print the managed gateway's public IP, waiting for it (the add-on creates its Service
    asynchronously, then Azure assigns the address); fail after about 15 minutes."""
    lookup = (
        f'kubectl --kubeconfig "$config" get service {GATEWAY_SERVICE} -n {GATEWAY_NAMESPACE} '
        "-o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true"
    )
    lines = [
        "set -eu",
        "config=$(mktemp); trap 'rm -f \"$config\"' EXIT",
        'printf \'%s\' "$KUBECONFIG_CONTENT" > "$config"',
        "for attempt in $(seq 1 90); do",
        f"  ip=$({lookup})",
        '  if [ -n "$ip" ]; then printf \'%s\' "$ip"; exit 0; fi',
        '  sleep "${POLL_SECONDS:-10}"',
        "done",
        f'echo "the Istio gateway ({GATEWAY_SERVICE}) got no public address within 15 minutes" >&2; exit 1',
    ]
    return "\n".join(lines) + "\n"


def zone_parts(zone_id: str, domain: str) -> tuple[str, str, str]:
    """(resource group, zone name, record name) of `domain` in the zone `zone_id`."""
    parts = zone_id.strip("/").split("/")
    group, zone = parts[3], parts[-1].lower()
    record = "@" if domain == zone else domain.removesuffix("." + zone)
    return group, zone, record


def subscription_of(resource_id: str) -> str:
    """The subscription an Azure resource id names: a vault or zone may live outside the stack's."""
    return resource_id.strip("/").split("/")[1]


def vault_name(key_vault_id: str) -> str:
    return key_vault_id.rstrip("/").rsplit("/", 1)[-1]


class TlsIngress(pulumi.ComponentResource):
    def __init__(self, name: str, args: TlsIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:kubernetes:TlsIngress", name, None, opts)
        labels = {**args.labels, "app.kubernetes.io/component": "tls-sync"}
        # Least privilege: the add-on's identity may read this one certificate's secret, nothing else.
        read = grant(
            f"{name}-certificate-reader",
            KEY_VAULT_SECRETS_USER,
            args.csi_identity_object_id,
            f"{args.key_vault_id.rstrip('/')}/secrets/{args.certificate_name}",
            # A role definition id is valid for scopes in its own subscription: the vault's.
            subscription_of(args.key_vault_id),
            self,
        )
        readable = propagated(f"{name}-certificate-propagation", [read], args.rbac_wait_seconds, self)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        gateway_meta = {"namespace": GATEWAY_NAMESPACE, "labels": args.labels}
        secret_class = k8s.apiextensions.CustomResource(
            f"{name}-secret-class",
            api_version="secrets-store.csi.x-k8s.io/v1",
            kind="SecretProviderClass",
            metadata={**gateway_meta, "name": TLS_SECRET},
            spec={
                "provider": "azure",
                "secretObjects": [
                    {
                        "secretName": TLS_SECRET,
                        "type": "kubernetes.io/tls",
                        "data": [
                            {"objectName": args.certificate_name, "key": "tls.key"},
                            {"objectName": args.certificate_name, "key": "tls.crt"},
                        ],
                    }
                ],
                "parameters": {
                    "usePodIdentity": "false",
                    "useVMManagedIdentity": "true",
                    "userAssignedIdentityID": args.csi_identity_client_id,
                    "keyvaultName": vault_name(args.key_vault_id),
                    "tenantId": args.tenant_id,
                    # A certificate read as a secret gives its key and chain (PEM), what a TLS Secret needs.
                    "objects": f"array:\n  - |\n    objectName: {args.certificate_name}\n    objectType: secret\n",
                },
            },
            opts=child,
        )
        selector = {
            "app.kubernetes.io/name": labels["app.kubernetes.io/name"],
            "app.kubernetes.io/component": "tls-sync",
        }
        k8s.apps.v1.Deployment(
            f"{name}-tls-sync",
            metadata={**gateway_meta, "name": "mlserve-tls-sync", "labels": labels},
            spec={
                "replicas": 1,
                "selector": {"match_labels": selector},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "automount_service_account_token": False,
                        "security_context": restricted_pod_security(),
                        "containers": [
                            {
                                "name": "sync",
                                "image": args.sync_image_ref,
                                "image_pull_policy": "IfNotPresent",
                                "command": ["python", "-c", "import signal; signal.pause()"],
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"cpu": "100m", "memory": "64Mi"},
                                },
                                "liveness_probe": mounted_probe(),
                                "readiness_probe": mounted_probe(),
                                "security_context": restricted_container_security(),
                                "volume_mounts": [{"name": "tls", "mount_path": SYNC_MOUNT, "read_only": True}],
                            }
                        ],
                        "volumes": [
                            {
                                "name": "tls",
                                "csi": {
                                    "driver": "secrets-store.csi.k8s.io",
                                    "read_only": True,
                                    "volume_attributes": {"secretProviderClass": TLS_SECRET},
                                },
                            }
                        ],
                    },
                },
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[secret_class, readable]),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-tls-sync-isolated",
            metadata={**gateway_meta, "name": "mlserve-tls-sync"},
            # It serves nothing: no traffic in.
            spec={"pod_selector": {"match_labels": selector}, "policy_types": ["Ingress"]},
            opts=child,
        )
        gateway = k8s.apiextensions.CustomResource(
            f"{name}-gateway",
            api_version="networking.istio.io/v1",
            kind="Gateway",
            metadata={**gateway_meta, "name": "mlserve"},
            spec={
                "selector": GATEWAY_SELECTOR,
                "servers": [
                    {
                        "port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                        "hosts": [args.domain],
                        "tls": {"mode": "SIMPLE", "credentialName": TLS_SECRET, "minProtocolVersion": "TLSV1_2"},
                    },
                    {
                        "port": {"number": 80, "name": "http", "protocol": "HTTP"},
                        "hosts": [args.domain],
                        "tls": {"httpsRedirect": True},
                    },
                ],
            },
            opts=child,
        )
        k8s.apiextensions.CustomResource(
            f"{name}-route",
            api_version="networking.istio.io/v1",
            kind="VirtualService",
            metadata={"namespace": args.namespace, "name": "mlserve", "labels": args.labels},
            spec={
                "hosts": [args.domain],
                "gateways": [f"{GATEWAY_NAMESPACE}/mlserve"],
                "http": [
                    {
                        "route": [
                            {
                                "destination": {
                                    "host": pulumi.Output.concat(
                                        args.service_name, ".", args.namespace, ".svc.cluster.local"
                                    ),
                                    "port": {"number": args.service_port},
                                }
                            }
                        ],
                        "headers": {"response": {"set": {"Strict-Transport-Security": HSTS}}},
                    }
                ],
            },
            opts=pulumi.ResourceOptions(parent=self, provider=args.provider, depends_on=[gateway]),
        )
        if args.dns_zone_id is not None and args.kubeconfig is not None:
            # Read on every preview and up (an invoke, not a resource run once): a gateway whose public
            # address changed gets its A record moved, and the drift check sees the difference.
            address = command.local.run_output(
                command=gateway_address_script(),
                environment=pulumi.Output.from_input(args.kubeconfig).apply(lambda k: {"KUBECONFIG_CONTENT": k}),
                opts=pulumi.InvokeOutputOptions(depends_on=[gateway]),
            )
            group, zone, record = zone_parts(args.dns_zone_id, args.domain)
            # The record goes where the zone is, which may be another subscription than the stack's.
            zone_subscription = azure_native.Provider(
                f"{name}-dns-zone-subscription",
                subscription_id=subscription_of(args.dns_zone_id),
                opts=pulumi.ResourceOptions(parent=self),
            )
            dns.RecordSet(
                f"{name}-a-record",
                resource_group_name=group,
                zone_name=zone,
                relative_record_set_name=record,
                record_type="A",
                ttl=300,
                a_records=[{"ipv4_address": address.stdout.apply(str.strip)}],
                opts=pulumi.ResourceOptions(parent=self, provider=zone_subscription),
            )
        self.endpoint = pulumi.Output.from_input(f"https://{args.domain}")
        self.register_outputs({"endpoint": self.endpoint})


def mounted_probe() -> dict[str, Any]:
    """Healthy once the certificate is mounted (and so synced into the TLS Secret)."""
    check = f"import os, sys; sys.exit(not os.listdir({SYNC_MOUNT!r}))"
    return {"exec": {"command": ["python", "-c", check]}, "period_seconds": 60, "timeout_seconds": 10}
