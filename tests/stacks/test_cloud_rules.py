"""The clouds' rules the program relies on, one row each, checked on every shipped stack and variant.

Mocks accept anything; Azure Resource Manager and the AWS APIs do not. Each rule names its source
(the document a reviewer can check it against) and is run on the evaluated program of the shipped
stacks, a review stack, and the config variants that could break it (each SageMaker mode with each
option). A change that breaks a rule fails here instead of in a user's `pulumi up`.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bootstrap.permissions import aws_deploy_policy
from offline.mocks import Evaluation, Recorded, evaluate, merged
from stacks.config import has_instance_storage
from stacks.versions import AKS_END_OF_LIFE, DEFAULT_KUBERNETES_VERSION, kubernetes_version_problem

AUTONAME_SUFFIX = 8  # Pulumi appends 8 random characters to a logical name (`name` + suffix)
KMS = "arn:aws:kms:eu-west-1:123456789012:key/0000"
ZONE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dns/providers/Microsoft.Network/"
    "dnszones/example.com"
)
# AKS defaults the program does not set: Service CIDR and the overlay's pod CIDR.
AKS_SERVICE_CIDR = "10.0.0.0/16"
AKS_POD_CIDR = "10.244.0.0/16"


@dataclass(frozen=True, eq=False)
class Variant:
    label: str
    stack: str
    overrides: tuple[tuple[str, Any], ...] = ()
    stack_name: str | None = None

    @property
    def protect(self) -> bool:
        return self.stack == "prod"


def _sagemaker(stack: str, **changes: Any) -> tuple[tuple[str, Any], ...]:
    section = merged(stack, "mlserve:sagemaker", changes)
    if section.get("mode") == "realtime":  # a realtime endpoint refuses the serverless settings
        section = {k: v for k, v in section.items() if k not in ("memorySizeMb", "maxConcurrency")}
    return (("mlserve:sagemaker", section),)


VARIANTS = [
    Variant("dev", "dev"),
    Variant("prod", "prod"),
    Variant("review stack", "dev", stack_name="pr-99999"),
    Variant("prod, cilium", "prod", (("mlserve:aks", merged("prod", "mlserve:aks", {"networkPolicy": "cilium"})),)),
    Variant("serverless, 6 GB, 200 concurrent", "dev", _sagemaker("dev", memorySizeMb=6144, maxConcurrency=200)),
    Variant("realtime, own KMS key", "dev", _sagemaker("dev", mode="realtime", kmsKeyArn=KMS, minCapacity=1)),
    Variant("realtime, capture", "dev", _sagemaker("dev", mode="realtime", dataCapturePercent=50, minCapacity=1)),
    Variant(
        "realtime, NVMe, linear",
        "dev",
        _sagemaker("dev", mode="realtime", instanceType="ml.m5d.large", rollout={"type": "LINEAR", "stepPercent": 10}),
    ),
    Variant(
        "realtime, all at once",
        "prod",
        _sagemaker("prod", rollout={"type": "ALL_AT_ONCE"}, instanceType="ml.c5.xlarge"),
    ),
    Variant(
        "prod, allow-list, DNS zone",
        "prod",
        (
            (
                "mlserve:aks",
                merged("prod", "mlserve:aks", {"allowedSourceRanges": ["203.0.113.0/24"], "dnsZoneId": ZONE}),
            ),
        ),
    ),
    Variant(
        "dev, largest ACI group, custom domain",
        "dev",
        (("mlserve:aci", {"cpu": 3.5, "memoryGb": 15.5, "domain": "rain.example.com"}),),
    ),
]


_EVALUATED: dict[str, Evaluation] = {}


def evaluated(variant: Variant) -> Evaluation:
    if variant.label not in _EVALUATED:
        _EVALUATED[variant.label] = evaluate(variant.stack, dict(variant.overrides), stack_name=variant.stack_name)
    return _EVALUATED[variant.label]


# Rules: (evaluation, variant) -> problems


def _endpoint_configs(e: Evaluation) -> Iterator[dict]:
    for config in e.of_type("aws:sagemaker/endpointConfiguration:EndpointConfiguration"):
        yield config.inputs


def serverless_feature_exclusions(e: Evaluation, _: Variant) -> list[str]:
    # SageMaker developer guide, "Serverless Inference": feature exclusions (no network isolation,
    # no KMS key, no VPC config, no data capture).
    problems = []
    for config in _endpoint_configs(e):
        if not any("serverlessConfig" in v for v in config["productionVariants"]):
            continue
        for key in ("kmsKeyArn", "dataCaptureConfig"):
            if key in config:
                problems.append(f"serverless endpoint configuration sets {key}")
        for model in e.of_type("aws:sagemaker/model:Model"):
            if model.inputs.get("enableNetworkIsolation") or "vpcConfig" in model.inputs:
                problems.append("serverless model has network isolation or a VPC")
    return problems


def no_kms_key_with_instance_storage(e: Evaluation, _: Variant) -> list[str]:
    # SageMaker API reference, CreateEndpointConfig: KmsKeyId is refused for instance types with local storage.
    return [
        f"KMS key with {v['instanceType']}"
        for c in _endpoint_configs(e)
        if "kmsKeyArn" in c
        for v in c["productionVariants"]
        if "instanceType" in v and has_instance_storage(v["instanceType"])
    ]


def traffic_routing_steps(e: Evaluation, _: Variant) -> list[str]:
    # SageMaker API reference, TrafficRoutingConfig / CapacitySize: canary 1-50 %, linear 10-50 % of capacity.
    problems = []
    for endpoint in e.of_type("aws:sagemaker/endpoint:Endpoint"):
        routing = endpoint.inputs.get("deploymentConfig", {}).get("blueGreenUpdatePolicy", {})
        routing = routing.get("trafficRoutingConfiguration", {})
        for key, low in (("canarySize", 1), ("linearStepSize", 10)):
            if key in routing and not low <= routing[key]["value"] <= 50:
                problems.append(f"{key} {routing[key]['value']} outside {low}..50")
    return problems


def autoscaled_variant_changes(e: Evaluation, _: Variant) -> list[str]:
    # SageMaker developer guide, "Update endpoints that use auto scaling": deregister before changing the
    # instance type; register again after the update.
    targets = e.of_type("aws:appautoscaling/target:Target")
    if not targets:
        return []
    problems = []
    (endpoint,) = e.of_type("aws:sagemaker/endpoint:Endpoint")
    commands = [c for c in e.of_type("command:local:Command") if "deregister-scalable-target" in c.inputs["create"]]
    if len(commands) != 1 or commands[0].urn not in endpoint.dependencies:
        problems.append("the endpoint update is not preceded by deregistering its scalable target")
    (config,) = list(_endpoint_configs(e))
    instance_type = config["productionVariants"][0]["instanceType"]
    if commands and commands[0].inputs.get("triggers") != [instance_type]:
        problems.append("deregistration does not run when the instance type changes")
    for resource in [*targets, *e.of_type("aws:appautoscaling/policy:Policy")]:
        if not resource.name.endswith(instance_type.replace(".", "-")):
            problems.append(f"{resource.name} is not keyed on the instance type")
        if not resource.retain_on_delete:
            problems.append(f"{resource.name}: removing the old key would deregister the new target (same id)")
    return problems


def role_assignment_principal_types(e: Evaluation, v: Variant) -> list[str]:
    # ARM role assignments: principalType must match the object ("UnmatchedPrincipalType");
    # managed identities (user-assigned, kubelet) are ServicePrincipal objects.
    admins = {a["objectId"]: a["type"] for a in dict(v.overrides).get("mlserve:aks", {}).get("admins", [])}
    if not admins and v.stack == "prod":
        admins = {a["objectId"]: a["type"] for a in merged("prod", "mlserve:aks", {})["admins"]}
    problems = []
    for assignment in e.of_type("azure-native:authorization:RoleAssignment"):
        principal, kind = assignment.inputs["principalId"], assignment.inputs.get("principalType")
        expected = admins.get(principal, "ServicePrincipal")
        if kind != expected:
            problems.append(f"{assignment.name}: principalType {kind!r}, the principal is a {expected}")
    return problems


def new_role_assignments_are_waited_for(e: Evaluation, _: Variant) -> list[str]:
    # Azure RBAC troubleshooting: assignments take effect after up to 10 minutes; AKS RBAC: up to five.
    waits = {w.urn: w for w in e.of_type("time:index/sleep:Sleep")}
    problems = []
    consumers = [*e.of_type("azure-native:containerinstance:ContainerGroup"), *e.of_type("pulumi:providers:kubernetes")]
    for consumer in consumers:
        if not any(d in waits for d in consumer.dependencies):
            problems.append(f"{consumer.name} does not wait for its role assignments to propagate")
    for wait in waits.values():
        if not wait.dependencies or int(wait.inputs["createDuration"].rstrip("s")) < 60:
            problems.append(f"{wait.name} waits for nothing or for less than a minute")
    return problems


def classic_azure_provider_is_configured(e: Evaluation, _: Variant) -> list[str]:
    # pulumi-azure v6 migration guide: the provider refuses to start without a subscription id.
    providers = {p.urn: p for p in e.of_type("pulumi:providers:azure")}
    problems = []
    for resource in e.resources:
        if resource.type.startswith("azure:") and resource.custom:
            urn = resource.provider.rsplit("::", 1)[0] if resource.provider else ""
            provider = providers.get(urn)
            if provider is None:
                problems.append(f"{resource.name} uses the default classic provider")
            elif not provider.inputs.get("subscriptionId"):
                problems.append(f"{provider.name} has no subscriptionId")
            elif provider.inputs.get("resourceProviderRegistrations") != "none":
                problems.append(f"{provider.name} would register resource providers across the subscription")
    return problems


@dataclass(frozen=True)
class NameRule:
    type: str
    pattern: str  # what the service accepts, whole name
    max_length: int
    autonamed: bool  # Pulumi adds AUTONAME_SUFFIX characters to the logical name
    name_input: str = "name"


GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
NAME_RULES = [
    # Azure naming rules ("Naming rules and restrictions for Azure resources").
    NameRule("azure-native:resources:ResourceGroup", r"[\w.()-]+", 90, True),
    NameRule("azure-native:containerregistry:Registry", r"[a-zA-Z0-9]+", 50, True),  # globally unique
    NameRule("azure-native:storage:StorageAccount", r"[a-z0-9]+", 24, True),  # globally unique
    NameRule("azure-native:containerservice:ManagedCluster", r"[a-zA-Z0-9][\w-]*", 63, True),
    NameRule("azure-native:containerinstance:ContainerGroup", r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", 63, True),
    NameRule("azure-native:managedidentity:UserAssignedIdentity", r"[a-zA-Z0-9][\w-]*", 128, True),
    NameRule("azure-native:operationalinsights:Workspace", r"[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]", 63, True),
    NameRule("azure-native:containerregistry:ScopeMap", r"[a-zA-Z0-9-_]+", 50, True),
    NameRule("azure-native:containerregistry:Token", r"[a-zA-Z0-9-_]+", 50, True),
    # AWS: IAM ("IAM object quotas"), SageMaker (CreateModel, CreateEndpointConfig), CloudWatch, SNS, ECR.
    NameRule("aws:iam/role:Role", r"[\w+=,.@-]+", 64, True),
    NameRule("aws:sagemaker/model:Model", r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", 63, True),
    NameRule("aws:sagemaker/endpointConfiguration:EndpointConfiguration", r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", 63, True),
    NameRule("aws:sagemaker/endpoint:Endpoint", r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", 63, False),
    NameRule("aws:sns/topic:Topic", r"[a-zA-Z0-9_-]+", 256, True),
    NameRule("aws:ecr/repository:Repository", r"[a-z0-9]+([._/-][a-z0-9]+)*", 256, True),
    NameRule("aws:s3/bucket:Bucket", r"[a-z0-9][a-z0-9.-]*[a-z0-9]", 63, True),  # globally unique
    NameRule("aws:iam/rolePolicy:RolePolicy", r"[\w+=,.@-]+", 128, True),
    NameRule("aws:cloudwatch/metricAlarm:MetricAlarm", r"[^\x00-\x1f]+", 255, True),
    NameRule("aws:appautoscaling/policy:Policy", r"[^\x00-\x1f:/]+", 256, True),
    NameRule("aws:kms/alias:Alias", r"alias/(?!aws/)[\w/-]+", 256, False),
    NameRule("azure-native:applicationinsights:Component", r"[^%&\\?/]+", 260, True),
    NameRule("azure-native:monitor:ActionGroup", r"[^*#&+:<>?@%{}\\/]+", 260, True),
    NameRule("azure-native:monitor:ScheduledQueryRule", r"[^*#&+:<>?@%{}\\/]+", 260, True),
    NameRule("azure-native:managedidentity:FederatedIdentityCredential", r"[a-zA-Z0-9][\w-]*", 120, True),
    NameRule(
        "azure-native:storage:BlobContainer", r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", 63, False, "containerName"
    ),
    NameRule("azure-native:network:NetworkSecurityGroup", r"[a-zA-Z0-9]([\w.-]*\w)?", 80, True),
    NameRule("azure-native:network:VirtualNetwork", r"[a-zA-Z0-9][\w.-]*\w", 64, True),
    NameRule("azure-native:network:Subnet", r"[a-zA-Z0-9]([\w.-]*\w)?", 80, False, "subnetName"),
    NameRule(
        "azure-native:dns:RecordSet",
        r"@|[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?(\.[a-z0-9_-]{1,63})*",
        253,
        False,
        "relativeRecordSetName",
    ),
    NameRule("azure-native:storage:FileShare", r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", 63, False, "shareName"),
    NameRule("azure-native:containerservice:AgentPool", r"[a-z][a-z0-9]{0,11}", 12, False, "agentPoolName"),
    # Workbooks are named by a GUID (Azure Workbooks, "Azure Resource Manager templates": the workbook id);
    # CloudWatch PutDashboard: "can contain only alphanumerics, dash (-), and underscore (_)", up to 255.
    NameRule("azure-native:applicationinsights:Workbook", GUID, 36, False, "resourceName"),
    NameRule("aws:cloudwatch/dashboard:Dashboard", r"[A-Za-z0-9_-]+", 255, False, "dashboardName"),
]
# Resources whose names are not ours to get wrong: Azure makes the role assignment's GUID; the rest
# have no name of their own in the cloud (sub-resources of a bucket, repository or endpoint, a
# scalable target keyed by the endpoint, keys referred to by ARN) or are no cloud resource at all.
UNNAMED = {
    "azure-native:authorization:RoleAssignment",
    "aws:appautoscaling/target:Target",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:kms/key:Key",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:sns/topicSubscription:TopicSubscription",
    "azure:containerservice/tokenPassword:TokenPassword",
    "command:local:Command",
    "docker-build:index:Image",
    "random:index/randomPassword:RandomPassword",
    "time:index/sleep:Sleep",
}


def names_are_valid(e: Evaluation, _: Variant) -> list[str]:
    problems = []
    for rule in NAME_RULES:
        for resource in e.of_type(rule.type):
            explicit = resource.inputs.get(rule.name_input) if not rule.autonamed else None
            name = explicit if explicit is not None else resource.name
            if rule.type == "aws:kms/alias:Alias":
                continue  # checked below, with its prefix rule
            length = len(name) + (AUTONAME_SUFFIX if rule.autonamed else 0)
            if rule.autonamed and resource.inputs.get(rule.name_input):
                problems.append(f"{resource.name}: a fixed name where the service needs it unique (auto-name it)")
            if not re.fullmatch(rule.pattern, name) or length > rule.max_length:
                problems.append(f"{resource.type} {name!r} ({length} characters with suffix) breaks {rule.pattern}")
    # Kubernetes names: RFC 1123 labels; AKS agent pools: lowercase, up to 12 characters, starting with a letter.
    for resource in e.resources:
        if resource.type.startswith("kubernetes:") and "metadata" in resource.inputs:
            name = resource.inputs["metadata"].get("name", "")
            if name and not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name):
                problems.append(f"Kubernetes name {name!r}")
    for cluster in e.of_type("azure-native:containerservice:ManagedCluster"):
        pools = [p["name"] for p in cluster.inputs["agentPoolProfiles"]]
        pools += [p.inputs["agentPoolName"] for p in e.of_type("azure-native:containerservice:AgentPool")]
        problems += [f"agent pool {p!r}" for p in pools if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", p)]
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9-]{0,52}[a-zA-Z0-9]", cluster.inputs["dnsPrefix"]):
            problems.append(f"dnsPrefix {cluster.inputs['dnsPrefix']!r}")
    for group in e.of_type("azure-native:containerinstance:ContainerGroup"):
        address = group.inputs["ipAddress"]
        if not re.fullmatch(r"[a-z][a-z0-9-]{1,61}[a-z0-9]", address["dnsNameLabel"]):
            problems.append(f"dnsNameLabel {address['dnsNameLabel']!r}")
        # DNS labels are unique per region across all of Azure; a scoped hash makes them ours.
        if address.get("autoGeneratedDomainNameLabelScope") in (None, "Unsecure"):
            problems.append("ACI DNS label without a reuse scope collides with every other deployment of it")
    for alias in e.of_type("aws:kms/alias:Alias"):
        if not re.fullmatch(r"alias/(?!aws/)[\w/-]{1,250}", alias.inputs["name"]):
            problems.append(f"KMS alias {alias.inputs['name']!r}")
    return problems


def aks_version_and_upgrades(e: Evaluation, _: Variant) -> list[str]:
    # AKS, "Supported Kubernetes versions": no new clusters past end of life; "Auto-upgrade channels".
    problems = []
    for cluster in e.of_type("azure-native:containerservice:ManagedCluster"):
        version = cluster.inputs["kubernetesVersion"]
        if kubernetes_version_problem(version):
            problems.append(f"Kubernetes {version} is not a supported AKS version today")
        if cluster.inputs["autoUpgradeProfile"]["upgradeChannel"] not in ("stable", "rapid"):
            problems.append("the upgrade channel does not follow minor versions")
    return problems


def aks_network(e: Evaluation, _: Variant) -> list[str]:
    # AKS, "Azure CNI Powered by Cilium": the cilium network policy needs the cilium dataplane.
    problems = []
    for cluster in e.of_type("azure-native:containerservice:ManagedCluster"):
        network = cluster.inputs["networkProfile"]
        if (network["networkPolicy"] == "cilium") != (network.get("networkDataplane") == "cilium"):
            problems.append(
                f"networkPolicy {network['networkPolicy']} with dataplane {network.get('networkDataplane')}"
            )
        if network.get("networkPluginMode") == "overlay" and network["networkPlugin"] != "azure":
            problems.append("overlay mode needs the azure plugin")
    return problems


def aks_subnet_fits_the_cluster(e: Evaluation, _: Variant) -> list[str]:
    # AKS, "Configure Azure CNI Overlay" / "bring your own subnet": the node subnet lies in its VNet and
    # overlaps neither the Service CIDR nor the pod CIDR; NSG rules are evaluated by priority, so the
    # load balancer's probes are allowed before the deny of other internet traffic.
    problems = []
    spaces = [ipaddress.ip_network(p) for v in e.of_type("azure-native:network:VirtualNetwork")
              for p in v.inputs["addressSpace"]["addressPrefixes"]]  # fmt: skip
    for subnet in e.of_type("azure-native:network:Subnet"):
        network = ipaddress.ip_network(subnet.inputs["addressPrefix"])
        if not any(network.subnet_of(space) for space in spaces):
            problems.append(f"subnet {network} is outside its VNet {spaces}")
        for reserved in (AKS_SERVICE_CIDR, AKS_POD_CIDR):
            if network.overlaps(ipaddress.ip_network(reserved)):
                problems.append(f"subnet {network} overlaps AKS's {reserved}")
    for group in e.of_type("azure-native:network:NetworkSecurityGroup"):
        rules = sorted(group.inputs["securityRules"], key=lambda r: r["priority"])
        order = [(r["access"], r.get("sourceAddressPrefix")) for r in rules]
        if ("Allow", "AzureLoadBalancer") not in order or order.index(("Allow", "AzureLoadBalancer")) > min(
            (i for i, (access, _) in enumerate(order) if access == "Deny"), default=len(order)
        ):
            problems.append(f"{group.name}: load balancer probes are denied before they are allowed")
        if len({r["priority"] for r in rules}) != len(rules):
            problems.append(f"{group.name}: two rules share a priority")
    return problems


def aci_group_fits_and_exposes_its_ports(e: Evaluation, _: Variant) -> list[str]:
    # ACI, "Resource availability": a Linux container group gets at most 4 CPUs and 16 GB in most
    # regions; the group's public ports must be ports its containers expose.
    problems = []
    for group in e.of_type("azure-native:containerinstance:ContainerGroup"):
        containers = group.inputs["containers"]
        cpu = sum(c["resources"]["requests"]["cpu"] for c in containers)
        memory = sum(c["resources"]["requests"]["memoryInGB"] for c in containers)
        if cpu > 4 or memory > 16:
            problems.append(f"{group.name}: {cpu} CPUs and {memory} GB requested")
        exposed = {p["port"] for c in containers for p in c.get("ports", [])}
        public = {p["port"] for p in group.inputs["ipAddress"]["ports"]}
        if not public <= exposed:
            problems.append(f"{group.name}: public ports {sorted(public - exposed)} are no container's")
    return problems


def aks_availability(e: Evaluation, v: Variant) -> list[str]:
    # AKS best practices: system pods on a system pool, workloads on user pools; production spread over zones.
    problems = []
    for cluster in e.of_type("azure-native:containerservice:ManagedCluster"):
        (system,) = cluster.inputs["agentPoolProfiles"]
        if "CriticalAddonsOnly=true:NoSchedule" not in system.get("nodeTaints", []):
            problems.append("the system pool also takes workloads")
        if not any(p.inputs["mode"] == "User" for p in e.of_type("azure-native:containerservice:AgentPool")):
            problems.append("no user pool for the workload")
        if v.protect and len(system.get("availabilityZones", [])) < 2:
            problems.append("a protected cluster in one zone")
    for hpa in e.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler"):
        if v.protect and hpa.inputs["spec"]["minReplicas"] < 2:
            problems.append("a protected workload with one replica: every drain is an outage")
    return problems


def disruption_budgets_select_only_serving_pods(e: Evaluation, _: Variant) -> list[str]:
    # Kubernetes, "Specifying a Disruption Budget": pods of a Job match no scalable controller, and
    # the eviction API refuses evictions of every pod a budget with such pods selects.
    problems = []
    job_pods = [
        c.inputs["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
        for c in e.of_type("kubernetes:batch/v1:CronJob")
    ]
    for pdb in e.of_type("kubernetes:policy/v1:PodDisruptionBudget"):
        selector = pdb.inputs["spec"]["selector"]["matchLabels"]
        problems += [f"{pdb.name} selects batch pods" for labels in job_pods if selector.items() <= labels.items()]
    return problems


def registry_sku_matches_use(e: Evaluation, v: Variant) -> list[str]:
    # ACR service tiers: Premium buys geo-replication, private link, ...; the stack uses none of them.
    configured = dict(v.overrides).get("mlserve:azure", {}).get("registrySku")
    return [
        f"registry SKU {r.inputs['sku']['name']} was not asked for"
        for r in e.of_type("azure-native:containerregistry:Registry")
        if r.inputs["sku"]["name"] == "Premium" and configured != "Premium"
    ]


def sagemaker_role_and_data(e: Evaluation, _: Variant) -> list[str]:
    # IAM, "The confused deputy problem"; S3 security best practices (TLS only, lifecycle);
    # CloudWatch alarms without actions reach nobody.
    problems = []
    for role in e.of_type("aws:iam/role:Role"):
        for statement in json.loads(role.inputs["assumeRolePolicy"])["Statement"]:
            if "aws:SourceAccount" not in statement.get("Condition", {}).get("StringEquals", {}):
                problems.append(f"{role.name} trusts SageMaker on behalf of any account")
    buckets = e.of_type("aws:s3/bucket:Bucket")
    policies = e.of_type("aws:s3/bucketPolicy:BucketPolicy")
    lifecycles = e.of_type("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")
    if buckets and not any("aws:SecureTransport" in p.inputs["policy"] for p in policies):
        problems.append("the capture bucket accepts requests without TLS")
    if buckets and not lifecycles:
        problems.append("captured data is kept forever")
    for alarm in e.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        if not alarm.inputs.get("alarmActions"):
            problems.append(f"{alarm.name} notifies nobody")
    return problems


def protected_stacks_protect_their_resource_group(e: Evaluation, v: Variant) -> list[str]:
    # Deleting a resource group deletes everything in it, protected resources included.
    return [
        f"{g.name} is not protected"
        for g in e.of_type("azure-native:resources:ResourceGroup")
        if v.protect and not g.protect
    ]


def deregistration_runs_only_on_a_new_instance_type(e: Evaluation, _: Variant) -> list[str]:
    # pulumi-command, Command: a change of `create` or `environment` is an update, which runs `update`,
    # or `create` again when there is none; only `triggers` replace the resource. Deregistering the
    # scalable target on any other change would drop the live endpoint's autoscaling.
    return [
        f"{c.name}: deregisters again on any change of its script or environment (no `update`)"
        for c in e.of_type("command:local:Command")
        if "deregister-scalable-target" in c.inputs["create"] and c.inputs.get("update") != "true"
    ]


def log_alerts_skip_validation_on_new_components(e: Evaluation, _: Variant) -> list[str]:
    # Azure Monitor, scheduled query rules: the query is validated against the scope's tables, which a
    # component created in the same deployment does not have yet (skipQueryValidation).
    created = {c.name + "-id" for c in e.of_type("azure-native:applicationinsights:Component")}
    return [
        f"{r.name}: the first up fails validating its query against a new component"
        for r in e.of_type("azure-native:monitor:ScheduledQueryRule")
        if set(r.inputs["scopes"]) & created and not r.inputs.get("skipQueryValidation")
    ]


def dashboards_are_what_the_services_accept(e: Evaluation, _: Variant) -> list[str]:
    # Azure Workbooks (Microsoft.Insights/workbooks, 2023-06-01): kind shared, serializedData a JSON
    # document whose version matches `version`, sourceId the resource it reads. CloudWatch PutDashboard:
    # each metric widget names its region; the dashboard ARN is global (no region), which the deploy
    # role's scope must allow.
    problems = []
    components = {c.name + "-id" for c in e.of_type("azure-native:applicationinsights:Component")}
    for workbook in e.of_type("azure-native:applicationinsights:Workbook"):
        content = json.loads(workbook.inputs["serializedData"])
        if content.get("version") != workbook.inputs.get("version") or workbook.inputs.get("kind") != "shared":
            problems.append(f"{workbook.name}: version or kind")
        if workbook.inputs.get("sourceId") not in components or not workbook.inputs.get("displayName"):
            problems.append(f"{workbook.name}: not linked to the stack's Application Insights, or unnamed")
    policy = aws_deploy_policy(REGION, ACCOUNT)
    endpoints = {r.inputs.get("name") for r in e.of_type("aws:sagemaker/endpoint:Endpoint")}
    for dashboard in e.of_type("aws:cloudwatch/dashboard:Dashboard"):
        body = dashboard.inputs["dashboardBody"]
        body = json.loads(body) if isinstance(body, str) else body
        for widget in body["widgets"]:
            if widget["type"] != "metric":
                continue
            if not widget["properties"].get("region"):
                problems.append(f"{dashboard.name}: a metric widget without its region")
            named = {m[m.index("EndpointName") + 1] for m in widget["properties"]["metrics"]}
            if not named <= endpoints:
                problems.append(f"{dashboard.name}: metrics of {named - endpoints}, not the stack's endpoint")
        arn = f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{dashboard.inputs['dashboardName']}"
        if not _allowed(policy, "cloudwatch:PutDashboard", arn, {}):
            problems.append(f"{dashboard.name}: PutDashboard on {arn} denied to the deploy role")
    return problems


def resources_elsewhere_use_their_subscription(e: Evaluation, v: Variant) -> list[str]:
    # Azure RBAC: a role definition id is valid for scopes in its own subscription; ARM addresses a
    # DNS record set through its zone's subscription, which the provider puts in the URL. A Key Vault
    # or DNS zone in another subscription than the stack's is allowed by the config.
    problems = []
    for assignment in e.of_type("azure-native:authorization:RoleAssignment"):
        scope, definition = str(assignment.inputs["scope"]), str(assignment.inputs["roleDefinitionId"])
        if scope.startswith("/subscriptions/") and not definition.startswith("/".join(scope.split("/")[:3]) + "/"):
            problems.append(f"{assignment.name}: role definition {definition} for scope {scope}")
    zone = dict(v.overrides).get("mlserve:aks", {}).get("dnsZoneId")
    providers = {r.urn: r for r in e.resources if r.type == "pulumi:providers:azure-native"}
    for record in e.of_type("azure-native:dns:RecordSet"):
        provider = providers.get(record.provider.rsplit("::", 1)[0])  # "<provider urn>::<id>"
        wanted = zone.strip("/").split("/")[1]
        if provider is None or provider.inputs.get("subscriptionId") != wanted:
            problems.append(f"{record.name}: written through the stack's subscription, not the zone's ({wanted})")
    return problems


ACCOUNT, REGION = "123456789012", "eu-west-1"


def _allowed(policy: dict, action: str, resource: str, context: dict[str, str]) -> bool:
    """IAM's evaluation of Allow statements (no Deny in the deploy policy): action, resource, StringEquals."""
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        conditions = statement.get("Condition", {}).get("StringEquals", {})
        if (
            any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)
            and any(fnmatch.fnmatchcase(resource, r) for r in resources)
            and all(context.get(key) == value for key, value in conditions.items())
        ):
            return True
    return False


