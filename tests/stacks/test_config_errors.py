"""Bad stack config stops the program with a message naming the key and the stack file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

from offline.mocks import REPO, evaluate, merged, stack_config
from serving.settings import Settings
from stacks.config import ConfigError, parse

KMS = "arn:aws:kms:eu-west-1:123456789012:key/0000"
GUID = "5f0c6a4e-8d2b-4b8e-9a51-3c7f2e1d0b9a"


def without(stack: str, key: str, *names: str) -> dict[str, Any]:
    return {k: v for k, v in merged(stack, key, {}).items() if k not in names}


VAULT = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/certs/providers/Microsoft.KeyVault/vaults/kv1"
)

CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str]] = [
    (
        "dev",
        {"mlserve:aci": {"domain": "not a domain"}},
        (),
        "mlserve:aci.domain in Pulumi.dev.yaml: 'not a domain' is not a DNS name such as rain.example.com",
    ),
    (
        "prod",
        {"mlserve:aks": without("prod", "mlserve:aks", "domain")},
        (),
        "mlserve:aks.domain in Pulumi.prod.yaml: required: the endpoint's host name",
    ),
    (
        "prod",
        {"mlserve:aks": without("prod", "mlserve:aks", "tlsCertificate")},
        (),
        "mlserve:aks.tlsCertificate in Pulumi.prod.yaml: required: the Key Vault certificate",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"tlsCertificate": {"keyVaultId": "kv1", "name": "c"}})},
        (),
        "mlserve:aks.tlsCertificate.keyVaultId in Pulumi.prod.yaml: 'kv1' is not a Key Vault resource id",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"tlsCertificate": {"keyVaultId": VAULT, "name": "a.b"}})},
        (),
        "mlserve:aks.tlsCertificate.name in Pulumi.prod.yaml: 'a.b' is not a Key Vault certificate name",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"allowedSourceRanges": ["203.0.113.0/33"]})},
        (),
        "mlserve:aks.allowedSourceRanges[0] in Pulumi.prod.yaml: '203.0.113.0/33' is not an IPv4 CIDR range",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"istioRevisions": ["1.30"]})},
        (),
        "mlserve:aks.istioRevisions in Pulumi.prod.yaml: expected one revision such as [asm-1-30]",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"serviceType": "LoadBalancer"})},
        (),
        "mlserve:kubernetes.serviceType in Pulumi.prod.yaml: no longer a setting: the serving Service is internal",
    ),
    ("dev", {"mlserve:replicas": 3}, (), "mlserve:replicas in Pulumi.dev.yaml: unknown key"),
    ("dev", {"mlserve:targets": ["aci", "gke"]}, (), "mlserve:targets in Pulumi.dev.yaml: unknown target 'gke'"),
    ("dev", {"mlserve:targets": []}, (), "mlserve:targets in Pulumi.dev.yaml: expected a non-empty list"),
    ("dev", {"mlserve:targets": "aci"}, (), "mlserve:targets in Pulumi.dev.yaml"),
    ("dev", {"mlserve:aci": {"cpu": 0, "memoryGb": 1}}, (), "mlserve:aci.cpu in Pulumi.dev.yaml: 0 is out of range"),
    (
        "dev",
        {"mlserve:aci": {"cpu": 1, "memoryGb": "lots"}},
        (),
        "mlserve:aci.memoryGb in Pulumi.dev.yaml: expected a number, got 'lots'",
    ),
    ("dev", {"mlserve:aci": {"gpu": 1}}, (), "mlserve:aci.gpu in Pulumi.dev.yaml: unknown setting"),
    (
        "dev",
        {"mlserve:server": {"maxConcurrentRequests": 0}},
        (),
        "mlserve:server.maxConcurrentRequests in Pulumi.dev.yaml: 0 is out of range",
    ),
    (
        "dev",
        {"mlserve:server": {"authEnabled": "yes"}},
        (),
        "mlserve:server.authEnabled in Pulumi.dev.yaml: expected true or false",
    ),
    ("dev", {"mlserve:protect": "maybe"}, (), "mlserve:protect in Pulumi.dev.yaml: expected true or false"),
    ("dev", {"mlserve:aks": {"minNodes": 1}}, (), "mlserve:aks in Pulumi.dev.yaml: set, but aks is not in targets"),
    (
        "dev",
        {"mlserve:batch": {"enabled": True}},
        (),
        "mlserve:batch.enabled in Pulumi.dev.yaml: batch scoring runs on the AKS cluster",
    ),
    ("dev", {}, ("mlserve:azure",), "mlserve:azure.location in Pulumi.dev.yaml"),
    ("dev", {"mlserve:model": {"name": "Weather Rain!"}}, (), "mlserve:model.name in Pulumi.dev.yaml"),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"kubernetesVersion": "1.35", "minNodes": 3, "maxNodes": 2})},
        (),
        "mlserve:aks.maxNodes in Pulumi.prod.yaml: 2 is below aks.minNodes (3)",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"minReplicas": 4, "maxReplicas": 3})},
        (),
        "mlserve:kubernetes.maxReplicas in Pulumi.prod.yaml: 3 is below kubernetes.minReplicas (4)",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"cpu": "0"})},
        (),
        "mlserve:kubernetes.cpu in Pulumi.prod.yaml: must be more than 0",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"memory": "1GB"})},
        (),
        "mlserve:kubernetes.memory in Pulumi.prod.yaml",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"serviceType": "Ingress"})},
        (),
        "mlserve:kubernetes.serviceType in Pulumi.prod.yaml",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"kubernetesVersion": "latest"})},
        (),
        "mlserve:aks.kubernetesVersion in Pulumi.prod.yaml",
    ),
    (
        "prod",
        {
            "mlserve:aks": merged(
                "prod", "mlserve:aks", {"kubernetesVersion": "1.35", "authorizedIpRanges": ["everyone"]}
            )
        },
        (),
        "mlserve:aks.authorizedIpRanges[0] in Pulumi.prod.yaml: 'everyone' is not an IPv4 CIDR range",
    ),
    # What the clouds reject, stopped before anything is created (issue: deployable on the first up).
    (
        "prod",
        {"mlserve:sagemaker": merged("prod", "mlserve:sagemaker", {"rollout": {"type": "CANARY", "stepPercent": 60}})},
        (),
        "mlserve:sagemaker.rollout.stepPercent in Pulumi.prod.yaml: 60 is out of range 1..50",
    ),
    (
        "prod",
        {"mlserve:sagemaker": merged("prod", "mlserve:sagemaker", {"rollout": {"type": "LINEAR", "stepPercent": 5}})},
        (),
        "mlserve:sagemaker.rollout.stepPercent in Pulumi.prod.yaml: 5: a LINEAR step is 10..50 % of capacity",
    ),
    (
        "dev",
        {"mlserve:sagemaker": merged("dev", "mlserve:sagemaker", {"dataCapturePercent": 10})},
        (),
        "mlserve:sagemaker.dataCapturePercent in Pulumi.dev.yaml: serverless endpoints support neither",
    ),
    (
        "dev",
        {"mlserve:sagemaker": merged("dev", "mlserve:sagemaker", {"kmsKeyArn": KMS})},
        (),
        "mlserve:sagemaker.kmsKeyArn in Pulumi.dev.yaml: serverless endpoints support neither",
    ),
    (
        "prod",
        {"mlserve:sagemaker": merged("prod", "mlserve:sagemaker", {"instanceType": "ml.m5d.large", "kmsKeyArn": KMS})},
        (),
        "mlserve:sagemaker.kmsKeyArn in Pulumi.prod.yaml: ml.m5d.large has local NVMe instance storage",
    ),
    ("prod", {}, ("aws:region",), "aws:region in Pulumi.prod.yaml: required with the sagemaker target"),
    (
        "prod",
        {"aws:region": "eu-wset-1"},
        (),
        "aws:region in Pulumi.prod.yaml: 'eu-wset-1' is not a SageMaker region (botocore's endpoint data); "
        "did you mean eu-west-1?",
    ),
    (
        "dev",
        {"mlserve:azure": {"location": "westeruope"}, "azure-native:location": "westeruope"},
        (),
        "mlserve:azure.location in Pulumi.dev.yaml: 'westeruope' is not an Azure region "
        "(az account list-locations; stacks/regions.py); did you mean westeurope? (if Azure opened 'westeruope' "
        "after this list was made, add it to AZURE_REGIONS in stacks/regions.py)",
    ),
    (
        "prod",
        {"mlserve:sagemaker": merged("prod", "mlserve:sagemaker", {"memorySizeMb": 2048})},
        (),
        "mlserve:sagemaker.memorySizeMb in Pulumi.prod.yaml: a serverless setting, which a realtime endpoint does "
        "not use; remove it (or set mode: serverless)",
    ),
    (
        "dev",
        {"azure-native:location": "northeurope"},
        (),
        "azure-native:location in Pulumi.dev.yaml: northeurope differs from mlserve:azure.location (westeurope)",
    ),
    ("dev", {}, ("azure-native:location",), "azure-native:location in Pulumi.dev.yaml: required"),
    ("dev", {"mlserve:aws": {"region": "eu-west-1"}}, (), "mlserve:aws in Pulumi.dev.yaml: unknown key"),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"kubernetesVersion": "1.33"})},
        (),
        "mlserve:aks.kubernetesVersion in Pulumi.prod.yaml: 1.33 is past its AKS end of life",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"admins": [{"objectId": "me", "type": "Group"}]})},
        (),
        "mlserve:aks.admins[0].objectId in Pulumi.prod.yaml: 'me' is not an Entra ID object id",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"admins": [{"objectId": GUID, "type": "Robot"}]})},
        (),
        "mlserve:aks.admins[0].type in Pulumi.prod.yaml: 'Robot'; choose from 'Group', 'User' or 'ServicePrincipal'",
    ),
    (
        "prod",
        {"mlserve:aks": {k: v for k, v in merged("prod", "mlserve:aks", {}).items() if k != "admins"}},
        (),
        "mlserve:aks.admins in Pulumi.prod.yaml: required",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"availabilityZones": ["1", "4"]})},
        (),
        "mlserve:aks.availabilityZones[1] in Pulumi.prod.yaml: '4'; choose from '1', '2' or '3'",
    ),
    (
        "prod",
        {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"minReplicas": 1})},
        (),
        "mlserve:kubernetes.minReplicas in Pulumi.prod.yaml: 1 in a protected stack",
    ),
    (
        "dev",
        {"mlserve:azure": merged("dev", "mlserve:azure", {"registrySku": "Gold"})},
        (),
        "mlserve:azure.registrySku in Pulumi.dev.yaml",
    ),
    (
        "dev",
        {"mlserve:observability": {"alertEmail": "nobody"}},
        (),
        "mlserve:observability.alertEmail in Pulumi.dev.yaml",
    ),
    (
        "dev",
        {"mlserve:server": merged("dev", "mlserve:server", {"entraTenantId": GUID})},
        (),
        "mlserve:server.entraTenantId in Pulumi.dev.yaml: Entra ID tokens need both",
    ),
    (
        "dev",
        {"mlserve:capture": {"percent": 150}},
        (),
        "mlserve:capture.percent in Pulumi.dev.yaml",
    ),
    (
        "dev",
        {"mlserve:capture": {"percent": 10, "exclude": ["name,address"]}},
        (),
        "mlserve:capture.exclude[0] in Pulumi.dev.yaml",
    ),
    (
        "dev",
        {"mlserve:targets": ["sagemaker"], "mlserve:capture": {"percent": 10}},
        ("mlserve:aci", "mlserve:azure"),
        "use sagemaker.dataCapturePercent",
    ),
]


@pytest.mark.parametrize(("stack", "overrides", "remove", "message"), CASES)
def test_bad_config_names_the_key(stack: str, overrides: dict, remove: tuple[str, ...], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        evaluate(stack, overrides, remove)
    assert message in str(raised.value)


def test_any_combination_of_targets(tmp_path) -> None:
    both = evaluate("prod", {"mlserve:targets": ["aci", "aks", "sagemaker"], "mlserve:aci": {"cpu": 2, "memoryGb": 4}})
    assert {
        "azure-native:containerinstance:ContainerGroup",
        "azure-native:containerservice:ManagedCluster",
    } <= both.types()
    assert {"aci_endpoint", "aks_endpoint"} <= set(both.outputs)
    group = both.one("azure-native:containerinstance:ContainerGroup")
    assert group.inputs["containers"][0]["resources"]["requests"] == {"cpu": 2, "memoryInGB": 4}


def test_auth_can_be_turned_off(tmp_path) -> None:
    open_dev = evaluate("dev", {"mlserve:server": {"authEnabled": False}})
    env = [
        e["name"]
        for e in open_dev.one("azure-native:containerinstance:ContainerGroup").inputs["containers"][0][
            "environmentVariables"
        ]
    ]
    assert "SERVING_API_KEYS" not in env
    assert "primary_key" not in open_dev.outputs


def stack_values(stack: str, **changes: Any) -> dict[str, Any]:
    """The `mlserve:` values of a stack file, as the program reads them, with sections replaced."""
    values = {k.split(":", 1)[1]: json.loads(v) for k, v in stack_config(stack).items() if k.startswith("mlserve:")}
    return {**values, **changes}


def problems_of(values: dict[str, Any], stack: str = "dev") -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(values, stack)
    return str(raised.value).splitlines()


def test_a_typo_is_named_with_the_key_it_probably_meant() -> None:
    values = stack_values("prod", sagemaker={**stack_values("prod")["sagemaker"], "memorySizeMB": 2048})
    assert problems_of(values, "prod") == [
        "mlserve:sagemaker.memorySizeMB in Pulumi.prod.yaml: unknown setting; did you mean memorySizeMb?"
    ]
    assert problems_of(stack_values("dev", target=["aci"]))[0] == (
        "mlserve:target in Pulumi.dev.yaml: unknown key; did you mean targets?"
    )


def test_every_problem_is_reported_at_once() -> None:
    values = stack_values(
        "dev",
        aci={"cpu": 9, "memoryGb": "lots", "gpu": 1},
        server={"maxConcurrentRequests": 0},
        observability={"alertEmail": "nobody"},
    )
    assert problems_of(values) == [
        "mlserve:server.maxConcurrentRequests in Pulumi.dev.yaml: 0 is out of range 1..256",
        "mlserve:aci.cpu in Pulumi.dev.yaml: 9 is out of range 0.1..3.5",
        "mlserve:aci.memoryGb in Pulumi.dev.yaml: expected a number, got 'lots'",
        "mlserve:aci.gpu in Pulumi.dev.yaml: unknown setting; known: cpu, dnsLabel, domain, memoryGb",
        "mlserve:observability.alertEmail in Pulumi.dev.yaml: 'nobody' is not an e-mail address",
    ]


def test_a_missing_section_names_its_required_key_in_words() -> None:
    values = {k: v for k, v in stack_values("dev").items() if k != "azure"}
    assert problems_of(values) == [
        "mlserve:azure.location in Pulumi.dev.yaml: required: the Azure region, e.g. westeurope "
        "(the same as azure-native:location)"
    ]


def test_quoted_booleans_and_numbers_are_read_as_meant() -> None:
    # `pulumi config set --path mlserve:server.authEnabled false` stores the string "false".
    config = parse(stack_values("dev", server={"authEnabled": "false"}, protect="true", model={"version": 3}), "dev")
    assert config.server.auth_enabled is False
    assert config.protect is True
    assert config.model.version == "3"
    assert problems_of(stack_values("dev", server={"authEnabled": "yes"})) == [
        "mlserve:server.authEnabled in Pulumi.dev.yaml: expected true or false, got 'yes'"
    ]
    assert problems_of(stack_values("dev", aci={"cpu": True})) == [
        "mlserve:aci.cpu in Pulumi.dev.yaml: expected a number, got true"
    ]


def prod_with_batch(schedule: str) -> dict[str, Any]:
    return stack_values("prod", batch={"enabled": True, "schedule": schedule})


@pytest.mark.parametrize("schedule", ["@daily", "@hourly", "0 2 * * *", "*/15 8-18 * * 1-5", "30 4 1 JAN,JUL SUN"])
def test_a_schedule_kubernetes_takes_is_taken(schedule: str) -> None:
    config = parse(prod_with_batch(schedule), "prod")
    assert config.batch.schedule == schedule


@pytest.mark.parametrize(
    "schedule", ["0 25 * * *", "0 2 * * 7", "0 0 2 * * *", "@every 1h", "TZ=UTC 0 2 * * *", "daily"]
)
def test_a_schedule_kubernetes_refuses_is_refused_in_words(schedule: str) -> None:
    (problem,) = problems_of(prod_with_batch(schedule), "prod")
    assert problem.startswith(f"mlserve:batch.schedule in Pulumi.prod.yaml: {schedule!r} is not a schedule Kubernetes")
    assert "minute 0-59, hour 0-23" in problem


def test_the_server_limits_are_the_servers_own() -> None:
    """The stack cannot allow a limit the container's settings refuse (they would crash it at start)."""
    for key, setting in (
        ("maxConcurrentRequests", "max_concurrent_requests"),
        ("maxQueueWaitMs", "max_queue_wait_ms"),
        ("scoringTimeoutMs", "scoring_timeout_ms"),
    ):
        limits = {type(m).__name__: m for m in Settings.model_fields[setting].metadata}
        high = limits["Le"].le
        (problem,) = problems_of(stack_values("dev", server={key: high + 1}))
        assert problem.endswith(f"{high + 1} is out of range {limits['Ge'].ge}..{high}")
        assert parse(stack_values("dev", server={key: high}), "dev").server.environment()


