"""The policy pack: each rule fails what it should and passes what it should; both stacks comply."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from offline.mocks import REPO, evaluate
from policy import rules
from policy.rules import RESOURCE_RULES, STACK_RULES, Resource, check

TAGS = {"project": "mlserve", "stack": "dev", "model": "m", "model-version": "1"}
HARDENED_CONTAINER = {
    "name": "serving",
    "readinessProbe": {"httpGet": {"path": "/ready"}},
    "livenessProbe": {"httpGet": {"path": "/live"}},
    "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
    "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True},
    "env": [{"name": "SERVING_API_KEYS", "valueFrom": {}}],
}


def deployment(container: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns"},
        "spec": {"template": {"metadata": {"labels": labels or {"app": "m"}}, "spec": {"containers": [container]}}},
    }


def rule(name: str):  # type: ignore[no-untyped-def]
    return next(r for r in RESOURCE_RULES + STACK_RULES if r.name == name)


# (rule, resource type, passing props, failing props, expected message part)
RESOURCE_CASES = [
    (
        "keys-travel-over-tls",
        "azure-native:containerinstance:ContainerGroup",
        {"ipAddress": {"type": "Public", "ports": [{"port": 443}, {"port": 80}]}},
        {"ipAddress": {"type": "Public", "ports": [{"port": 8080}]}},
        "only the TLS proxy's 443",
    ),
    (
        "keys-travel-over-tls",
        "kubernetes:networking.istio.io/v1:Gateway",
        {"spec": {"servers": [{"port": {"number": 80, "protocol": "HTTP"}, "tls": {"httpsRedirect": True}}]}},
        {"spec": {"servers": [{"port": {"number": 80, "protocol": "HTTP"}}]}},
        "plain HTTP without httpsRedirect",
    ),
    (
        "keys-travel-over-tls",
        "kubernetes:core/v1:Service",
        {"spec": {"type": "ClusterIP"}},
        {"spec": {"type": "LoadBalancer"}},
        "route through the TLS gateway",
    ),
    (
        "acr-admin-user-disabled",
        "azure-native:containerregistry:Registry",
        {"adminUserEnabled": False},
        {"adminUserEnabled": True},
        "adminUserEnabled",
    ),
    (
        "ecr-scan-and-immutable-tags",
        "aws:ecr/repository:Repository",
        {"imageScanningConfiguration": {"scanOnPush": True}, "imageTagMutability": "IMMUTABLE"},
        {"imageScanningConfiguration": {"scanOnPush": False}, "imageTagMutability": "MUTABLE"},
        "scan images on push",
    ),
    (
        "sagemaker-endpoint-encryption",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        {"productionVariants": [{"instanceType": "ml.m5.large", "initialInstanceCount": 2}], "kmsKeyArn": "arn:k"},
        {"productionVariants": [{"instanceType": "ml.m5.large", "initialInstanceCount": 2}]},
        "KMS key",
    ),
    (
        "sagemaker-two-instances",
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        {
            "productionVariants": [
                {"variantName": "AllTraffic", "instanceType": "ml.m5.large", "initialInstanceCount": 2}
            ]
        },
        {
            "productionVariants": [
                {"variantName": "AllTraffic", "instanceType": "ml.m5.large", "initialInstanceCount": 1}
            ]
        },
        "at least 2",
    ),
    (
        "aks-rbac-network-policy",
        "azure-native:containerservice:ManagedCluster",
        {"enableRBAC": True, "networkProfile": {"networkPolicy": "azure"}},
        {"enableRBAC": False, "networkProfile": {}},
        "RBAC",
    ),
    (
        "kubernetes-deployment-hardened",
        "kubernetes:apps/v1:Deployment",
        deployment(HARDENED_CONTAINER),
        deployment({"name": "serving", "securityContext": {}}),
        "probes",
    ),
    (
        "required-tags",
        "aws:s3/bucket:Bucket",
        {"tags": TAGS},
        {"tags": {"project": "mlserve"}},
        "missing tags: stack, model, model-version",
    ),
]


@pytest.mark.parametrize(
    ("name", "type_", "good", "bad", "message"), RESOURCE_CASES, ids=[c[0] for c in RESOURCE_CASES]
)
def test_resource_rule(name: str, type_: str, good: dict, bad: dict, message: str) -> None:
    check_fn = rule(name).check
    assert check_fn(type_, good) == []
    violations = check_fn(type_, bad)
    assert violations
    assert any(message in v for v in violations), violations


def test_every_rule_has_a_case() -> None:
    covered = {c[0] for c in RESOURCE_CASES} | {"ecr-lifecycle-policy", "public-endpoint-needs-auth"}
    assert covered == {r.name for r in RESOURCE_RULES + STACK_RULES}


def test_serverless_endpoints_need_no_instances_or_key() -> None:
    serverless = {"productionVariants": [{"serverlessConfig": {"memorySizeInMb": 2048, "maxConcurrency": 5}}]}
    for name in ("sagemaker-endpoint-encryption", "sagemaker-two-instances"):
        assert rule(name).check("aws:sagemaker/endpointConfiguration:EndpointConfiguration", serverless) == []


def test_ecr_lifecycle_rule() -> None:
    repo = Resource("aws:ecr/repository:Repository", "repo", {"name": "repo-1"})
    lifecycle = Resource("aws:ecr/lifecyclePolicy:LifecyclePolicy", "lc", {"repository": "repo-1"})
    assert rule("ecr-lifecycle-policy").check([repo, lifecycle]) == []
    assert rule("ecr-lifecycle-policy").check([repo]) == ["ECR repository repo has no lifecycle policy"]


def test_public_load_balancer_needs_keys() -> None:
    service = Resource(
        "kubernetes:core/v1:Service",
        "svc",
        {"metadata": {"namespace": "ns"}, "spec": {"type": "LoadBalancer", "selector": {"app": "m"}}},
    )
    keyed = Resource("kubernetes:apps/v1:Deployment", "dep", deployment(HARDENED_CONTAINER))
    open_container = {**HARDENED_CONTAINER, "env": []}
    unkeyed = Resource("kubernetes:apps/v1:Deployment", "dep", deployment(open_container))
    check_fn = rule("public-endpoint-needs-auth").check
    assert check_fn([service, keyed]) == []
    assert "has no API keys" in check_fn([service, unkeyed])[0]
    files = {**HARDENED_CONTAINER, "env": [{"name": "SERVING_SECRETS_DIR", "value": "/run/secrets/mlserve"}]}
    mounted = deployment(files)
    mounted["spec"]["template"]["spec"]["volumes"] = [{"name": "k", "secret": {"secretName": "keys"}}]
    with_files = Resource("kubernetes:apps/v1:Deployment", "dep", mounted)

    def secret(*keys: str) -> Resource:
        return Resource(
            "kubernetes:core/v1:Secret", "s", {"metadata": {"name": "keys"}, "stringData": dict.fromkeys(keys, "x")}
        )

    assert check_fn([service, with_files, secret("SERVING_API_KEYS", "APPLICATIONINSIGHTS_CONNECTION_STRING")]) == []
    # A mounted Secret with only the telemetry connection string is no key.
    assert "has no API keys" in check_fn([service, with_files, secret("APPLICATIONINSIGHTS_CONNECTION_STRING")])[0]
    internal = Resource(
        "kubernetes:core/v1:Service",
        "svc",
        {"metadata": {"namespace": "ns"}, "spec": {"type": "ClusterIP", "selector": {"app": "m"}}},
    )
    assert check_fn([internal, unkeyed]) == []
    routed = Resource(
        "kubernetes:networking.istio.io/v1:VirtualService",
        "vs",
        {
            "spec": {
                "gateways": ["aks-istio-ingress/mlserve"],
                "http": [{"route": [{"destination": {"host": "svc.ns.svc.cluster.local"}}]}],
            }
        },
    )
    named = Resource(
        "kubernetes:core/v1:Service", "svc", {**internal.props, "metadata": {"name": "svc", "namespace": "ns"}}
    )
    assert "is routed from the ingress gateway" in check_fn([named, unkeyed, routed])[0]
    assert check_fn([named, keyed, routed]) == []


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_projects_stacks_comply(stack: str) -> None:
    os.chdir(REPO)
    evaluation = evaluate(stack)
    resources = [Resource(r.type, r.name, r.inputs) for r in evaluation.resources if r.custom]
    assert check(resources) == []


def test_turning_auth_off_on_prod_is_caught() -> None:
    os.chdir(REPO)
    evaluation = evaluate("prod", {"mlserve:server": {"authEnabled": False}})
    violations = check(Resource(r.type, r.name, r.inputs) for r in evaluation.resources if r.custom)
    assert [v[0] for v in violations] == ["public-endpoint-needs-auth"]
    assert "is routed from the ingress gateway" in violations[0][2]


def test_the_pack_loads_with_pulumi_policy() -> None:
    """policy/pack.py builds every rule as a mandatory pulumi-policy policy, in the pack's own environment."""
    python = REPO / os.environ.get("POLICY_PYTHON", ".tools/policy/bin/python")  # relative paths: to the repo
    if not python.exists():
        pytest.fail(f"{python} not found: run `make test`, which installs the policy pack's environment")
    script = (
        "import sys; sys.path.insert(0, 'policy'); from pack import policies; "
        "from pulumi_policy import EnforcementLevel; ps = policies(); "
        "assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in ps); "
        "print(','.join(p.name for p in ps))"
    )
    result = subprocess.run([str(python), "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.strip().split(",")) == {r.name for r in RESOURCE_RULES + STACK_RULES}


@pytest.mark.parametrize(
    "instance_type",
    [
        "ml.m5.large",
        "ml.m5d.large",
        "ml.g4dn.xlarge",
        "ml.g5.2xlarge",
        "ml.c6id.large",
        "ml.inf2.xlarge",
        "ml.t2.medium",
    ],
)
def test_policy_and_program_agree_on_instance_storage(instance_type: str) -> None:
    from stacks.config import has_instance_storage as program

    assert rules.has_instance_storage(instance_type) == program(instance_type)