def deploy_role_may_create_keys_and_scaling_alarms(e: Evaluation, _: Variant) -> list[str]:
    # KMS, "Permissions for AWS KMS": CreateKey with Tags also needs kms:TagResource, and the new key
    # has no tags for aws:ResourceTag to match, only aws:RequestTag. Application Auto Scaling,
    # "Permissions required for API actions on target services and CloudWatch": PutScalingPolicy of a
    # target-tracking policy creates its TargetTracking-<resource id>-Alarm* alarms as the caller.
    policy = aws_deploy_policy(REGION, ACCOUNT)
    problems = []
    for key in e.of_type("aws:kms/key:Key"):
        requested = {f"aws:RequestTag/{k}": str(v) for k, v in (key.inputs.get("tags") or {}).items()}
        if not _allowed(policy, "kms:CreateKey", "*", requested):
            problems.append(f"{key.name}: kms:CreateKey denied")
        new_key = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        if not _allowed(policy, "kms:TagResource", new_key, requested):
            problems.append(f"{key.name}: kms:TagResource on the key being created denied (tags {requested})")
    for scaling in e.of_type("aws:appautoscaling/policy:Policy"):
        if scaling.inputs.get("policyType") != "TargetTrackingScaling":
            continue
        alarm = (
            f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:TargetTracking-{scaling.inputs['resourceId']}-AlarmHigh-0f1e"
        )
        for action in ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"):
            if not _allowed(policy, action, alarm, {}):
                problems.append(f"{scaling.name}: {action} on {alarm} denied")
    return problems