def test_the_offline_plan_prints_one_line_per_problem_and_no_traceback(tmp_path) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, tmp_path / name)
    document = yaml.safe_load((REPO / "Pulumi.dev.yaml").read_text())
    document["config"]["mlserve:aci"] = {"cpu": 0, "memorySizeGB": 2}
    (tmp_path / "Pulumi.typo.yaml").write_text(yaml.safe_dump(document))
    finished = subprocess.run(
        [sys.executable, "-m", "offline.plan", "--stack", "typo", "--project-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 2, finished.stderr
    assert finished.stderr.splitlines() == [
        "mlserve:aci.cpu in Pulumi.typo.yaml: 0 is out of range 0.1..3.5",
        "mlserve:aci.memorySizeGB in Pulumi.typo.yaml: unknown setting; did you mean memoryGb?",
    ]


def test_a_kubernetes_version_is_refused_from_the_day_after_its_aks_end_of_life() -> None:
    """AKS stops creating clusters on a version past its end of life: the config says so that day, not `up`."""
    import datetime

    from stacks.versions import AKS_END_OF_LIFE, kubernetes_version_problem

    oldest = min(AKS_END_OF_LIFE, key=lambda v: tuple(map(int, v.split("."))))
    end = AKS_END_OF_LIFE[oldest]
    assert kubernetes_version_problem(f"{oldest}.3", today=end) is None
    problem = kubernetes_version_problem(f"{oldest}.3", today=end + datetime.timedelta(days=1))
    assert problem is not None
    assert f"reached its AKS end of life on {end.isoformat()}" in problem
    assert oldest not in problem.split("use one of ")[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "config:\n  mlserve:targets: [aci\n",
            "Pulumi.shape.yaml line 3, column 1: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
        (
            "mlserve:targets: [aci]\n",
            "Pulumi.shape.yaml: mlserve:targets must be indented under `config:`",
        ),
        ("encryptionsalt: abc\n", "Pulumi.shape.yaml: no `config:` section; the stack's settings go under it"),
        (
            "config:\n  targets: [aci]\n",
            "targets in Pulumi.shape.yaml: a setting needs its namespace; write mlserve:targets",
        ),
    ],
)
def test_a_stack_file_of_the_wrong_shape_is_named_in_one_line(tmp_path, text: str, message: str) -> None:
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "Pulumi.shape.yaml").write_text(text)
    finished = subprocess.run(
        [sys.executable, "-m", "offline.plan", "--stack", "shape", "--project-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert finished.returncode == 2
    assert finished.stderr.startswith(message), finished.stderr
    assert len(finished.stderr.splitlines()) == 1, "one line, not a traceback"
