"""The only reader of `pulumi.Config`: every stack key, validated once, as frozen dataclasses.

A bad value stops the program with a message that names the key and the stack file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pulumi

from stacks.versions import DEFAULT_ISTIO_REVISION, DEFAULT_KUBERNETES_VERSION, kubernetes_version_problem

NAMESPACE = "mlserve"
TARGETS = ("aci", "aks", "sagemaker")
AZURE_TARGETS = ("aci", "aks")


class ConfigError(pulumi.RunError):
    """A bad stack setting. A RunError: `pulumi preview`/`up` show its one-line message, no traceback."""


@dataclass(frozen=True)
class ModelConfig:
    name: str
    version: str
    source: str | None  # path, https://, s3://, az://, abfs:// or models:/ (stacks.model_source); None: the demo
    sha256: str | None  # of the model.onnx that ships; required in protected stacks


@dataclass(frozen=True)
class ServerConfig:
    """The serving container's limits; they reach it as SERVING_* environment variables."""

    auth_enabled: bool
    max_concurrent_requests: int
    max_queue_wait_ms: int
    scoring_timeout_ms: int
    drain_seconds: int  # shutdown delay + drain timeout the container gets after SIGTERM
    entra_tenant_id: str | None  # accept Entra ID tokens of this tenant (Azure targets)
    entra_audience: str | None
    entra_required_role: str | None

    def environment(self) -> dict[str, str]:
        return {
            "SERVING_MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
            "SERVING_MAX_QUEUE_WAIT_MS": str(self.max_queue_wait_ms),
            "SERVING_SCORING_TIMEOUT_MS": str(self.scoring_timeout_ms),
            "SERVING_SHUTDOWN_DELAY_SECONDS": "2",
            "SERVING_DRAIN_TIMEOUT_SECONDS": str(self.drain_seconds - 2),
        }


@dataclass(frozen=True)
class Principal:
    """An Entra ID principal a role is assigned to; ARM checks `type` against the object."""

    object_id: str
    type: str  # Group | User | ServicePrincipal


@dataclass(frozen=True)
class AzureConfig:
    location: str
    registry_sku: str  # Basic | Standard | Premium
    rbac_wait_seconds: int  # wait after a new role assignment before anything relies on it


@dataclass(frozen=True)
class AciConfig:
    cpu: float
    memory_gb: float
    dns_label: str | None
    domain: str | None  # a custom host name (CNAME to the group's FQDN) the proxy gets a certificate for


@dataclass(frozen=True)
class AksConfig:
    kubernetes_version: str
    node_vm_size: str  # the user pool, where the workload runs
    system_node_vm_size: str
    min_nodes: int
    max_nodes: int
    availability_zones: tuple[str, ...]
    private_cluster: bool
    network_policy: str
    authorized_ip_ranges: tuple[str, ...]
    admins: tuple[Principal, ...]  # get AKS RBAC Cluster Admin
    domain: str  # the endpoint's host name; its DNS points at the managed Istio gateway
    tls_certificate: KeyVaultCertificate
    allowed_source_ranges: tuple[str, ...]  # CIDRs that may reach the endpoint; empty: anyone
    istio_revisions: tuple[str, ...]
    dns_zone_id: str | None  # an Azure DNS zone for `domain`: the program keeps its A record


@dataclass(frozen=True)
class KeyVaultCertificate:
    """A Key Vault certificate (RBAC permission model) for the endpoint's domain."""

    key_vault_id: str
    name: str


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str
    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int
    cpu: str
    memory: str


@dataclass(frozen=True)
class BatchConfig:
    enabled: bool
    schedule: str
    input_blob: str
    output_blob: str


@dataclass(frozen=True)
class RolloutConfig:
    kind: str  # CANARY, LINEAR or ALL_AT_ONCE
    step_percent: int  # canary size, or linear step
    wait_seconds: int
    latency_alarm_ms: int
    error_alarm_count: int


@dataclass(frozen=True)
class SageMakerConfig:
    mode: str  # serverless | realtime
    endpoint_name: str
    memory_size_mb: int
    max_concurrency: int
    instance_type: str
    instance_count: int
    min_capacity: int
    max_capacity: int
    target_invocations_per_instance: int
    scale_in_cooldown: int
    scale_out_cooldown: int
    rollout: RolloutConfig
    model_data_url: str | None
    data_capture_percent: int  # 0: off
    data_capture_retention_days: int
    kms_key_arn: str | None
    keep_images: int
    force_delete_repository: bool