RULES: list[Callable[[Evaluation, Variant], list[str]]] = [
    serverless_feature_exclusions,
    no_kms_key_with_instance_storage,
    traffic_routing_steps,
    autoscaled_variant_changes,
    role_assignment_principal_types,
    new_role_assignments_are_waited_for,
    classic_azure_provider_is_configured,
    names_are_valid,
    aks_version_and_upgrades,
    aks_network,
    aks_subnet_fits_the_cluster,
    aci_group_fits_and_exposes_its_ports,
    aks_availability,
    disruption_budgets_select_only_serving_pods,
    registry_sku_matches_use,
    sagemaker_role_and_data,
    protected_stacks_protect_their_resource_group,
    deploy_role_may_create_keys_and_scaling_alarms,
    deregistration_runs_only_on_a_new_instance_type,
    log_alerts_skip_validation_on_new_components,
    resources_elsewhere_use_their_subscription,
    dashboards_are_what_the_services_accept,
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.label)
@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_rule_holds(rule: Callable[[Evaluation, Variant], list[str]], variant: Variant) -> None:
    assert rule(evaluated(variant), variant) == []


def test_variants_cover_what_the_rules_are_about() -> None:
    """A rule that never sees its subject proves nothing: each variant brings what its label says."""
    kinds = {
        v.label: {
            "serverless": any(
                "serverlessConfig" in p for c in _endpoint_configs(evaluated(v)) for p in c["productionVariants"]
            ),
            "autoscaled": bool(evaluated(v).of_type("aws:appautoscaling/target:Target")),
            "aks": bool(evaluated(v).of_type("azure-native:containerservice:ManagedCluster")),
            "aci": bool(evaluated(v).of_type("azure-native:containerinstance:ContainerGroup")),
        }
        for v in VARIANTS
    }
    assert kinds["dev"]["serverless"]
    assert kinds["dev"]["aci"]
    assert kinds["prod"]["autoscaled"]
    assert kinds["prod"]["aks"]
    assert kinds["dev, largest ACI group, custom domain"]["aci"]
    assert kinds["prod, allow-list, DNS zone"]["aks"]
    assert kinds["realtime, own KMS key"]["autoscaled"]
    assert "kmsKeyArn" in next(_endpoint_configs(evaluated(VARIANTS[5])))


