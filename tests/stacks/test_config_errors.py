"""Bad stack config stops the program with a message naming the key and the stack file."""

from __future__ import annotations

from typing import Any

import pytest

from offline.mocks import evaluate, merged
from stacks.config import ConfigError

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
        "mlserve:aci.domain in Pulumi.dev.yaml: 'not a domain' does not match",
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
        "mlserve:aks.allowedSourceRanges in Pulumi.prod.yaml: expected a list of IPv4 CIDR ranges",
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
        "mlserve:aks.authorizedIpRanges in Pulumi.prod.yaml",
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
        "mlserve:aks.admins[0].type in Pulumi.prod.yaml: 'Robot'; choose from Group, User, ServicePrincipal",
    ),
    (
        "prod",
        {"mlserve:aks": {k: v for k, v in merged("prod", "mlserve:aks", {}).items() if k != "admins"}},
        (),
        "mlserve:aks.admins in Pulumi.prod.yaml: required",
    ),
    (
        "prod",
        {"mlserve:aks": merged("prod", "mlserve:aks", {"availabilityZones": [1, 2]})},
        (),
        "mlserve:aks.availabilityZones in Pulumi.prod.yaml",
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
