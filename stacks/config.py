"""The only reader of the stack's settings: one pydantic model per `mlserve:` section, validated once, frozen.

Every problem in a stack file is reported at once, one line each, naming the key and the file
(`stacks/config_errors.py`). The server's own limits come from `serving.settings.Settings`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pulumi
from annotated_types import Ge, Le
from croniter import croniter
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic.alias_generators import to_camel

from serving.settings import MODEL_ID_PATTERN, Settings
from stacks.config_errors import Invalid, problems
from stacks.engine_config import namespace_values
from stacks.regions import aws_region_problem, azure_region_problem
from stacks.stack_file import stack_file_problems
from stacks.versions import DEFAULT_ISTIO_REVISION, DEFAULT_KUBERNETES_VERSION, kubernetes_version_problem

NAMESPACE = "mlserve"
TARGETS = ("aci", "aks", "sagemaker")
AZURE_TARGETS = ("aci", "aks")
PRINCIPAL_TYPES = ("Group", "User", "ServicePrincipal")
OBJECT_ID = r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"


class ConfigError(pulumi.RunError):
    """Bad stack settings. A RunError: `pulumi preview`/`up` show its message (a line per problem), no traceback."""


# Value types: each says what it accepts in words, for the error line.


def _quoted_bool(value: object) -> object:
    # `pulumi config set --path mlserve:server.authEnabled false` stores the string "false".
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


def _no_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {str(value).lower()}")
    return value


@dataclass(frozen=True)
class Within:
    """A range check; the reference pages (docs/) read its bounds."""

    low: float
    high: float

    def __call__(self, value: float) -> float:
        if not self.low <= value <= self.high:
            raise ValueError(f"{value:g} is out of range {self.low:g}..{self.high:g}")
        return value


def within(low: float, high: float) -> AfterValidator:
    return AfterValidator(Within(low, high))


@dataclass(frozen=True)
class Matching:
    """A pattern check that says what it wants in words; the reference pages show the words as the type."""

    pattern: str
    words: str
    flags: int = 0

    def __call__(self, value: str) -> str:
        if not re.fullmatch(self.pattern, value, self.flags):
            raise ValueError(f"{value!r} is not {self.words}")
        return value


def matching(pattern: str, words: str, flags: int = 0) -> AfterValidator:
    return AfterValidator(Matching(pattern, words, flags))


def setting_range(name: str) -> AfterValidator:
    """The bounds `serving.settings.Settings` puts on a field: the stack cannot allow what the server refuses."""
    metadata = Settings.model_fields[name].metadata
    low = next(m.ge for m in metadata if isinstance(m, Ge))
    high = next(m.le for m in metadata if isinstance(m, Le))
    return within(float(low), float(high))  # type: ignore[arg-type]


def _text(value: object) -> object:
    # `pulumi config set --path mlserve:model.version 2` stores a number.
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


Flag = Annotated[bool, BeforeValidator(_quoted_bool), Strict()]
Whole = Annotated[int, BeforeValidator(_no_bool)]
Number = Annotated[float, BeforeValidator(_no_bool)]
Text = Annotated[str, BeforeValidator(_text)]

NAME = r"[a-z0-9]([a-z0-9-]{0,40}[a-z0-9])?"
Name = Annotated[str, matching(NAME, "a name of lowercase letters, digits and '-' (at most 42)")]
Domain = Annotated[
    str,
    matching(
        r"(?=.{4,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}",
        "a DNS name such as rain.example.com",
    ),
    AfterValidator(str.lower),
]
CIDR = r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}/([12]?\d|3[0-2])"
Cidr = Annotated[str, matching(CIDR, "an IPv4 CIDR range such as 203.0.113.0/24")]
ObjectId = Annotated[str, matching(OBJECT_ID, "an Entra ID object id (a GUID)"), AfterValidator(str.lower)]
KEY_VAULT_ID = (
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[\w.()-]{1,90}"
    r"/providers/Microsoft\.KeyVault/vaults/[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]"
)
DNS_ZONE_ID = (
    r"/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[\w.()-]{1,90}/providers/Microsoft\.Network/"
    r"(?i:dnszones)/[A-Za-z0-9.-]{1,253}"
)
# What a Kubernetes CronJob takes (robfig/cron's standard parser): five fields, or one of these macros.
CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _schedule(value: str) -> str:
    fields = value.split()
    if value.strip() in CRON_MACROS:
        return value
    valid = len(fields) == 5 and croniter.is_valid(value) and not re.search(r"(^|[,-])7($|[,/-])", fields[4])
    if not valid:
        raise ValueError(
            f"{value!r} is not a schedule Kubernetes takes: five fields (minute 0-59, hour 0-23, day of month "
            f"1-31, month 1-12, day of week 0-6), e.g. '0 2 * * *', or one of {', '.join(CRON_MACROS)}"
        )
    return value


Schedule = Annotated[str, AfterValidator(_schedule)]


class Section(BaseModel):
    """A `mlserve:` section: camelCase keys as in the stack file, unknown keys refused, frozen once read."""

    # A field's docstring is its description: the reference pages (docs/) and "required" errors show it.
    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, use_attribute_docstrings=True)


def _context(info: ValidationInfo) -> dict[str, Any]:
    return info.context or {}


class ModelConfig(Section):
    name: Annotated[Text, matching(NAME, "a name of lowercase letters, digits and '-' (at most 42)")] = "weather-rain"
    """The model's name: image tag and labels, and the name every target's endpoint reports (`SERVING_MODEL_NAME`: v2
    routes, telemetry)."""
    version: Annotated[Text, matching(MODEL_ID_PATTERN, "a version such as 3 or 2026.11.1")] = "1"
    """The model's version: image tag, labels, tags, and the version the endpoint reports (`SERVING_MODEL_VERSION`)."""
    source: Annotated[Text, matching(r"\S.*", "a model source")] | None = None
    """The model to bake into the image (default: the bundled demo): a local `.onnx`, directory, `.tar.gz` or MLflow
    model directory (onnx flavor); `https://…`; `s3://…`; `az://…` / `abfs://…`; `models:/<name>/<version>` (MLflow
    registry, `MLFLOW_TRACKING_URI` from the environment). Fetched when the program runs into
    `~/.cache/mlserve/models/<sha256>/`
    (`MLSERVE_MODEL_CACHE`) and checked to be ONNX; a pickle is refused (convert it once with `python -m importer`). A
    local path must be committed for CI to find it. The cache remembers which sources each digest came from: a source
    changed under an unchanged `sha256` is fetched again and refused if its bytes differ. In CI the workflows keep the
    cache by the stack files' hash (`actions/cache`): the release job saves the model it fetched, so previews and
    deploys read it from there, and `up` still checks its digest."""
    sha256: Annotated[Text, matching(r"[0-9a-f]{64}", "a sha256 digest (64 lowercase hex digits)")] | None = None
    """sha256 of the `model.onnx` that ships (required in protected stacks): a mismatch stops the program, so a reviewed
    change pins exactly those bytes."""

    @model_validator(mode="after")
    def _pinned(self, info: ValidationInfo) -> ModelConfig:
        if self.sha256 is not None and self.source is None:
            raise Invalid("sha256", "set, but there is no mlserve:model.source to check it against")
        if _context(info).get("protect") and self.source is not None and self.sha256 is None:
            raise Invalid(
                "sha256",
                "required in a protected stack: the sha256 of the model.onnx that ships (`sha256sum model.onnx`, or "
                "the digest `pulumi preview` reports), so the reviewed change pins exactly those bytes",
            )
        return self