def test_the_rules_catch_what_they_are_about() -> None:
    """Each rule fails on the mistake it names (the program before this issue made most of them)."""
    prod = evaluated(VARIANTS[1])
    broken_model = _with(
        prod,
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        productionVariants=[{"serverlessConfig": {}, "variantName": "AllTraffic"}],
        kmsKeyArn=KMS,
    )
    assert serverless_feature_exclusions(broken_model, VARIANTS[1])
    nvme = _with(
        prod,
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        productionVariants=[{"instanceType": "ml.g4dn.xlarge"}],
        kmsKeyArn=KMS,
    )
    assert no_kms_key_with_instance_storage(nvme, VARIANTS[1])
    as_user = _with(prod, "azure-native:authorization:RoleAssignment", principalType="User")
    assert role_assignment_principal_types(as_user, VARIANTS[1])
    assert aks_version_and_upgrades(
        _with(prod, "azure-native:containerservice:ManagedCluster", kubernetesVersion="1.33"), VARIANTS[1]
    )
    assert aks_subnet_fits_the_cluster(
        _with(prod, "azure-native:network:Subnet", addressPrefix="10.244.0.0/16"), VARIANTS[1]
    )
    dev = evaluated(VARIANTS[0])
    (group,) = dev.of_type("azure-native:containerinstance:ContainerGroup")
    unexposed = {**group.inputs["ipAddress"], "ports": [{"port": 8080, "protocol": "TCP"}]}
    assert aci_group_fits_and_exposes_its_ports(
        _with(dev, "azure-native:containerinstance:ContainerGroup", ipAddress=unexposed), VARIANTS[0]
    )
    too_long = _renamed(prod, "azure-native:storage:StorageAccount", "mlserveprodbatchx")
    assert names_are_valid(too_long, VARIANTS[1])
    rerun = _with(prod, "command:local:Command", update=None)
    assert deregistration_runs_only_on_a_new_instance_type(rerun, VARIANTS[1])
    validated = _with(prod, "azure-native:monitor:ScheduledQueryRule", skipQueryValidation=False)
    assert log_alerts_skip_validation_on_new_components(validated, VARIANTS[1])
    zoned = next(v for v in VARIANTS if v.label == "prod, allow-list, DNS zone")
    default_provider = [
        Recorded(**{**r.__dict__, "provider": ""}) if r.type == "azure-native:dns:RecordSet" else r
        for r in evaluated(zoned).resources
    ]  # the record written through the stack's default provider, as before
    stack_subscription = Evaluation(default_provider, prod.outputs, prod.secret_outputs, prod.invokes)
    assert resources_elsewhere_use_their_subscription(stack_subscription, zoned)
    vault_role = (
        "/subscriptions/00000000-0000-0000-0000-00000000abcd/providers/Microsoft.Authorization/roleDefinitions/x"
    )
    elsewhere = _with(prod, "azure-native:authorization:RoleAssignment", roleDefinitionId=vault_role)
    assert resources_elsewhere_use_their_subscription(elsewhere, VARIANTS[1])
    unlinked = _with(prod, "azure-native:applicationinsights:Workbook", sourceId="Azure Monitor")
    assert dashboards_are_what_the_services_accept(unlinked, VARIANTS[1])
    outside = _with(prod, "aws:cloudwatch/dashboard:Dashboard", dashboardName="team-dashboard")
    assert dashboards_are_what_the_services_accept(outside, VARIANTS[1])


