"""The serving workload on Kubernetes: namespace, key Secret, Deployment, Service, HPA, PDB, NetworkPolicy.

The Service is internal; clients come in over HTTPS through the TLS gateway (stacks/aks_ingress.py),
and the NetworkPolicy admits only the gateway's namespace (and kube-system, for metrics scraping).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

PORT = 8080
COMPONENT = "serving"
RUN_AS = 10001  # the image's numeric user
SECRETS_DIR = "/run/secrets/mlserve"
SERVICE_ACCOUNT = "mlserve-serving"  # with an Azure identity only (workload identity)


@dataclass
class ServingWorkloadArgs:
    provider: k8s.Provider
    image_ref: pulumi.Input[str]  # by digest
    namespace: str
    min_replicas: int  # the HorizontalPodAutoscaler's bounds
    max_replicas: int
    target_cpu_utilization: int  # percent of the CPU request
    cpu: str  # Kubernetes quantities: requests equal limits
    memory: str
    environment: dict[str, str]  # plain SERVING_* settings
    api_keys: pulumi.Input[str] | None  # secret "primary,secondary"; None: auth off
    monitoring_connection_string: pulumi.Input[str] | None  # secret; the server sends telemetry when set
    drain_seconds: int  # how long the server may take after SIGTERM
    ingress_namespaces: list[str]  # where traffic to the pods may come from: the TLS gateway's namespace
    labels: dict[str, str]
    # Payload capture: its SERVING_CAPTURE_* settings, and the Azure identity (workload identity's client id)
    # the pods sign in as to write (stacks/serving_identity.py); None: capture off.
    capture_environment: dict[str, pulumi.Input[str]] | None = None
    azure_client_id: pulumi.Input[str] | None = None


def restricted_container_security() -> dict[str, Any]:
    """Least privilege for a container (checkov CKV_K8S_20/22/23/28/37/40)."""
    return {
        "allow_privilege_escalation": False,
        "read_only_root_filesystem": True,
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security() -> dict[str, Any]:
    return {
        "run_as_non_root": True,
        "run_as_user": RUN_AS,
        "run_as_group": RUN_AS,
        "fs_group": RUN_AS,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }


class ServingWorkload(pulumi.ComponentResource):
    def __init__(self, name: str, args: ServingWorkloadArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:kubernetes:ServingWorkload", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=args.provider)
        # The component keeps the batch CronJob's pods (same name and instance) out of the
        # serving selector: a PodDisruptionBudget that also matched Jobs would refuse every eviction.
        labels = {**args.labels, "app.kubernetes.io/component": COMPONENT}
        selector = {
            "app.kubernetes.io/name": args.labels["app.kubernetes.io/name"],
            "app.kubernetes.io/instance": args.labels["app.kubernetes.io/instance"],
            "app.kubernetes.io/component": COMPONENT,
        }
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": args.namespace,
                "labels": {**args.labels, "pod-security.kubernetes.io/enforce": "restricted"},
            },
            opts=child,
        )
        ns = self.namespace.metadata.name
        meta = {"namespace": ns, "labels": labels}
        env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(args.environment.items())]
        env += [{"name": k, "value": v} for k, v in sorted((args.capture_environment or {}).items())]
        pod_labels, identity = labels, dict[str, Any]()
        if args.azure_client_id is not None:
            account = k8s.core.v1.ServiceAccount(
                f"{name}-sa",
                metadata={
                    **meta,
                    "name": SERVICE_ACCOUNT,
                    "annotations": {"azure.workload.identity/client-id": args.azure_client_id},
                },
                automount_service_account_token=False,
                opts=child,
            )
            # The webhook injects the identity's token file and AZURE_* variables into pods so labelled.
            pod_labels = {**labels, "azure.workload.identity/use": "true"}
            identity = {"service_account_name": account.metadata.name}
        mounts: list[dict[str, Any]] = [{"name": "tmp", "mount_path": "/tmp"}]
        volumes: list[dict[str, Any]] = [{"name": "tmp", "empty_dir": {"size_limit": "256Mi"}}]
        secrets: dict[str, pulumi.Input[str]] = {}
        if args.api_keys is not None:
            secrets["SERVING_API_KEYS"] = args.api_keys
        if args.monitoring_connection_string is not None:
            secrets["APPLICATIONINSIGHTS_CONNECTION_STRING"] = args.monitoring_connection_string
        if secrets:
            secret = k8s.core.v1.Secret(
                f"{name}-keys",
                metadata={**meta, "name": "mlserve-api-keys"},
                type="Opaque",
                string_data=secrets,
                opts=child,
            )
            # Secrets as files rather than environment variables (CKV_K8S_35): the server reads
            # them, named like the variables, from SERVING_SECRETS_DIR.
            env.append({"name": "SERVING_SECRETS_DIR", "value": SECRETS_DIR})
            mounts.append({"name": "api-keys", "mount_path": SECRETS_DIR, "read_only": True})
            volumes.append({"name": "api-keys", "secret": {"secret_name": secret.metadata.name, "default_mode": 0o440}})
        probe = {"port": "http"}
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata={**meta, "name": "mlserve"},
            spec={
                # No replica count: the HorizontalPodAutoscaler owns it.
                "selector": {"match_labels": selector},
                "strategy": {"type": "RollingUpdate", "rolling_update": {"max_surge": 1, "max_unavailable": 0}},
                "template": {
                    "metadata": {
                        "labels": pod_labels,
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(PORT),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": {
                        **identity,
                        # The workload identity webhook mounts the one token it needs itself.
                        "automount_service_account_token": False,
                        "security_context": restricted_pod_security(),
                        # Longer than the server's own drain, so Kubernetes never kills a draining pod.
                        "termination_grace_period_seconds": args.drain_seconds + 10,
                        # Replicas spread over zones, then nodes, so one zone or node going down
                        # (or draining for an upgrade) leaves the others serving.
                        "topology_spread_constraints": [
                            {
                                "max_skew": 1,
                                "topology_key": key,
                                "when_unsatisfiable": "ScheduleAnyway",
                                "label_selector": {"match_labels": selector},
                            }
                            for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname")
                        ],
                        "containers": [
                            {
                                "name": "serving",
                                "image": args.image_ref,
                                "image_pull_policy": "IfNotPresent",
                                "args": ["serve"],
                                "ports": [{"name": "http", "container_port": PORT, "protocol": "TCP"}],
                                "env": env,
                                "resources": {
                                    "requests": {"cpu": args.cpu, "memory": args.memory},
                                    "limits": {"cpu": args.cpu, "memory": args.memory},
                                },
                                "startup_probe": {
                                    "http_get": {"path": "/v2/health/ready", **probe},
                                    "period_seconds": 2,
                                    "failure_threshold": 60,
                                },
                                "readiness_probe": {
                                    "http_get": {"path": "/v2/health/ready", **probe},
                                    "period_seconds": 5,
                                    "failure_threshold": 2,
                                },
                                "liveness_probe": {
                                    "http_get": {"path": "/v2/health/live", **probe},
                                    "period_seconds": 10,
                                    "failure_threshold": 3,
                                },
                                "security_context": restricted_container_security(),
                                "volume_mounts": mounts,
                            }
                        ],
                        "volumes": volumes,
                    },
                },
            },
            opts=child,
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata={**meta, "name": "mlserve"},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "target_port": "http", "protocol": "TCP"}],
            },
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={**meta, "name": "mlserve"},
            spec={
                "scale_target_ref": {
                    "api_version": "apps/v1",
                    "kind": "Deployment",
                    "name": self.deployment.metadata.name,
                },
                "min_replicas": args.min_replicas,
                "max_replicas": args.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "average_utilization": args.target_cpu_utilization},
                        },
                    }
                ],
            },
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata={**meta, "name": "mlserve"},
            spec={"max_unavailable": 1, "selector": {"match_labels": selector}},
            opts=child,
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-ingress-only-http",
            metadata={**meta, "name": "mlserve-ingress"},
            spec={
                "pod_selector": {"match_labels": selector},
                "policy_types": ["Ingress"],
                "ingress": [
                    {
                        "from": [
                            {"namespace_selector": {"match_labels": {"kubernetes.io/metadata.name": namespace}}}
                            for namespace in [*args.ingress_namespaces, "kube-system"]
                        ],
                        "ports": [{"port": PORT, "protocol": "TCP"}],
                    }
                ],
            },
            opts=child,
        )
        self.register_outputs({"service": self.service.metadata.name})