class ServerConfig(Section):
    """The serving container's limits; they reach it as SERVING_* environment variables."""

    auth_enabled: Flag = True
    """Generate two API keys and require them."""
    max_concurrent_requests: Annotated[Whole, setting_range("max_concurrent_requests")] = 2
    """Inferences running at once per worker (`SERVING_MAX_CONCURRENT_REQUESTS`)."""
    max_queue_wait_ms: Annotated[Whole, setting_range("max_queue_wait_ms")] = 1000
    """Longest wait for a thread before 503 (`SERVING_MAX_QUEUE_WAIT_MS`)."""
    scoring_timeout_ms: Annotated[Whole, setting_range("scoring_timeout_ms")] = 1000
    """Longest scoring time before 504 (`SERVING_SCORING_TIMEOUT_MS`)."""
    # The shutdown delay (2 s) plus the drain timeout the container gets after SIGTERM.
    drain_seconds: Annotated[Whole, within(3, 120)] = 20
    """Time the server gets after SIGTERM (a 2 s delay plus the drain); pods get 10 s more."""
    entra_tenant_id: Annotated[str, matching(OBJECT_ID, "an Entra ID tenant id (a GUID)")] | None = None
    """Also accept Microsoft Entra ID access tokens of this tenant (ACI, AKS; with `entraAudience`)."""
    entra_audience: Annotated[str, matching(r"\S{1,200}", "a token audience")] | None = None
    """The tokens' audience (with `entraTenantId`)."""
    entra_required_role: Annotated[str, matching(r"[\w.-]{1,120}", "an app role name")] | None = None
    """An app role the tokens must carry."""

    @model_validator(mode="after")
    def _entra_complete(self) -> ServerConfig:
        if (self.entra_tenant_id is None) != (self.entra_audience is None):
            raise Invalid("entraTenantId", "Entra ID tokens need both server.entraTenantId and server.entraAudience")
        return self

    def environment(self) -> dict[str, str]:
        return {
            "SERVING_MAX_CONCURRENT_REQUESTS": str(self.max_concurrent_requests),
            "SERVING_MAX_QUEUE_WAIT_MS": str(self.max_queue_wait_ms),
            "SERVING_SCORING_TIMEOUT_MS": str(self.scoring_timeout_ms),
            "SERVING_SHUTDOWN_DELAY_SECONDS": "2",
            "SERVING_DRAIN_TIMEOUT_SECONDS": str(self.drain_seconds - 2),
        }