def _with(evaluation: Evaluation, type_: str, **inputs: Any) -> Evaluation:
    resources = [
        Recorded(**{**r.__dict__, "inputs": {**r.inputs, **inputs}}) if r.type == type_ else r
        for r in evaluation.resources
    ]
    return Evaluation(resources, evaluation.outputs, evaluation.secret_outputs, evaluation.invokes)


def _renamed(evaluation: Evaluation, type_: str, name: str) -> Evaluation:
    resources = [Recorded(**{**r.__dict__, "name": name}) if r.type == type_ else r for r in evaluation.resources]
    return Evaluation(resources, evaluation.outputs, evaluation.secret_outputs, evaluation.invokes)


def test_default_kubernetes_version_is_supported_today() -> None:
    """AKS release calendar: fails once the default passes its end of life, so stacks/versions.py gets updated."""
    import datetime

    assert AKS_END_OF_LIFE[DEFAULT_KUBERNETES_VERSION] > datetime.date.today()


def test_every_named_resource_has_a_naming_rule() -> None:
    """A new resource type fails here until its cloud's naming rule is a row of NAME_RULES (or it has no name)."""
    ruled = {rule.type for rule in NAME_RULES} | UNNAMED
    for variant in VARIANTS:
        types = {r.type for r in evaluated(variant).resources if r.custom}
        unruled = {t for t in types if not t.startswith(("kubernetes:", "pulumi:providers:")) and t not in ruled}
        assert not unruled, (variant.label, unruled)
