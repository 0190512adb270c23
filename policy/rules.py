"""The mlserve guardrails as plain functions of resource inputs (camelCase, as the engine sees them).

The policy pack (pack.py) runs them during `pulumi preview`/`up`; the tests run them on the offline
plan's resources. No Pulumi import here, so both can use them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

REQUIRED_TAGS = ("project", "stack", "model", "model-version")
TAGGABLE = {
    "azure-native:resources:ResourceGroup",
    "azure-native:containerregistry:Registry",
    "azure-native:operationalinsights:Workspace",
    "azure-native:applicationinsights:Component",
    "azure-native:containerinstance:ContainerGroup",
    "azure-native:containerservice:ManagedCluster",
    "azure-native:managedidentity:UserAssignedIdentity",
    "azure-native:storage:StorageAccount",
    "aws:ecr/repository:Repository",
    "aws:iam/role:Role",
    "aws:kms/key:Key",
    "aws:s3/bucket:Bucket",
    "aws:sagemaker/model:Model",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
    "aws:sagemaker/endpoint:Endpoint",
    "aws:cloudwatch/metricAlarm:MetricAlarm",
    "aws:sns/topic:Topic",
    "azure-native:containerservice:AgentPool",
    "azure-native:monitor:ActionGroup",
    "azure-native:monitor:ScheduledQueryRule",
}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class ResourceRule:
    name: str
    description: str
    check: Callable[[str, Mapping[str, Any]], list[str]]  # (type, props) -> violations


@dataclass(frozen=True)
class StackRule:
    name: str
    description: str
    check: Callable[[list[Resource]], list[str]]


def _get(props: Mapping[str, Any], *path: str) -> Any:
    value: Any = props
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def acr_admin_disabled(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ == "azure-native:containerregistry:Registry" and props.get("adminUserEnabled") is not False:
        return ["Container registries must set adminUserEnabled: false (push with scoped tokens, pull with identities)"]
    return []


def ecr_scan_and_immutable(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ != "aws:ecr/repository:Repository":
        return []
    problems = []
    if _get(props, "imageScanningConfiguration", "scanOnPush") is not True:
        problems.append("ECR repositories must scan images on push")
    if props.get("imageTagMutability") not in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"):
        problems.append("ECR repositories must have immutable tags")
    return problems


def _instance_variants(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [v for v in props.get("productionVariants") or [] if "instanceType" in v]


# Instance types with local NVMe storage, which SageMaker encrypts in hardware and for which
# CreateEndpointConfig refuses a KmsKeyId (kept equal to stacks.config.has_instance_storage by a test).
_INSTANCE_STORAGE_FAMILIES = frozenset({"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"})


def has_instance_storage(instance_type: str) -> bool:
    family = instance_type.split(".")[1]
    return family in _INSTANCE_STORAGE_FAMILIES or bool(re.fullmatch(r"[a-z]+\d+[a-z]*d[a-z]*", family))


def sagemaker_encrypted(type_: str, props: Mapping[str, Any]) -> list[str]:
    instance_based = type_ == "aws:sagemaker/endpointConfiguration:EndpointConfiguration" and [
        v for v in _instance_variants(props) if not has_instance_storage(v["instanceType"])
    ]
    if instance_based and not props.get("kmsKeyArn"):
        return ["Instance-based SageMaker endpoint configurations must encrypt volumes with a KMS key (kmsKeyArn)"]
    return []


def sagemaker_two_instances(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ != "aws:sagemaker/endpointConfiguration:EndpointConfiguration":
        return []
    return [
        f"Variant {v.get('variantName')} runs {v.get('initialInstanceCount')} instance(s); run at least 2 so "
        "SageMaker can spread them across Availability Zones"
        for v in _instance_variants(props)
        if (v.get("initialInstanceCount") or 0) < 2
    ]


def aks_rbac_and_network_policy(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ != "azure-native:containerservice:ManagedCluster":
        return []
    problems = []
    if props.get("enableRBAC") is not True:
        problems.append("AKS clusters must enable Kubernetes RBAC")
    if not _get(props, "networkProfile", "networkPolicy"):
        problems.append("AKS clusters must enable a network policy engine")
    return problems


def deployment_hardened(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ != "kubernetes:apps/v1:Deployment":
        return []
    pod = _get(props, "spec", "template", "spec") or {}
    pod_non_root = _get(pod, "securityContext", "runAsNonRoot") is True
    problems = []
    for container in pod.get("containers") or []:
        name = container.get("name", "?")
        if not container.get("readinessProbe") or not container.get("livenessProbe"):
            problems.append(f"container {name}: needs readiness and liveness probes")
        limits = _get(container, "resources", "limits") or {}
        if not {"cpu", "memory"} <= set(limits):
            problems.append(f"container {name}: needs cpu and memory limits")
        security = container.get("securityContext") or {}
        if not (security.get("runAsNonRoot") is True or (pod_non_root and security.get("runAsNonRoot") is not False)):
            problems.append(f"container {name}: must run as non-root")
        if security.get("readOnlyRootFilesystem") is not True:
            problems.append(f"container {name}: needs a read-only root filesystem")
    return problems


def tagged(type_: str, props: Mapping[str, Any]) -> list[str]:
    if type_ not in TAGGABLE:
        return []
    missing = [key for key in REQUIRED_TAGS if key not in (props.get("tags") or {})]
    return [f"missing tags: {', '.join(missing)}"] if missing else []


def ecr_lifecycle(resources: list[Resource]) -> list[str]:
    repositories = [r for r in resources if r.type == "aws:ecr/repository:Repository"]
    policies = [r for r in resources if r.type == "aws:ecr/lifecyclePolicy:LifecyclePolicy"]
    covered = {p.props.get("repository") for p in policies}
    problems = []
    for repo in repositories:
        name = repo.props.get("name")
        # Names can still be unknown during a first preview; then count the policies instead.
        if (name and name not in covered) or (not name and len(policies) < len(repositories)):
            problems.append(f"ECR repository {repo.name} has no lifecycle policy")
    return problems


def _selects(selector: Mapping[str, Any], labels: Mapping[str, Any]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _mounts_key_file(deployment: Resource, resources: list[Resource]) -> bool:
    """The pod mounts a Secret that holds SERVING_API_KEYS, and tells the server where (SERVING_SECRETS_DIR)."""
    pod = _get(deployment.props, "spec", "template", "spec") or {}
    env = {e.get("name") for c in pod.get("containers") or [] for e in c.get("env") or []}
    if "SERVING_SECRETS_DIR" not in env:
        return False
    mounted = {_get(v, "secret", "secretName") for v in pod.get("volumes") or []}
    return any(
        r.type == "kubernetes:core/v1:Secret"
        and _get(r.props, "metadata", "name") in mounted
        and "SERVING_API_KEYS" in ((r.props.get("stringData") or {}) | (r.props.get("data") or {}))
        for r in resources
    )


def _public_services(resources: list[Resource]) -> list[tuple[Resource, str]]:
    """Services reachable from outside the cluster: LoadBalancers, and destinations of gateway routes."""
    services = [r for r in resources if r.type == "kubernetes:core/v1:Service"]
    public = [(s, "is a public LoadBalancer") for s in services if _get(s.props, "spec", "type") == "LoadBalancer"]
    routed = {
        _get(route, "destination", "host")
        for vs in resources
        if vs.type == "kubernetes:networking.istio.io/v1:VirtualService" and _get(vs.props, "spec", "gateways")
        for rule in _get(vs.props, "spec", "http") or []
        for route in rule.get("route") or []
    }
    for service in services:
        host = f"{_get(service.props, 'metadata', 'name')}.{_get(service.props, 'metadata', 'namespace')}"
        if any(h == host or (isinstance(h, str) and h.startswith(host + ".svc")) for h in routed):
            public.append((service, "is routed from the ingress gateway"))
    return public


def public_endpoints_need_auth(resources: list[Resource]) -> list[str]:
    deployments = [r for r in resources if r.type == "kubernetes:apps/v1:Deployment"]
    problems = []
    for service, exposure in _public_services(resources):
        selector = _get(service.props, "spec", "selector") or {}
        namespace = _get(service.props, "metadata", "namespace")
        backends = [
            d
            for d in deployments
            if _get(d.props, "metadata", "namespace") == namespace
            and _selects(selector, _get(d.props, "spec", "template", "metadata", "labels") or {})
        ]
        for deployment in backends:
            containers = _get(deployment.props, "spec", "template", "spec", "containers") or []
            variables = {e.get("name") for c in containers for e in c.get("env") or []}
            # Keys come from the environment, or from a file SERVING_API_KEYS in a mounted Secret.
            if "SERVING_API_KEYS" not in variables and not _mounts_key_file(deployment, resources):
                problems.append(
                    f"Service {service.name} {exposure} in front of {deployment.name}, "
                    "which has no API keys (SERVING_API_KEYS or SERVING_SECRETS_DIR): enable server.authEnabled"
                )
        if not backends:
            problems.append(f"Service {service.name} {exposure} but selects no known Deployment")
    return problems


def keys_travel_over_tls(type_: str, props: Mapping[str, Any]) -> list[str]:
    """Nothing public speaks plain HTTP except to redirect to HTTPS."""
    if type_ == "azure-native:containerinstance:ContainerGroup" and _get(props, "ipAddress", "type") == "Public":
        ports = {p.get("port") for p in _get(props, "ipAddress", "ports") or []}
        if not ports <= {80, 443} or 443 not in ports:
            return [f"public ports {sorted(ports)}: only the TLS proxy's 443 (and 80 for redirects) may be public"]
    if type_ == "kubernetes:networking.istio.io/v1:Gateway":
        return [
            f"gateway server on port {_get(server, 'port', 'number')} is plain HTTP without httpsRedirect"
            for server in _get(props, "spec", "servers") or []
            if _get(server, "port", "protocol") == "HTTP" and _get(server, "tls", "httpsRedirect") is not True
        ]
    if type_ == "kubernetes:core/v1:Service" and _get(props, "spec", "type") == "LoadBalancer":
        return ["a LoadBalancer Service is plain TCP to the pods: route through the TLS gateway instead"]
    return []


RESOURCE_RULES = [
    ResourceRule("acr-admin-user-disabled", "ACR admin user disabled", acr_admin_disabled),
    ResourceRule("ecr-scan-and-immutable-tags", "ECR scan on push and immutable tags", ecr_scan_and_immutable),
    ResourceRule("sagemaker-endpoint-encryption", "SageMaker instance volumes encrypted with KMS", sagemaker_encrypted),
    ResourceRule(
        "sagemaker-two-instances", "Real-time SageMaker variants run at least 2 instances", sagemaker_two_instances
    ),
    ResourceRule("aks-rbac-network-policy", "AKS with RBAC and network policy", aks_rbac_and_network_policy),
    ResourceRule(
        "kubernetes-deployment-hardened",
        "Deployments with probes, limits, non-root, read-only root",
        deployment_hardened,
    ),
    ResourceRule(
        "keys-travel-over-tls", "Public endpoints speak HTTPS (plain HTTP only redirects)", keys_travel_over_tls
    ),
    ResourceRule("required-tags", "Taggable resources carry project, stack, model and model-version tags", tagged),
]
STACK_RULES = [
    StackRule("ecr-lifecycle-policy", "Every ECR repository has a lifecycle policy", ecr_lifecycle),
    StackRule("public-endpoint-needs-auth", "No public endpoint without API keys", public_endpoints_need_auth),
]


def check(resources: Iterable[Resource]) -> list[tuple[str, str, str]]:
    """(rule, resource, violation) for every violation in a stack's resources."""
    resources = list(resources)
    found = [
        (rule.name, r.name, message)
        for r in resources
        for rule in RESOURCE_RULES
        for message in rule.check(r.type, r.props)
    ]
    found += [(rule.name, "(stack)", message) for rule in STACK_RULES for message in rule.check(resources)]
    return found
