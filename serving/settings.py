"""Server settings: flags and `SERVING_*` environment variables, validated once at start."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serving.flags import SERVE_FLAGS, flag

# What workers use without pydantic (serving/worker_settings.py), here too for everything else.
from serving.worker_settings import connection_limit as connection_limit
from serving.worker_settings import container_cpu_count as container_cpu_count
from serving.worker_settings import inline_scoring_budget_us as inline_scoring_budget_us
from serving.worker_settings import plain

BUNDLED_MODEL = Path(__file__).resolve().parent / "model"
SAGEMAKER_MODEL_DIR = Path("/opt/ml/model")
SAGEMAKER_REALTIME_PAYLOAD_LIMIT = 6 * 1024 * 1024


# A model's name or version, in URLs and metadata (the stack's mlserve:model.version too).
MODEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"


def default_model_location() -> Path:
    """Where the platforms put the model: SageMaker, then Azure ML, then the bundled demo."""
    if sm_dir := os.environ.get("SM_MODEL_DIR"):
        return Path(sm_dir)
    if SAGEMAKER_MODEL_DIR.is_dir() and any(SAGEMAKER_MODEL_DIR.iterdir()):
        return SAGEMAKER_MODEL_DIR
    if azureml_dir := os.environ.get("AZUREML_MODEL_DIR"):
        return Path(azureml_dir)
    return BUNDLED_MODEL


class Settings(BaseSettings):
    """Everything the server can be told. Each field is `SERVING_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="SERVING_", extra="ignore", frozen=True)

    model: Path = Field(
        default_factory=default_model_location,
        description="ONNX file, or a directory holding model.onnx (or exactly one *.onnx, searched recursively, for "
        "Azure ML's <name>/<version>/ layout). Default: $SM_MODEL_DIR, else /opt/ml/model if not empty, else "
        "$AZUREML_MODEL_DIR, else the bundled demo.",
    )
    model_name: str | None = Field(
        default=None,
        pattern=MODEL_ID_PATTERN,
        description="Name in URLs and metadata; default: the model's metadata, else the file name.",
    )
    model_version: str | None = Field(
        default=None,
        pattern=MODEL_ID_PATTERN,
        description="Version in metadata; default: the model's metadata, else '1'.",
    )
    host: str = Field(default="0.0.0.0", description="Address to bind.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port to listen on (SageMaker requires 8080).")
    workers: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="Worker processes, each loading its own copy of the model. Default: the CPUs the container may use "
        "(affinity, capped by the cgroup CPU quota).",
    )
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated keys, primary first; empty disables auth.",
    )
    max_body_bytes: int = Field(
        default=SAGEMAKER_REALTIME_PAYLOAD_LIMIT,
        ge=1024,
        description="Largest request body (default: SageMaker's real-time limit, 6 MB); more is answered 413.",
    )
    max_concurrent_requests: int = Field(default=2, ge=1, le=256, description="Inferences running at once per worker.")
    max_queue_size: int = Field(default=100, ge=0, le=10_000, description="Requests waiting for a slot per worker.")
    max_queue_wait_ms: int = Field(
        default=1000, ge=0, le=600_000, description="Longest wait for a slot before 503 (Azure's maxQueueWaitMs)."
    )
    scoring_timeout_ms: int = Field(
        default=1000, ge=1, le=600_000, description="Longest scoring time before 504 (Azure's scoringTimeoutMs)."
    )
    shutdown_delay_seconds: float = Field(
        default=2.0, ge=0, le=60, description="After SIGTERM: not ready, still serving, so load balancers notice."
    )
    drain_timeout_seconds: float = Field(
        default=20.0, ge=0, le=300, description="Then: time for in-flight requests to finish before exit."
    )
    inline_scoring_budget_us: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="Score on the event loop when the estimate (from warm-up) is under this; 0: always use threads. "
        "Default: 500 when a worker has cores to spare for its threads, 3000 when it has not (one worker per core).",
    )
    entra_tenant_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$",
        description="Accept Microsoft Entra ID access tokens from this tenant (with SERVING_ENTRA_AUDIENCE).",
    )
    entra_audience: str | None = Field(default=None, min_length=1, description="The tokens' audience (aud).")
    entra_required_role: str | None = Field(default=None, min_length=1, description="An app role tokens must carry.")
    entra_jwks_url: str | None = Field(default=None, description="Signing keys; default: the tenant's.")
    header_timeout_seconds: float = Field(
        default=10.0, gt=0, le=300, description="A connection must send a request's headers within this (else 408)."
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Then the whole body within this (else 408); 30 s lets a 6 MB body come at 200 KB/s.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=8 * 1024,
        le=16 * 1024 * 1024,
        description="Request line and headers of one request, in bytes; more: 431 and the connection closed.",
    )
    max_header_count: int = Field(
        default=100, ge=16, le=10_000, description="Header lines in one request; more is answered 431."
    )
    keep_alive_timeout_seconds: float = Field(
        default=5.0, gt=0, le=300, description="An idle kept-alive connection is closed after this."
    )
    max_connections: int | None = Field(
        default=None,
        ge=1,
        le=1_000_000,
        description="Open connections per worker; more are answered 503 at once. Default: the open-file limit less 64.",
    )
    max_buffered_body_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Request bodies held in memory at once per worker; a body beyond it is answered 503.",
    )
    access_log: bool = Field(default=True, description="One JSON line per request on stdout.")
    applicationinsights_connection_string: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "APPLICATIONINSIGHTS_CONNECTION_STRING", "SERVING_APPLICATIONINSIGHTS_CONNECTION_STRING"
        ),
        description="Application Insights: send request telemetry and exceptions (the variable Azure sets).",
    )
    telemetry_requests_per_second: float = Field(
        default=5.0,
        ge=0,
        le=10_000,
        description="Most requests a second and worker sent to Application Insights (sampled; counts stay right).",
    )
    capture_percent: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="Payload capture: the share of scored requests written to blob storage, in percent; 0: off.",
    )
    capture_exclude: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated input columns never captured (personal data); each must be a model column.",
    )
    capture_account_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The blob endpoint (https://<account>.blob.core.windows.net), reached with the managed identity.",
    )
    capture_connection_string: SecretStr | None = Field(
        default=None, description="Instead of the account URL, for local runs and tests (Azurite): a connection string."
    )
    capture_container: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
        description="The blob container captured records go to (3-63 lowercase letters, digits, single hyphens).",
    )
    capture_prefix: str = Field(
        default="capture",
        pattern=r"^([A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*)?$",
        description="Blob names start <prefix>/<endpoint>/<model version>/YYYY/MM/DD/HH/, as SageMaker's capture.",
    )
    capture_endpoint: str | None = Field(
        default=None, pattern=MODEL_ID_PATTERN, description="The endpoint's name in blob names; default: the model's."
    )
    capture_batch_records: int = Field(default=1000, ge=1, le=100_000, description="Most records in one blob.")
    capture_batch_seconds: float = Field(
        default=10.0, gt=0, le=3600, description="Pending records are uploaded at least this often."
    )
    capture_max_pending_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=64 * 1024,
        description="Records held per worker while waiting or failing to upload; beyond it new ones are dropped.",
    )
    metrics_dir: str | None = Field(
        default=None,
        description="With several workers: where they share metrics (a private directory is made in it); "
        "default: the system's temporary directory.",
    )
    max_rows: int = Field(default=10_000, ge=1, description="Most rows per request; more is answered 400.")
    intra_op_threads: int = Field(default=1, ge=0, description="onnxruntime threads per inference; 0 lets it decide.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="Log level.")

    @model_validator(mode="after")
    def _entra_complete(self) -> Settings:
        if (self.entra_tenant_id is None) != (self.entra_audience is None):
            raise ValueError("Entra ID tokens need both SERVING_ENTRA_TENANT_ID and SERVING_ENTRA_AUDIENCE")
        return self

    @model_validator(mode="after")
    def _capture_has_a_store(self) -> Settings:
        if self.capture_percent > 0 and not (
            self.capture_container and (self.capture_account_url or self.capture_connection_string)
        ):
            raise ValueError(
                "capture is on (SERVING_CAPTURE_PERCENT > 0) but has nowhere to write: set SERVING_CAPTURE_CONTAINER "
                "and SERVING_CAPTURE_ACCOUNT_URL (or SERVING_CAPTURE_CONNECTION_STRING), or set the percent to 0"
            )
        return self

    @field_validator("capture_container")
    @classmethod
    def _container_name(cls, name: str | None) -> str | None:
        if name is not None and "--" in name:
            raise ValueError(f"{name!r}: Azure refuses consecutive hyphens in a container name")
        return name

    @field_validator("capture_exclude", mode="before")
    @classmethod
    def _split_columns(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(name.strip() for name in value.split(",") if name.strip())
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(key.strip() for key in value.split(",") if key.strip())
        return value

    @field_validator("api_keys")
    @classmethod
    def _keys_are_strong(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for position, key in enumerate(keys, start=1):
            if len(key.get_secret_value()) < 16:
                raise ValueError(f"API key #{position} is shorter than 16 characters")
        return keys


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, and from files in SERVING_SECRETS_DIR when it is set.

    A file there named like a variable (e.g. SERVING_API_KEYS) provides that setting, so keys can come
    from a mounted Kubernetes Secret instead of the environment.
    """
    secrets_dir = os.environ.get("SERVING_SECRETS_DIR")
    if secrets_dir:
        return Settings(_secrets_dir=secrets_dir, **overrides)
    return Settings(**overrides)


def handed_over(settings: Settings) -> dict[str, Any]:
    """The validated settings as plain values (secrets as serving.worker_settings.Secret), for the workers."""
    return {name: plain(getattr(settings, name)) for name in Settings.model_fields}


def describe_settings_error(error: ValidationError) -> str:
    """One line per invalid setting, naming the variable (and its flag, where there is one)."""
    lines = []
    for item in error.errors():
        field = ".".join(str(p) for p in item["loc"])
        named = f" ({flag(field)})" if field in SERVE_FLAGS else ""
        # A validator's own message comes as "Value error, <message>": the prefix says nothing to a user.
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"invalid setting SERVING_{field.upper()}{named}: {message}")
    return "\n".join(lines)