@dataclass(frozen=True)
class ObservabilityConfig:
    retention_days: int
    alert_email: str | None  # subscribed to the stack's alarm topic and the Azure action group
    failure_alert_percent: float
    latency_alert_ms: int


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    targets: tuple[str, ...]
    protect: bool
    model: ModelConfig
    server: ServerConfig
    azure: AzureConfig | None
    aci: AciConfig | None
    aks: AksConfig | None
    kubernetes: KubernetesConfig | None
    batch: BatchConfig
    observability: ObservabilityConfig
    sagemaker: SageMakerConfig | None = None

    def server_environment(self, azure: bool = False) -> dict[str, str]:
        """The container's SERVING_* settings: limits, and the stack's model name and version, which
        the endpoint reports (v2 metadata, telemetry) instead of whatever the ONNX file says. Azure
        targets also get the Entra ID token settings (SageMaker callers use IAM)."""
        environment = {
            **self.server.environment(),
            "SERVING_MODEL_NAME": self.model.name,
            "SERVING_MODEL_VERSION": self.model.version,
        }
        entra = {
            "SERVING_ENTRA_TENANT_ID": self.server.entra_tenant_id,
            "SERVING_ENTRA_AUDIENCE": self.server.entra_audience,
            "SERVING_ENTRA_REQUIRED_ROLE": self.server.entra_required_role,
        }
        if azure:
            environment.update({k: v for k, v in entra.items() if v is not None})
        return environment

    @property
    def uses_azure(self) -> bool:
        return any(t in AZURE_TARGETS for t in self.targets)


# Reading and checking values


class _Reader:
    """Typed access to one stack's keys, with errors that name the key and the stack file."""

    KNOWN = frozenset(
        {
            "targets",
            "protect",
            "model",
            "server",
            "azure",
            "aci",
            "aks",
            "kubernetes",
            "batch",
            "observability",
            "sagemaker",
        }
    )

    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.config = pulumi.Config(NAMESPACE)

    def fail(self, key: str, problem: str) -> ConfigError:
        return _fail(self.stack, f"{NAMESPACE}:{key}", problem)

    def check_unknown_keys(self) -> None:
        present = _namespace_keys()
        unknown = sorted(present - self.KNOWN)
        if unknown:
            raise self.fail(unknown[0], f"unknown key; known keys are {', '.join(sorted(self.KNOWN))}")

    def section(self, key: str, allowed: set[str]) -> dict[str, Any]:
        raw = self.config.get(key)
        if raw is None:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise self.fail(key, "expected an object of settings") from None
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an object of settings, got {type(value).__name__}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(f"{key}.{unknown[0]}", f"unknown setting; known: {', '.join(sorted(allowed))}")
        return value

    def integer(self, section: dict, key: str, path: str, default: int, low: int, high: int) -> int:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected a whole number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(path, f"{value} is out of range {low}..{high}")
        return value

    def number(self, section: dict, key: str, path: str, default: float, low: float, high: float) -> float:
        value = section.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(path, f"expected a number, got {value!r}")
        if not low <= value <= high:
            raise self.fail(path, f"{value} is out of range {low}..{high}")
        return float(value)

    def boolean(self, section: dict, key: str, path: str, default: bool) -> bool:
        value = section.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def text(self, section: dict, key: str, path: str, default: str | None, pattern: str) -> str:
        value = section.get(key, default)
        if not isinstance(value, str) or not re.fullmatch(pattern, value):
            raise self.fail(path, f"{value!r} does not match {pattern}")
        return value


def _fail(stack: str, full_key: str, problem: str) -> ConfigError:
    return ConfigError(f"{full_key} in Pulumi.{stack}.yaml: {problem}")


PRINCIPAL_TYPES = ("Group", "User", "ServicePrincipal")
OBJECT_ID = r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"