class Principal(Section):
    """An Entra ID principal a role is assigned to; ARM checks `type` against the object."""

    object_id: ObjectId
    """The principal's Entra ID object id (a GUID)."""
    type: Literal["Group", "User", "ServicePrincipal"]
    """`Group`, `User` or `ServicePrincipal`."""


def _azure_region(value: str) -> str:
    problem = azure_region_problem(value)
    if problem:
        raise ValueError(problem)
    return value


class AzureConfig(Section):
    location: Annotated[
        str, matching(r"[a-z0-9]{3,30}", "an Azure region name such as westeurope"), AfterValidator(_azure_region)
    ] = Field(description="the Azure region, e.g. westeurope (the same as azure-native:location)")
    # Premium only buys geo-replication, private link and the like, none of which the stack sets up.
    registry_sku: Literal["Basic", "Standard", "Premium"]
    """Container Registry tier (default `Basic`, `Standard` if protected); `Premium` only for Premium features you add.
    """
    # Azure RBAC: "role assignment changes can take up to 10 minutes"; AKS RBAC: up to five.
    rbac_wait_seconds: Annotated[Whole, within(0, 900)] = 300
    """Wait after creating a role assignment that the same run relies on (Azure RBAC takes up to 10 minutes)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            return {"registrySku": "Standard" if _context(info).get("protect") else "Basic", **data}
        return data


class AciConfig(Section):
    # A group gets at most 4 CPUs and 16 GB in most regions; the TLS proxy takes 0.5 of each.
    cpu: Annotated[Number, within(0.1, 3.5)] = 1.0
    """Cores of the server (the TLS proxy adds 0.5; a group gets 4 in most regions)."""
    memory_gb: Annotated[Number, within(0.5, 15.5)] = 1.0
    """Memory of the server in GB (the proxy adds 0.5)."""
    dns_label: Name | None = None
    """DNS label (default `mlserve-<stack>-<model>`); the FQDN is `<label>.<hash>.<region>.azurecontainer.io` (output
    `aci_fqdn`)."""
    domain: Domain | None = Field(
        default=None, description="a custom host name (CNAME to the group's FQDN) the proxy gets a certificate for"
    )


class KeyVaultCertificate(Section):
    """A Key Vault certificate (RBAC permission model) for the endpoint's domain."""

    key_vault_id: Annotated[
        str,
        matching(
            KEY_VAULT_ID,
            "a Key Vault resource id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.KeyVault/"
            "vaults/<name>)",
            re.IGNORECASE,
        ),
    ] = Field(description="the vault's resource id")
    name: Annotated[str, matching(r"[0-9a-zA-Z-]{1,127}", "a Key Vault certificate name (letters, digits, -)")] = Field(
        description="the certificate's name in the vault"
    )


def _zones(value: object) -> object:
    if isinstance(value, list):
        return [str(z) if isinstance(z, int) and not isinstance(z, bool) else z for z in value]
    return value


def _distinct(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError(f"lists a value twice: {list(values)}")
    return values


def _istio_revisions(values: tuple[str, ...]) -> tuple[str, ...]:
    if not 1 <= len(values) <= 2 or not all(re.fullmatch(r"asm-1-\d+", v) for v in values):
        raise ValueError(
            f"expected one revision such as [{DEFAULT_ISTIO_REVISION}], or two consecutive ones during a canary "
            "upgrade (see `az aks mesh get-revisions`)"
        )
    return values


def _kubernetes_version(value: str) -> str:
    problem = kubernetes_version_problem(value)
    if problem:
        raise ValueError(problem)
    return value


VmSize = Annotated[str, matching(r"Standard_[A-Za-z0-9_]+", "an Azure VM size such as Standard_D2s_v5")]


class AksConfig(Section):
    kubernetes_version: Annotated[
        str,
        matching(r"1\.\d{2}(\.\d+)?", "a Kubernetes version such as 1.35"),
        AfterValidator(_kubernetes_version),
    ] = DEFAULT_KUBERNETES_VERSION
    """The version a new cluster starts on: one in `stacks/versions.py` whose AKS end of life has not passed."""
    node_vm_size: VmSize = "Standard_D2s_v5"
    """VM size of the user pool, where the workload runs."""
    system_node_vm_size: VmSize = "Standard_D2s_v5"
    """VM size of the system pool (1 to 3 nodes, 2 to 3 if protected)."""
    min_nodes: Annotated[Whole, within(1, 100)]
    """User pool autoscaler minimum (default 1, protected 2)."""
    max_nodes: Annotated[Whole, within(1, 100)]
    """User pool autoscaler maximum (default 3, protected 4)."""
    availability_zones: Annotated[
        tuple[Literal["1", "2", "3"], ...], BeforeValidator(_zones), AfterValidator(_distinct)
    ]
    """Zones of both pools (default none, `["1","2","3"]` if protected)."""
    private_cluster: Flag = False
    """Private API server (run Pulumi from inside the network)."""
    network_policy: Literal["azure", "calico", "cilium"] = "azure"
    """The network policy engine."""
    authorized_ip_ranges: tuple[Cidr, ...] = ()
    """CIDRs allowed to reach the API server (empty: any)."""
    admins: tuple[Principal, ...] = Field(
        min_length=1,
        description="who administers the cluster through Azure RBAC, e.g. [{objectId: <Entra ID group object id>, "
        "type: Group}]; the deploy identity must be a member (bootstrap/ creates such a group and outputs its id)",
    )
    domain: Domain = Field(
        description="the endpoint's host name (e.g. rain.example.com); clients reach it over HTTPS through the "
        "cluster's Istio gateway, with the certificate in aks.tlsCertificate"
    )
    tls_certificate: KeyVaultCertificate = Field(
        description="the Key Vault certificate for aks.domain, {keyVaultId: /subscriptions/<id>/resourceGroups/"
        "<group>/providers/Microsoft.KeyVault/vaults/<name>, name: <certificate name>}"
    )
    allowed_source_ranges: tuple[Cidr, ...] = ()
    """CIDRs that may connect to the endpoint on 80/443 (empty: anyone)."""
    istio_revisions: Annotated[tuple[str, ...], AfterValidator(_istio_revisions)] = (DEFAULT_ISTIO_REVISION,)
    """Istio add-on revision; two consecutive ones during a canary upgrade (`az aks mesh get-revisions -l <region>`)."""
    dns_zone_id: Annotated[str, matching(DNS_ZONE_ID, "an Azure DNS zone resource id")] | None = None
    """An Azure DNS zone holding `aks.domain`: the program keeps its A record on the gateway's address (needs `kubectl`
    where Pulumi runs)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            protect = _context(info).get("protect")
            defaults = {"minNodes": 2, "maxNodes": 4, "availabilityZones": ["1", "2", "3"]} if protect else {}
            return {"minNodes": 1, "maxNodes": 3, "availabilityZones": [], **defaults, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AksConfig:
        if self.max_nodes < self.min_nodes:
            raise Invalid("maxNodes", f"{self.max_nodes} is below aks.minNodes ({self.min_nodes})")
        if self.dns_zone_id is not None:
            zone = self.dns_zone_id.rstrip("/").rsplit("/", 1)[-1].lower()
            if self.domain != zone and not self.domain.endswith("." + zone):
                raise Invalid("dnsZoneId", f"the zone {zone} does not hold aks.domain ({self.domain})")
        return self


def _positive_cpu(value: str) -> str:
    if re.fullmatch(r"0+(\.0+)?|0+m", value):
        raise ValueError("must be more than 0")
    return value


class KubernetesConfig(Section):
    namespace: Name = "mlserve"
    """Namespace of the workload."""
    min_replicas: Annotated[Whole, within(1, 100)] = 1
    """HPA minimum (protected stacks: 2 or more)."""
    max_replicas: Annotated[Whole, within(1, 100)] = 3
    """HPA maximum."""
    target_cpu_utilization: Annotated[Whole, within(10, 95)] = 70
    """HPA CPU target, in %."""
    cpu: Annotated[
        Text, matching(r"\d+(\.\d+)?|\d+m", "a CPU quantity such as 1, 0.5 or 500m"), AfterValidator(_positive_cpu)
    ] = "1"
    """CPU request and limit per pod."""
    memory: Annotated[str, matching(r"\d+(Mi|Gi)", "a memory quantity such as 512Mi or 1Gi")] = "1Gi"
    """Memory request and limit per pod."""

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> KubernetesConfig:
        if self.max_replicas < self.min_replicas:
            raise Invalid("maxReplicas", f"{self.max_replicas} is below kubernetes.minReplicas ({self.min_replicas})")
        if _context(info).get("protect") and self.min_replicas < 2:
            raise Invalid(
                "minReplicas",
                f"{self.min_replicas} in a protected stack: a node drain or upgrade with one replica is an outage; "
                "set 2 or more (pods spread across zones and nodes)",
            )
        return self


Blob = Annotated[str, matching(r"[A-Za-z0-9._/-]+\.(csv|parquet)", "a blob path ending in .csv or .parquet")]


class BatchConfig(Section):
    enabled: Flag = False
    """Nightly batch scoring on the AKS cluster."""
    schedule: Schedule = "0 2 * * *"
    """CronJob schedule as Kubernetes takes it: five fields (day of week 0 to 6) or `@hourly`, `@daily`, `@midnight`,
    `@weekly`, `@monthly`, `@yearly`, `@annually`."""
    input_blob: Blob = Field(default="input/weather.csv", alias="input")
    """Input blob in the stack's `batch` container."""
    output_blob: Blob = Field(default="output/scored.csv", alias="output")
    """Output blob in the stack's `batch` container."""


class RolloutConfig(Section):
    kind: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = Field(default="CANARY", alias="type")
    """How a new model reaches the endpoint: `CANARY`, `LINEAR` or `ALL_AT_ONCE`."""
    step_percent: Annotated[Whole, within(1, 50)] = 10
    """Canary size (1 to 50) or linear step (10 to 50), in % of capacity."""
    wait_seconds: Annotated[Whole, within(0, 3600)] = 300
    """Wait between traffic shifts."""
    latency_alarm_ms: Annotated[Whole, within(1, 60_000)] = 500
    """p99 `ModelLatency` that triggers a rollback."""
    error_alarm_count: Annotated[Whole, within(1, 10_000)] = 1
    """5xx answers per minute (for 2 minutes) that trigger a rollback."""

    @model_validator(mode="after")
    def _linear_step(self) -> RolloutConfig:
        if self.kind == "LINEAR" and self.step_percent < 10:
            # DeploymentConfig: a linear step is 10-50 % of capacity, a canary 1-50 %.
            raise Invalid("stepPercent", f"{self.step_percent}: a LINEAR step is 10..50 % of capacity")
        return self


SERVERLESS_MEMORY = (1024, 2048, 3072, 4096, 5120, 6144)
# Families with local NVMe instance storage besides the `<family><generation>[..]d` ones (m5d, c6id, g4dn...).
INSTANCE_STORAGE_FAMILIES = frozenset({"g5", "g6", "g6e", "p5", "p5e", "p5en", "trn1", "trn1n", "trn2"})


def has_instance_storage(instance_type: str) -> bool:
    """`ml.m5d.large` -> True: CreateEndpointConfig rejects a KmsKeyId for these (its API reference)."""
    family = instance_type.split(".")[1]
    return family in INSTANCE_STORAGE_FAMILIES or bool(re.fullmatch(r"[a-z]+\d+[a-z]*d[a-z]*", family))


def _serverless_memory(value: int) -> int:
    if value not in SERVERLESS_MEMORY:
        raise ValueError(f"{value} is not a serverless size; use one of {', '.join(map(str, SERVERLESS_MEMORY))}")
    return value


class SageMakerConfig(Section):
    mode: Literal["serverless", "realtime"] = "serverless"
    """`serverless` (scales to zero) or `realtime` (instances, autoscaling, canary rollouts)."""
    endpoint_name: Annotated[
        str, matching(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", "an endpoint name (letters, digits, -; at most 63)")
    ]
    """Endpoint name (default `mlserve-<stack>`): a stable invoke URL."""
    memory_size_mb: Annotated[Whole, AfterValidator(_serverless_memory)] = 2048
    """Serverless memory: 1024 to 6144 in steps of 1024 (serverless only)."""
    max_concurrency: Annotated[Whole, within(1, 200)] = 5
    """Serverless maximum concurrency (serverless only)."""
    instance_type: Annotated[str, matching(r"ml\.[a-z0-9-]+\.[a-z0-9]+", "an instance type such as ml.m5.large")] = (
        "ml.m5.large"
    )
    """Real-time instance type."""
    instance_count: Annotated[Whole, within(1, 100)] = 2
    """Initial real-time instances (a protected stack needs 2 or more)."""
    min_capacity: Annotated[Whole, within(1, 100)]
    """Autoscaling minimum (default: `instanceCount`)."""
    max_capacity: Annotated[Whole, within(1, 100)]
    """Autoscaling maximum (default: the larger of 4 and `minCapacity`)."""
    target_invocations_per_instance: Annotated[Whole, within(1, 100_000)] = 200
    """Target tracking value: invocations per instance and minute."""
    scale_in_cooldown: Annotated[Whole, within(0, 3600)] = 300
    """Autoscaling scale-in cooldown, seconds."""
    scale_out_cooldown: Annotated[Whole, within(0, 3600)] = 60
    """Autoscaling scale-out cooldown, seconds."""
    rollout: RolloutConfig = RolloutConfig()
    """Blue/green rollouts of a new model on real-time endpoints (`sagemaker.rollout.*`)."""
    model_data_url: (
        Annotated[str, matching(r"s3://[a-z0-9.-]{3,63}/\S+\.tar\.gz", "s3://<bucket>/<key>.tar.gz")] | None
    ) = None
    """A model artifact (`s3://…tar.gz`) instead of the model baked into the image; SageMaker unpacks it to
    `/opt/ml/model`."""
    data_capture_percent: Annotated[Whole, within(0, 100)] = 0
    """Data capture sampling, in % (0: off; real-time only)."""
    data_capture_retention_days: Annotated[Whole, within(1, 3650)] = 90
    """Captured data expires after this many days."""
    kms_key_arn: Annotated[str, matching(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/\S+", "a KMS key ARN")] | None = (
        None
    )
    """Your KMS key for ECR, instance volumes and captured data (real-time only; not with NVMe instance types). Unset, a
    real-time stack creates its own customer-managed key (rotated yearly); serverless endpoints use AWS-owned keys."""
    keep_images: Annotated[Whole, within(1, 1000)] = 10
    """Images the ECR lifecycle policy keeps."""
    force_delete_repository: Flag
    """Let `pulumi destroy` delete a repository that still holds images (default: true unless protected)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        context = _context(info)
        count = data.get("instanceCount", 2)
        data = {"minCapacity": count, **data} if isinstance(count, int) else data
        low = data.get("minCapacity", 1)
        data = {"maxCapacity": max(4, low), **data} if isinstance(low, int) else data
        return {
            "endpointName": f"mlserve-{context.get('stack', 'stack')}",
            "forceDeleteRepository": not context.get("protect"),
            **data,
        }

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> SageMakerConfig:
        if self.max_capacity < self.min_capacity:
            raise Invalid("maxCapacity", f"{self.max_capacity} is below sagemaker.minCapacity ({self.min_capacity})")
        if not self.min_capacity <= self.instance_count <= self.max_capacity:
            raise Invalid(
                "instanceCount",
                f"{self.instance_count} is outside sagemaker.minCapacity..maxCapacity "
                f"({self.min_capacity}..{self.max_capacity})",
            )
        if self.mode == "realtime" and _context(info).get("protect") and self.min_capacity < 2:
            raise Invalid(
                "minCapacity",
                "a protected (production) real-time endpoint needs at least 2 instances, so SageMaker spreads them "
                "across Availability Zones",
            )
        leftover = [to_camel(f) for f in ("memory_size_mb", "max_concurrency") if f in self.model_fields_set]
        if self.mode == "realtime" and leftover:
            message = (
                "a serverless setting, which a realtime endpoint does not use; remove it (or set mode: serverless)"
            )
            raise Invalid(leftover[0], message, *((key, message) for key in leftover[1:]))
        if self.mode == "serverless":
            # SageMaker developer guide, "Serverless Inference": feature exclusions.
            for key, used in (("dataCapturePercent", self.data_capture_percent > 0), ("kmsKeyArn", self.kms_key_arn)):
                if used:
                    raise Invalid(
                        key,
                        "serverless endpoints support neither data capture nor a KMS key; remove it or set "
                        "sagemaker.mode: realtime",
                    )
        elif self.kms_key_arn is not None and has_instance_storage(self.instance_type):
            raise Invalid(
                "kmsKeyArn",
                f"{self.instance_type} has local NVMe instance storage, which SageMaker encrypts itself and "
                "CreateEndpointConfig rejects a KmsKeyId for; remove the key or choose an instance type without a "
                "'d' (e.g. ml.m5.large)",
            )
        return self


class ObservabilityConfig(Section):
    retention_days: Annotated[Whole, within(30, 730)] = 30
    """Log Analytics retention, days."""
    alert_email: Annotated[str, matching(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address")] | None = None
    """Receives the Azure alerts (action group) and the SageMaker alarms (SNS topic: confirm the e-mail AWS sends)."""
    failure_alert_percent: Annotated[Number, within(0.1, 100)] = 5.0
    """Azure alert: share of requests answered 5xx in 5 minutes, in %."""
    latency_alert_ms: Annotated[Whole, within(1, 600_000)] = 500
    """Azure alert: p99 request duration over 5 minutes, in ms."""


def _targets(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise ValueError(f"expected a non-empty list of {', '.join(TARGETS)}")
    unknown = [t for t in values if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown target {unknown[0]!r}; choose from {', '.join(TARGETS)}")
    return _distinct(values)


class StackConfig(Section):
    """Everything under `mlserve:` in a stack file. Sections of targets not in `targets` must not be set."""

    targets: Annotated[tuple[str, ...], AfterValidator(_targets)] = Field(
        description=f"a list of the targets to deploy, e.g. [aci]; choose from {', '.join(TARGETS)}"
    )
    protect: Flag = False
    """Protect stateful resources (registry, cluster, storage, key) from deletion; stricter rules apply."""
    model: ModelConfig = ModelConfig()
    """The model that ships (`model.*`)."""
    server: ServerConfig = ServerConfig()
    """The serving container's limits and authentication (`server.*`)."""
    azure: AzureConfig | None = None
    """Azure settings, with an Azure target (`aci`, `aks`)."""
    aci: AciConfig | None = None
    """Azure Container Instances, with the `aci` target."""
    aks: AksConfig | None = None
    """The AKS cluster, with the `aks` target."""
    kubernetes: KubernetesConfig | None = None
    """The workload on the AKS cluster, with the `aks` target."""
    batch: BatchConfig = BatchConfig()
    """Nightly batch scoring (AKS)."""
    observability: ObservabilityConfig = ObservabilityConfig()
    """Logs, alerts and alarms."""
    sagemaker: SageMakerConfig | None = None
    """The SageMaker endpoint, with the `sagemaker` target."""
    _project: str = PrivateAttr(default="")
    _stack: str = PrivateAttr(default="")

    @model_validator(mode="before")
    @classmethod
    def _sections_of_targets(cls, data: Any) -> Any:
        """A target's section is read (its defaults applied) even when the stack file leaves it out; the section
        of a target not in `targets` is refused before its contents are checked."""
        targets = data.get("targets") if isinstance(data, dict) else None
        if not isinstance(targets, list) or not targets or not set(targets) <= set(TARGETS):
            return data  # the targets' own error says what to fix first
        owners = {
            "azure": ("an Azure target (aci, aks)", any(t in AZURE_TARGETS for t in targets)),
            "aci": ("aci", "aci" in targets),
            "aks": ("aks", "aks" in targets),
            "kubernetes": ("aks", "aks" in targets),
            "sagemaker": ("sagemaker", "sagemaker" in targets),
        }
        unwanted = [
            (s, f"set, but {target} is not in targets")
            for s, (target, wanted) in owners.items()
            if s in data and not wanted
        ]
        if unwanted:
            raise Invalid(*unwanted[0], *unwanted[1:])
        return {**{section: {} for section, (_, wanted) in owners.items() if wanted}, **data}

    @model_validator(mode="after")
    def _batch_on_aks(self) -> StackConfig:
        if self.batch.enabled and "aks" not in self.targets:
            raise Invalid("batch.enabled", "batch scoring runs on the AKS cluster: add aks to targets")
        return self

    @property
    def project(self) -> str:
        return self._project

    @property
    def stack(self) -> str:
        return self._stack

    @property
    def uses_azure(self) -> bool:
        return any(t in AZURE_TARGETS for t in self.targets)

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


def parse(values: dict[str, Any], stack: str, project: str = "mlserve") -> StackConfig:
    """The `mlserve:` values of `Pulumi.<stack>.yaml`, validated; a ConfigError lists every problem."""
    try:
        protect = TypeAdapter(Flag).validate_python(values.get("protect", False))
    except ValidationError:
        protect = False  # reported with the rest below
    try:
        config = StackConfig.model_validate(values, context={"stack": stack, "protect": protect})
    except ValidationError as error:
        raise ConfigError("\n".join(problems(error, StackConfig, NAMESPACE, f"Pulumi.{stack}.yaml"))) from None
    config._project, config._stack = project, stack
    return config


def provider_problems(config: StackConfig) -> list[str]:
    """The provider settings the targets need, and that agree with ours."""
    stack_file = f"Pulumi.{config.stack}.yaml"
    found = []
    if config.azure is not None:
        location = pulumi.Config("azure-native").get("location")
        if location is None:
            found.append(
                f"azure-native:location in {stack_file}: required; set it to {config.azure.location} "
                "(mlserve:azure.location)"
            )
        elif location != config.azure.location:
            found.append(
                f"azure-native:location in {stack_file}: {location} differs from mlserve:azure.location "
                f"({config.azure.location}); set both to one region"
            )
    region = pulumi.Config("aws").get("region")
    if config.sagemaker is not None and not region:
        found.append(
            f"aws:region in {stack_file}: required with the sagemaker target, e.g. eu-west-1 (ECR and the endpoint)"
        )
    elif config.sagemaker is not None and region and (problem := aws_region_problem(region)):
        found.append(f"aws:region in {stack_file}: {problem}")
    return found


def load_config() -> StackConfig:
    """The running stack's settings, or a ConfigError naming every bad key at once."""
    values = namespace_values(NAMESPACE)
    if "targets" not in values:  # often not a missing key but a stack file of the wrong shape: say which
        shape = stack_file_problems(
            Path(pulumi.runtime.get_root_directory()) / f"Pulumi.{pulumi.get_stack()}.yaml", NAMESPACE
        )
        if shape:
            raise ConfigError("\n".join(shape))
    config = parse(values, pulumi.get_stack(), pulumi.get_project())
    found = provider_problems(config)
    if found:
        raise ConfigError("\n".join(found))
    return config