def _principals(r: _Reader, raw: Any, path: str) -> tuple[Principal, ...]:
    """A list of {objectId, type}: ARM rejects a role assignment whose type does not match the object."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise r.fail(path, "expected a list such as [{objectId: <object id>, type: Group}]")
    principals = []
    for index, item in enumerate(raw):
        where = f"{path}[{index}]"
        if not isinstance(item, dict) or set(item) != {"objectId", "type"}:
            raise r.fail(where, "expected {objectId: <object id>, type: Group | User | ServicePrincipal}")
        if not isinstance(item["objectId"], str) or not re.fullmatch(OBJECT_ID, item["objectId"]):
            raise r.fail(f"{where}.objectId", f"{item['objectId']!r} is not an Entra ID object id (a GUID)")
        if item["type"] not in PRINCIPAL_TYPES:
            raise r.fail(f"{where}.type", f"{item['type']!r}; choose from {', '.join(PRINCIPAL_TYPES)}")
        principals.append(Principal(item["objectId"].lower(), item["type"]))
    return tuple(principals)


CIDR = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}/([12]?\d|3[0-2])"
KEY_VAULT_ID = (
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[\w.()-]{1,90}"
    r"/providers/Microsoft\.KeyVault/vaults/[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]"
)


DNS_ZONE_ID = (
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[\w.()-]{1,90}/providers/Microsoft\.Network/"
    r"(?i:dnszones)/[A-Za-z0-9.-]{1,253}"
)


def _cidrs(r: _Reader, raw: Any, path: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and re.fullmatch(CIDR, x) for x in raw):
        raise r.fail(path, "expected a list of IPv4 CIDR ranges such as [203.0.113.0/24]")
    return tuple(raw)


def _key_vault_certificate(r: _Reader, raw: Any, path: str) -> KeyVaultCertificate:
    shape = (
        "{keyVaultId: /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/vaults/<name>, "
        "name: <certificate name>}"
    )
    if raw is None:
        raise r.fail(path, f"required: the Key Vault certificate for aks.domain, {shape}")
    if not isinstance(raw, dict) or set(raw) != {"keyVaultId", "name"}:
        raise r.fail(path, f"expected {shape}")
    if not isinstance(raw["keyVaultId"], str) or not re.fullmatch(KEY_VAULT_ID, raw["keyVaultId"], re.IGNORECASE):
        raise r.fail(f"{path}.keyVaultId", f"{raw['keyVaultId']!r} is not a Key Vault resource id ({shape})")
    if not isinstance(raw["name"], str) or not re.fullmatch(r"[0-9a-zA-Z-]{1,127}", raw["name"]):
        raise r.fail(f"{path}.name", f"{raw['name']!r} is not a Key Vault certificate name (letters, digits, -)")
    return KeyVaultCertificate(raw["keyVaultId"], raw["name"])


def _namespace_keys() -> set[str]:
    """Every `mlserve:` key the stack sets (from the engine's config, or the test's set_all_config)."""
    # pulumi.runtime offers no public "list all keys"; CONFIG and get_config_env hold what the engine passed.
    keys = set(pulumi.runtime.config.CONFIG.get()) | set(pulumi.runtime.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(NAMESPACE + ":")}


NAME = r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?"
DOMAIN = r"(?=.{4,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
K8S_QUANTITY_CPU = r"\d+(\.\d+)?|\d+m"
K8S_QUANTITY_MEMORY = r"\d+(Mi|Gi)"


def load_config() -> StackConfig:
    stack = pulumi.get_stack()
    r = _Reader(stack)
    r.check_unknown_keys()
    config = r.config

    try:
        targets_raw = config.get_object("targets")
    except Exception:
        raise r.fail("targets", "expected a list such as [aci]") from None
    if not isinstance(targets_raw, list) or not targets_raw:
        raise r.fail("targets", f"expected a non-empty list of {', '.join(TARGETS)}")
    for target in targets_raw:
        if target not in TARGETS:
            raise r.fail("targets", f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if len(set(targets_raw)) != len(targets_raw):
        raise r.fail("targets", "lists a target twice")
    targets = tuple(targets_raw)

    try:
        protect = bool(config.get_bool("protect"))
    except Exception:
        raise r.fail("protect", "expected true or false") from None

    m = r.section("model", {"name", "version", "source", "sha256", "directory"})
    if "directory" in m:
        raise r.fail(
            "model.directory", "renamed: set mlserve:model.source (a path, https://, s3://, az:// or models:/)"
        )
    if isinstance(m.get("version"), (int, float)) and not isinstance(m.get("version"), bool):
        m["version"] = str(m["version"])  # `pulumi config set --path mlserve:model.version 2` stores a number
    model = ModelConfig(
        name=r.text(m, "name", "model.name", "weather-rain", NAME),
        version=r.text(m, "version", "model.version", "1", r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"),
        source=r.text(m, "source", "model.source", None, r"\S.*") if "source" in m else None,
        sha256=r.text(m, "sha256", "model.sha256", None, r"[0-9a-f]{64}") if "sha256" in m else None,
    )
    if model.sha256 is not None and model.source is None:
        raise r.fail("model.sha256", "set, but there is no mlserve:model.source to check it against")
    if protect and model.source is not None and model.sha256 is None:
        raise r.fail(
            "model.sha256",
            "required in a protected stack: the sha256 of the model.onnx that ships (`sha256sum model.onnx`, or the "
            "digest `pulumi preview` reports), so the reviewed change pins exactly those bytes",
        )

    s = r.section(
        "server",
        {
            "authEnabled",
            "maxConcurrentRequests",
            "maxQueueWaitMs",
            "scoringTimeoutMs",
            "drainSeconds",
            "entraTenantId",
            "entraAudience",
            "entraRequiredRole",
        },
    )
    server = ServerConfig(
        auth_enabled=r.boolean(s, "authEnabled", "server.authEnabled", True),
        max_concurrent_requests=r.integer(s, "maxConcurrentRequests", "server.maxConcurrentRequests", 2, 1, 256),
        max_queue_wait_ms=r.integer(s, "maxQueueWaitMs", "server.maxQueueWaitMs", 1000, 0, 600_000),
        scoring_timeout_ms=r.integer(s, "scoringTimeoutMs", "server.scoringTimeoutMs", 1000, 1, 600_000),
        drain_seconds=r.integer(s, "drainSeconds", "server.drainSeconds", 20, 3, 120),
        entra_tenant_id=r.text(s, "entraTenantId", "server.entraTenantId", None, OBJECT_ID)
        if "entraTenantId" in s
        else None,
        entra_audience=r.text(s, "entraAudience", "server.entraAudience", None, r"\S{1,200}")
        if "entraAudience" in s
        else None,
        entra_required_role=r.text(s, "entraRequiredRole", "server.entraRequiredRole", None, r"[\w.-]{1,120}")
        if "entraRequiredRole" in s
        else None,
    )
    if (server.entra_tenant_id is None) != (server.entra_audience is None):
        raise r.fail("server.entraTenantId", "Entra ID tokens need both server.entraTenantId and server.entraAudience")

    azure = aci = aks = kubernetes = None
    if any(t in AZURE_TARGETS for t in targets):
        a = r.section("azure", {"location", "registrySku", "rbacWaitSeconds"})
        azure = AzureConfig(
            location=r.text(a, "location", "azure.location", None, r"[a-z0-9]{3,30}"),
            # Premium only buys geo-replication, private link and the like, none of which the stack sets up.
            registry_sku=r.text(
                a, "registrySku", "azure.registrySku", "Standard" if protect else "Basic", r"Basic|Standard|Premium"
            ),
            # Azure RBAC: "role assignment changes can take up to 10 minutes"; AKS RBAC: up to five.
            rbac_wait_seconds=r.integer(a, "rbacWaitSeconds", "azure.rbacWaitSeconds", 300, 0, 900),
        )
        provider_location = pulumi.Config("azure-native").get("location")
        if provider_location is None:
            raise _fail(
                stack, "azure-native:location", f"required; set it to {azure.location} (mlserve:azure.location)"
            )
        if provider_location != azure.location:
            raise _fail(
                stack,
                "azure-native:location",
                f"{provider_location} differs from mlserve:azure.location ({azure.location}); set both to one region",
            )
    elif config.get("azure") is not None:
        raise r.fail("azure", "set, but no Azure target (aci, aks) is in targets")
    if "aci" in targets:
        c = r.section("aci", {"cpu", "memoryGb", "dnsLabel", "domain"})
        aci = AciConfig(
            # A group gets at most 4 CPUs and 16 GB in most regions; the TLS proxy takes 0.5 of each.
            cpu=r.number(c, "cpu", "aci.cpu", 1, 0.1, 3.5),
            memory_gb=r.number(c, "memoryGb", "aci.memoryGb", 1, 0.5, 15.5),
            dns_label=r.text(c, "dnsLabel", "aci.dnsLabel", f"mlserve-{stack}", NAME) if "dnsLabel" in c else None,
            domain=r.text(c, "domain", "aci.domain", None, DOMAIN).lower() if "domain" in c else None,
        )
    if "aks" in targets:
        k = r.section(
            "aks",
            {
                "kubernetesVersion",
                "nodeVmSize",
                "minNodes",
                "maxNodes",
                "privateCluster",
                "networkPolicy",
                "authorizedIpRanges",
                "admins",
                "availabilityZones",
                "systemNodeVmSize",
                "domain",
                "tlsCertificate",
                "allowedSourceRanges",
                "istioRevisions",
                "dnsZoneId",
            },
        )
        ranges = _cidrs(r, k.get("authorizedIpRanges", []), "aks.authorizedIpRanges")
        sources = _cidrs(r, k.get("allowedSourceRanges", []), "aks.allowedSourceRanges")
        if "domain" not in k:
            raise r.fail(
                "aks.domain",
                "required: the endpoint's host name (e.g. rain.example.com); clients reach it over HTTPS through "
                "the cluster's Istio gateway, with the certificate in aks.tlsCertificate",
            )
        revisions = k.get("istioRevisions", [DEFAULT_ISTIO_REVISION])
        if (
            not isinstance(revisions, list)
            or not 1 <= len(revisions) <= 2
            or not all(isinstance(x, str) and re.fullmatch(r"asm-1-\d+", x) for x in revisions)
        ):
            raise r.fail(
                "aks.istioRevisions",
                f"expected one revision such as [{DEFAULT_ISTIO_REVISION}], or two consecutive ones during a canary "
                "upgrade (see `az aks mesh get-revisions`)",
            )
        zones = k.get("availabilityZones", ["1", "2", "3"] if protect else [])
        if not isinstance(zones, list) or not all(z in ("1", "2", "3") for z in zones) or len(set(zones)) != len(zones):
            raise r.fail("aks.availabilityZones", 'expected a list of distinct zones from "1", "2", "3" (quoted)')
        aks = AksConfig(
            kubernetes_version=r.text(
                k, "kubernetesVersion", "aks.kubernetesVersion", DEFAULT_KUBERNETES_VERSION, r"1\.\d{2}(\.\d+)?"
            ),
            node_vm_size=r.text(k, "nodeVmSize", "aks.nodeVmSize", "Standard_D2s_v5", r"Standard_[A-Za-z0-9_]+"),
            system_node_vm_size=r.text(
                k, "systemNodeVmSize", "aks.systemNodeVmSize", "Standard_D2s_v5", r"Standard_[A-Za-z0-9_]+"
            ),
            min_nodes=r.integer(k, "minNodes", "aks.minNodes", 2 if protect else 1, 1, 100),
            max_nodes=r.integer(k, "maxNodes", "aks.maxNodes", 4 if protect else 3, 1, 100),
            availability_zones=tuple(zones),
            private_cluster=r.boolean(k, "privateCluster", "aks.privateCluster", False),
            network_policy=r.text(k, "networkPolicy", "aks.networkPolicy", "azure", r"azure|calico|cilium"),
            authorized_ip_ranges=tuple(ranges),
            admins=_principals(r, k.get("admins"), "aks.admins"),
            domain=r.text(k, "domain", "aks.domain", None, DOMAIN).lower(),
            tls_certificate=_key_vault_certificate(r, k.get("tlsCertificate"), "aks.tlsCertificate"),
            allowed_source_ranges=sources,
            istio_revisions=tuple(revisions),
            dns_zone_id=r.text(k, "dnsZoneId", "aks.dnsZoneId", None, DNS_ZONE_ID) if "dnsZoneId" in k else None,
        )
        if aks.dns_zone_id is not None:
            zone = aks.dns_zone_id.rstrip("/").rsplit("/", 1)[-1].lower()
            if aks.domain != zone and not aks.domain.endswith("." + zone):
                raise r.fail("aks.dnsZoneId", f"the zone {zone} does not hold aks.domain ({aks.domain})")
        problem = kubernetes_version_problem(aks.kubernetes_version)
        if problem:
            raise r.fail("aks.kubernetesVersion", problem)
        if not aks.admins:
            raise r.fail(
                "aks.admins",
                "required: who administers the cluster through Azure RBAC, e.g. "
                "[{objectId: <Entra ID group object id>, type: Group}]; the deploy identity must be a member "
                "(bootstrap/ creates such a group and outputs its id)",
            )
        if aks.max_nodes < aks.min_nodes:
            raise r.fail("aks.maxNodes", f"{aks.max_nodes} is below aks.minNodes ({aks.min_nodes})")
        w = r.section(
            "kubernetes",
            {"namespace", "minReplicas", "maxReplicas", "targetCpuUtilization", "cpu", "memory", "serviceType"},
        )
        if "serviceType" in w:
            raise r.fail(
                "kubernetes.serviceType",
                "no longer a setting: the serving Service is internal (ClusterIP) and clients reach it over HTTPS "
                "through the Istio gateway (aks.domain); remove the key",
            )
        kubernetes = KubernetesConfig(
            namespace=r.text(w, "namespace", "kubernetes.namespace", "mlserve", NAME),
            min_replicas=r.integer(w, "minReplicas", "kubernetes.minReplicas", 1, 1, 100),
            max_replicas=r.integer(w, "maxReplicas", "kubernetes.maxReplicas", 3, 1, 100),
            target_cpu_utilization=r.integer(w, "targetCpuUtilization", "kubernetes.targetCpuUtilization", 70, 10, 95),
            cpu=r.text(w, "cpu", "kubernetes.cpu", "1", K8S_QUANTITY_CPU),
            memory=r.text(w, "memory", "kubernetes.memory", "1Gi", K8S_QUANTITY_MEMORY),
        )
        if kubernetes.cpu in ("0", "0m") or re.fullmatch(r"0+(\.0+)?", kubernetes.cpu):
            raise r.fail("kubernetes.cpu", "must be more than 0")
        if kubernetes.max_replicas < kubernetes.min_replicas:
            raise r.fail(
                "kubernetes.maxReplicas",
                f"{kubernetes.max_replicas} is below kubernetes.minReplicas ({kubernetes.min_replicas})",
            )
        if protect and kubernetes.min_replicas < 2:
            raise r.fail(
                "kubernetes.minReplicas",
                f"{kubernetes.min_replicas} in a protected stack: a node drain or upgrade with one replica is an "
                "outage; set 2 or more (pods spread across zones and nodes)",
            )
    else:
        for key in ("aks", "kubernetes"):
            if config.get(key) is not None:
                raise r.fail(key, "set, but aks is not in targets")
    if "aci" not in targets and config.get("aci") is not None:
        raise r.fail("aci", "set, but aci is not in targets")

    b = r.section("batch", {"enabled", "schedule", "input", "output"})
    batch = BatchConfig(
        enabled=r.boolean(b, "enabled", "batch.enabled", False),
        schedule=r.text(b, "schedule", "batch.schedule", "0 2 * * *", r"(\S+\s+){4}\S+"),
        input_blob=r.text(b, "input", "batch.input", "input/weather.csv", r"[A-Za-z0-9._/-]+\.(csv|parquet)"),
        output_blob=r.text(b, "output", "batch.output", "output/scored.csv", r"[A-Za-z0-9._/-]+\.(csv|parquet)"),
    )
    if batch.enabled and "aks" not in targets:
        raise r.fail("batch.enabled", "batch scoring runs on the AKS cluster: add aks to targets")

    sagemaker = _sagemaker(r, stack, protect=bool(protect)) if "sagemaker" in targets else None
    if sagemaker is not None and not pulumi.Config("aws").get("region"):
        raise _fail(stack, "aws:region", "required with the sagemaker target, e.g. eu-west-1 (ECR and the endpoint)")
    if sagemaker is None and config.get("sagemaker") is not None:
        raise r.fail("sagemaker", "set, but sagemaker is not in targets")

    o = r.section("observability", {"retentionDays", "alertEmail", "failureAlertPercent", "latencyAlertMs"})
    observability = ObservabilityConfig(
        retention_days=r.integer(o, "retentionDays", "observability.retentionDays", 30, 30, 730),
        failure_alert_percent=r.number(o, "failureAlertPercent", "observability.failureAlertPercent", 5, 0.1, 100),
        latency_alert_ms=r.integer(o, "latencyAlertMs", "observability.latencyAlertMs", 500, 1, 600_000),
        alert_email=r.text(o, "alertEmail", "observability.alertEmail", None, r"[^@\s]+@[^@\s]+\.[^@\s]+")
        if "alertEmail" in o
        else None,
    )

    return StackConfig(
        project=pulumi.get_project(),
        stack=stack,
        targets=targets,
        protect=bool(protect),
        model=model,
        server=server,
        azure=azure,
        aci=aci,
        aks=aks,
        kubernetes=kubernetes,
        batch=batch,
        observability=observability,
        sagemaker=sagemaker,
    )


SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
# Families with local NVMe instance storage besides the `<family><generation>[..]d` ones (m5d, c6id, g4dn...).
INSTANCE_STORAGE_FAMILIES = frozenset({"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"})


def has_instance_storage(instance_type: str) -> bool:
    """`ml.m5d.large` -> True: CreateEndpointConfig rejects a KmsKeyId for these (its API reference)."""
    family = instance_type.split(".")[1]
    return family in INSTANCE_STORAGE_FAMILIES or bool(re.fullmatch(r"[a-z]+\d+[a-z]*d[a-z]*", family))


def _sagemaker(r: _Reader, stack: str, protect: bool) -> SageMakerConfig:
    c = r.section(
        "sagemaker",
        {
            "mode",
            "endpointName",
            "memorySizeMb",
            "maxConcurrency",
            "instanceType",
            "instanceCount",
            "minCapacity",
            "maxCapacity",
            "targetInvocationsPerInstance",
            "scaleInCooldown",
            "scaleOutCooldown",
            "rollout",
            "modelDataUrl",
            "dataCapturePercent",
            "dataCaptureRetentionDays",
            "kmsKeyArn",
            "keepImages",
            "forceDeleteRepository",
        },
    )
    mode = r.text(c, "mode", "sagemaker.mode", "serverless", r"serverless|realtime")
    memory = r.integer(c, "memorySizeMb", "sagemaker.memorySizeMb", 2048, 1024, 6144)
    if memory not in SERVERLESS_MEMORY:
        raise r.fail(
            "sagemaker.memorySizeMb",
            f"{memory} is not a serverless size; use one of {', '.join(map(str, SERVERLESS_MEMORY))}",
        )
    instance_count = r.integer(c, "instanceCount", "sagemaker.instanceCount", 2, 1, 100)
    min_capacity = r.integer(c, "minCapacity", "sagemaker.minCapacity", instance_count, 1, 100)
    max_capacity = r.integer(c, "maxCapacity", "sagemaker.maxCapacity", max(4, min_capacity), 1, 100)
    if max_capacity < min_capacity:
        raise r.fail("sagemaker.maxCapacity", f"{max_capacity} is below sagemaker.minCapacity ({min_capacity})")
    if not min_capacity <= instance_count <= max_capacity:
        raise r.fail(
            "sagemaker.instanceCount",
            f"{instance_count} is outside sagemaker.minCapacity..maxCapacity ({min_capacity}..{max_capacity})",
        )
    if mode == "realtime" and protect and min_capacity < 2:
        raise r.fail(
            "sagemaker.minCapacity",
            "a protected (production) real-time endpoint needs at least 2 "
            "instances, so SageMaker spreads them across Availability Zones",
        )
    rollout_section = c.get("rollout", {})
    if not isinstance(rollout_section, dict):
        raise r.fail("sagemaker.rollout", "expected an object of settings")
    unknown = sorted(set(rollout_section) - {"type", "stepPercent", "waitSeconds", "latencyAlarmMs", "errorAlarmCount"})
    if unknown:
        raise r.fail(f"sagemaker.rollout.{unknown[0]}", "unknown setting")
    rollout = RolloutConfig(
        kind=r.text(rollout_section, "type", "sagemaker.rollout.type", "CANARY", r"CANARY|LINEAR|ALL_AT_ONCE"),
        step_percent=r.integer(rollout_section, "stepPercent", "sagemaker.rollout.stepPercent", 10, 1, 50),
        wait_seconds=r.integer(rollout_section, "waitSeconds", "sagemaker.rollout.waitSeconds", 300, 0, 3600),
        latency_alarm_ms=r.integer(
            rollout_section, "latencyAlarmMs", "sagemaker.rollout.latencyAlarmMs", 500, 1, 60_000
        ),
        error_alarm_count=r.integer(
            rollout_section, "errorAlarmCount", "sagemaker.rollout.errorAlarmCount", 1, 1, 10_000
        ),
    )
    if rollout.kind == "LINEAR" and rollout.step_percent < 10:
        # DeploymentConfig: a linear step is 10-50 % of capacity, a canary 1-50 %.
        raise r.fail("sagemaker.rollout.stepPercent", f"{rollout.step_percent}: a LINEAR step is 10..50 % of capacity")
    model_data_url = c.get("modelDataUrl")
    if model_data_url is not None and not (
        isinstance(model_data_url, str) and re.fullmatch(r"s3://[a-z0-9.-]{3,63}/\S+\.tar\.gz", model_data_url)
    ):
        raise r.fail("sagemaker.modelDataUrl", "expected s3://<bucket>/<key>.tar.gz")
    kms = c.get("kmsKeyArn")
    if kms is not None and not (
        isinstance(kms, str) and re.fullmatch(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/\S+", kms)
    ):
        raise r.fail("sagemaker.kmsKeyArn", "expected a KMS key ARN")
    capture = r.integer(c, "dataCapturePercent", "sagemaker.dataCapturePercent", 0, 0, 100)
    instance_type = r.text(c, "instanceType", "sagemaker.instanceType", "ml.m5.large", r"ml\.[a-z0-9-]+\.[a-z0-9]+")
    if mode == "serverless":
        # SageMaker developer guide, "Serverless Inference": feature exclusions.
        for key, used in (("dataCapturePercent", capture > 0), ("kmsKeyArn", kms is not None)):
            if used:
                raise r.fail(
                    f"sagemaker.{key}",
                    "serverless endpoints support neither data capture nor a KMS key; "
                    "remove it or set sagemaker.mode: realtime",
                )
    elif kms is not None and has_instance_storage(instance_type):
        raise r.fail(
            "sagemaker.kmsKeyArn",
            f"{instance_type} has local NVMe instance storage, which SageMaker encrypts itself and "
            "CreateEndpointConfig rejects a KmsKeyId for; remove the key or choose an instance type without a 'd' "
            "(e.g. ml.m5.large)",
        )
    return SageMakerConfig(
        mode=mode,
        endpoint_name=r.text(
            c, "endpointName", "sagemaker.endpointName", f"mlserve-{stack}", r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
        ),
        memory_size_mb=memory,
        max_concurrency=r.integer(c, "maxConcurrency", "sagemaker.maxConcurrency", 5, 1, 200),
        instance_type=instance_type,
        instance_count=instance_count,
        min_capacity=min_capacity,
        max_capacity=max_capacity,
        target_invocations_per_instance=r.integer(
            c, "targetInvocationsPerInstance", "sagemaker.targetInvocationsPerInstance", 200, 1, 100_000
        ),
        scale_in_cooldown=r.integer(c, "scaleInCooldown", "sagemaker.scaleInCooldown", 300, 0, 3600),
        scale_out_cooldown=r.integer(c, "scaleOutCooldown", "sagemaker.scaleOutCooldown", 60, 0, 3600),
        rollout=rollout,
        model_data_url=model_data_url,
        data_capture_percent=capture,
        data_capture_retention_days=r.integer(
            c, "dataCaptureRetentionDays", "sagemaker.dataCaptureRetentionDays", 90, 1, 3650
        ),
        kms_key_arn=kms,
        keep_images=r.integer(c, "keepImages", "sagemaker.keepImages", 10, 1, 1000),
        force_delete_repository=r.boolean(c, "forceDeleteRepository", "sagemaker.forceDeleteRepository", not protect),
    )
