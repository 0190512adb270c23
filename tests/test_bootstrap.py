"""bootstrap/: the CI identities as code, checked against what the main program and the workflows need."""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bootstrap.config import BootstrapConfigError
from bootstrap.permissions import AWS_RESOURCE_SERVICES, ENVIRONMENTS, INVOKE_ACTIONS
from offline.mocks import REPO, Evaluation, evaluate
from stacks.drift_signal import DRIFT_NAMESPACE

BOOTSTRAP = REPO / "bootstrap"
WORKFLOWS = REPO / ".github" / "workflows"
# Variables a team sets itself if it wants what they do (docs/guides/releasing.md).
OPTIONAL_VARIABLES = {"MODEL_RELEASE_AUTO_MERGE"}


# What `pulumi config set --secret bootstrap:pulumiAccessToken ...` adds to the example stack file.
TOKEN = {"bootstrap:pulumiAccessToken": "pul-0123456789abcdef"}


@pytest.fixture(scope="module")
def bootstrap() -> Evaluation:
    return evaluate("ci", TOKEN, project_dir=BOOTSTRAP, project="mlserve-bootstrap")


@pytest.fixture(scope="module")
def programs() -> list[Evaluation]:
    return [evaluate("dev"), evaluate("prod")]


def _granted(action: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(action.lower(), p.lower()) for p in patterns)


def _statements(policy: str) -> list[dict]:
    return json.loads(policy)["Statement"]


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_every_invoke_of_the_program_has_its_permissions_listed(programs: list[Evaluation]) -> None:
    """A new invoke fails here until INVOKE_ACTIONS says what it needs (and the read identity gets it)."""
    invoked = {token for program in programs for token in program.invokes}
    assert invoked
    assert invoked <= set(INVOKE_ACTIONS), invoked - set(INVOKE_ACTIONS)


def test_the_preview_role_grants_what_the_programs_invokes_need(
    bootstrap: Evaluation, programs: list[Evaluation]
) -> None:
    role = bootstrap.one("azure-native:authorization:RoleDefinition").inputs
    (permissions,) = role["permissions"]
    needed = {a for p in programs for t in p.invokes for a in INVOKE_ACTIONS[t] if a.startswith("Microsoft.")}
    assert needed == {
        "Microsoft.OperationalInsights/workspaces/sharedKeys/action",
        "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
        "Microsoft.Storage/storageAccounts/listkeys/action",
    }
    for action in needed:
        assert _granted(action, permissions["actions"]), action
    assert _granted("Microsoft.ContainerRegistry/registries/read", permissions["actions"])
    assert not _granted("Microsoft.ContainerRegistry/registries/write", permissions["actions"]), "read only"
    # `refresh` reads the workload's Kubernetes objects through AKS RBAC.
    assert _granted("Microsoft.ContainerService/managedClusters/apps/deployments/read", permissions["dataActions"])
    assert not _granted("Microsoft.ContainerService/managedClusters/apps/deployments/write", permissions["dataActions"])


def test_the_aws_read_role_grants_the_invokes_and_changes_no_resource(
    bootstrap: Evaluation, programs: list[Evaluation]
) -> None:
    (read,) = [p for p in bootstrap.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-read")]
    statements = _statements(read.inputs["policy"])
    granted = [a for s in statements for a in _actions(s)]
    needed = {a for p in programs for t in p.invokes for a in INVOKE_ACTIONS[t] if not a.startswith("Microsoft.")}
    assert needed == {"ecr:GetAuthorizationToken"}
    for action in needed:
        assert _granted(action, granted)
    writes = ("Create", "Delete", "Put", "Update", "Register", "Deregister", "Tag", "Untag", "Attach", "Pass")
    # The one write: the drift report's verdict as metric data, in one namespace (the test below).
    assert [a for a in granted if a.split(":")[1].startswith(writes)] == ["cloudwatch:PutMetricData"]
    assert not any(a.endswith(":*") or a == "*" for a in granted)


def test_the_aws_deploy_role_covers_every_service_the_program_uses(
    bootstrap: Evaluation, programs: list[Evaluation]
) -> None:
    types = {r.type for p in programs for r in p.resources if r.type.startswith("aws:") and r.custom}
    assert types <= set(AWS_RESOURCE_SERVICES), types - set(AWS_RESOURCE_SERVICES)
    (deploy,) = [p for p in bootstrap.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-deploy")]
    statements = _statements(deploy.inputs["policy"])
    for service in {AWS_RESOURCE_SERVICES[t] for t in types}:
        assert any(a.startswith(f"{service}:") for s in statements for a in _actions(s)), service
    # Scoped to the project's resources wherever AWS offers resource-level permissions.
    for statement in statements:
        if statement["Resource"] == "*":
            assert statement["Sid"] in {
                "EcrLogin",
                "AutoscalingServiceLinkedRole",
                "Autoscaling",
                "DescribeAlarms",
                "CreateKey",
            }
    pass_role = next(s for s in statements if s["Sid"] == "PassExecutionRoleToSageMaker")
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}


def test_deploy_identity_may_assign_only_the_programs_roles(bootstrap: Evaluation) -> None:
    assignments = {a.name: a.inputs for a in bootstrap.of_type("azure-native:authorization:RoleAssignment")}
    delegation = assignments["mlserve-ci-deploy-role-assignments"]
    assert delegation["conditionVersion"] == "2.0"
    for role in (
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",
    ):
        assert role in delegation["condition"]
    assert all(a["principalType"] == "ServicePrincipal" for a in assignments.values())
    assert "Owner" not in json.dumps(assignments)


def _workflow_environments() -> Iterator[tuple[str, str, str]]:
    """(workflow, environment, what it signs in to AWS as) for every job that signs in to a cloud."""
    callers: dict[str, list[str]] = {}
    documents = {p.name: yaml.safe_load(p.read_text()) for p in WORKFLOWS.glob("*.yml")}
    for document in documents.values():
        for job in document["jobs"].values():
            if job.get("uses") == "./.github/workflows/deploy.yml":
                callers.setdefault("deploy.yml", []).append(job["with"]["environment"])
    for name, document in documents.items():
        for job in document["jobs"].values():
            steps = job.get("steps", [])
            role = next((s["with"]["role-to-assume"] for s in steps if "role-to-assume" in s.get("with", {})), None)
            if role is None:
                continue
            environment = job.get("environment")
            environment = environment["name"] if isinstance(environment, dict) else environment
            if environment == "${{ matrix.environment }}":
                names = [m["environment"] for m in job["strategy"]["matrix"]["include"]]
            elif environment == "${{ inputs.environment }}":
                names = callers[name]
            else:
                names = [environment]
            for env in names:
                yield name, env, role


def test_every_environment_a_workflow_uses_is_federated(bootstrap: Evaluation) -> None:
    used = list(_workflow_environments())
    assert {env for _, env, _ in used} == set(ENVIRONMENTS)
    credentials = bootstrap.of_type(
        "azuread:index/applicationFederatedIdentityCredential:ApplicationFederatedIdentityCredential"
    )
    azure_subjects = {c.inputs["subject"] for c in credentials}
    trust = {
        r.name.rsplit("-", 1)[1]: json.loads(r.inputs["assumeRolePolicy"])["Statement"][0]["Condition"]
        for r in bootstrap.of_type("aws:iam/role:Role")
    }
    for workflow, env, role in used:
        assert f"repo:my-org/mlserve:environment:{env}" in azure_subjects, (workflow, env)
        identity = "read" if "PREVIEW" in role else "deploy"
        subjects = trust[identity]["StringEquals"]["token.actions.githubusercontent.com:sub"]
        assert f"repo:my-org/mlserve:environment:{env}" in subjects, (workflow, env, identity)
        assert trust[identity]["StringEquals"]["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"


def test_github_gets_environments_variables_and_the_token(bootstrap: Evaluation) -> None:
    environments = {
        e.inputs["environment"]: e.inputs
        for e in bootstrap.of_type("github:index/repositoryEnvironment:RepositoryEnvironment")
    }
    assert set(environments) == set(ENVIRONMENTS)
    production = environments["production"]
    assert production["reviewers"] == [{"users": [1234567]}]
    assert production["preventSelfReview"] is True
    assert production["canAdminsBypass"] is False
    variables = {v.inputs["variableName"] for v in bootstrap.of_type("github:index/actionsVariable:ActionsVariable")}
    used = set()
    for path in WORKFLOWS.glob("*.yml"):
        used |= set(re.findall(r"\bvars\.([A-Za-z0-9_]+)", path.read_text()))
    assert {"AZURE_CLIENT_ID", "AWS_DEPLOY_ROLE_ARN", "PULUMI_ORG"} <= used
    used -= OPTIONAL_VARIABLES
    per_environment = {
        v.inputs["variableName"]
        for v in bootstrap.of_type("github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable")
    }
    assert used <= variables | per_environment, used - variables - per_environment
    mlflow = bootstrap.of_type("github:index/actionsVariable:ActionsVariable")
    assert {v.inputs["value"] for v in mlflow if v.inputs["variableName"] == "MLFLOW_TRACKING_URI"} == {
        "https://mlflow.example.com"
    }
    secret = bootstrap.one("github:index/actionsSecret:ActionsSecret")
    assert secret.inputs["secretName"] == "PULUMI_ACCESS_TOKEN"
    assert "plaintextValue" in secret.secret_paths


def test_the_deploy_identity_is_a_cluster_admin_ahead_of_any_cluster(bootstrap: Evaluation) -> None:
    group = bootstrap.one("azuread:index/group:Group").inputs
    assert group["securityEnabled"] is True
    assert "mlserve-ci-deploy-object-id" in group["members"]
    assert bootstrap.outputs["cluster_admins_group_id"] == "mlserve-ci-cluster-admins-object-id"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"bootstrap:productionReviewers": []},
            "bootstrap:productionReviewers in Pulumi.ci.yaml: expected a non-empty",
        ),
        ({"bootstrap:clusterAdmins": ["bob"]}, "bootstrap:clusterAdmins in Pulumi.ci.yaml"),
        ({"github:owner": ""}, "github:owner in Pulumi.ci.yaml: required"),
        ({"bootstrap:pulumiAccessToken": ""}, "bootstrap:pulumiAccessToken in Pulumi.ci.yaml: required"),
    ],
)
def test_bad_bootstrap_config_names_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(BootstrapConfigError) as raised:
        evaluate("ci", {**TOKEN, **overrides}, project_dir=BOOTSTRAP, project="mlserve-bootstrap")
    assert message in str(raised.value)


def test_dependabot_security_updates_are_on(bootstrap: Evaluation) -> None:
    """Outside .github/dependabot.yml's weekly schedule: a pull request as soon as an advisory names a pin."""
    alerts = bootstrap.one("github:index/repositoryVulnerabilityAlerts:RepositoryVulnerabilityAlerts")
    updates = bootstrap.one("github:index/repositoryDependabotSecurityUpdates:RepositoryDependabotSecurityUpdates")
    assert alerts.inputs == {"repository": "mlserve", "enabled": True}
    assert updates.inputs == {"repository": "mlserve", "enabled": True}


@pytest.mark.parametrize(
    ("targets", "absent"),
    [(["aci"], "aws:"), (["sagemaker"], "azure")],
    ids=["azure-only", "aws-only"],
)
def test_a_one_cloud_repository_gets_identities_and_variables_for_its_cloud_only(
    targets: list[str], absent: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": {"mlserve:targets": targets}}))
    monkeypatch.setattr("bootstrap.config.PROJECT_DIR", tmp_path)
    one = evaluate("ci", TOKEN, project_dir=BOOTSTRAP, project="mlserve-bootstrap")
    custom = {r.type for r in one.resources if r.custom}
    assert not {t for t in custom if t.startswith(absent)}, "no identity in the cloud the stacks do not use"
    variables = {v.inputs["variableName"] for v in one.of_type("github:index/actionsVariable:ActionsVariable")}
    per_environment = one.of_type("github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable")
    if absent == "aws:":
        assert not {v for v in variables if v.startswith("AWS_")}
        assert {"AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"} <= variables
        assert len(per_environment) == len(ENVIRONMENTS)
    else:
        assert not {v for v in variables if v.startswith("AZURE_")}
        assert not per_environment
        assert {"AWS_DEPLOY_ROLE_ARN", "AWS_PREVIEW_ROLE_ARN", "AWS_REGION"} <= variables
    assert one.outputs["clouds"] == (["azure"] if absent == "aws:" else ["aws"])


def test_an_existing_github_oidc_provider_is_used_not_created() -> None:
    arn = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com"
    reused = evaluate(
        "ci", {**TOKEN, "bootstrap:awsOidcProviderArn": arn}, project_dir=BOOTSTRAP, project="mlserve-bootstrap"
    )
    assert not reused.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    for role in reused.of_type("aws:iam/role:Role"):
        (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert statement["Principal"] == {"Federated": arn}


def test_ci_identities_read_captured_requests_and_no_other_blobs(
    bootstrap: Evaluation, programs: list[Evaluation]
) -> None:
    """The drift report (dev's run signs in as the deploy identity, prod's as the read one) lists and reads
    the capture containers the stacks create; the condition keeps every other container out."""
    from bootstrap.permissions import STORAGE_BLOB_DATA_READER

    readers = [
        a.inputs
        for a in bootstrap.of_type("azure-native:authorization:RoleAssignment")
        if a.inputs["roleDefinitionId"].endswith(STORAGE_BLOB_DATA_READER)
    ]
    assert len(readers) == 2
    assert all(r["conditionVersion"] == "2.0" for r in readers)
    containers = {
        c.inputs["containerName"]
        for p in programs
        for c in p.of_type("azure-native:storage:BlobContainer")
        if "capture" in c.name
    }
    assert containers == {"capture"}
    for reader in readers:
        condition = reader["condition"]
        assert "containers/blobs/read" in condition
        assert "containers:name] StringEquals 'capture'" in condition


def test_the_aws_read_role_reads_captured_requests_only(bootstrap: Evaluation, programs: list[Evaluation]) -> None:
    """The drift report gets objects under capture/ of the stacks' capture buckets, and nothing else."""
    (read,) = [p for p in bootstrap.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-read")]
    statements = _statements(read.inputs["policy"])
    gets = [s for s in statements if "s3:GetObject" in _actions(s)]
    assert [s["Resource"] for s in gets] == ["arn:aws:s3:::mlserve-*/capture/*"]
    uri = next(p.outputs["sagemaker_capture_uri"] for p in programs if "sagemaker_capture_uri" in p.outputs)
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    assert fnmatch.fnmatch(f"arn:aws:s3:::{bucket}/{key}/AllTraffic/2026/12/07/15/x.jsonl", gets[0]["Resource"])
    (decrypt,) = [s for s in statements if "kms:Decrypt" in _actions(s)]
    assert decrypt["Condition"]["StringLike"] == {"kms:ViaService": "s3.*.amazonaws.com"}


def test_the_aws_read_role_writes_the_drift_verdict_in_its_namespace_only(bootstrap: Evaluation) -> None:
    """CloudWatch's `cloudwatch:namespace` condition key ("Using condition keys to limit access to
    CloudWatch namespaces"): PutMetricData has no resource ARN, so the namespace is the only bound."""
    (read,) = [p for p in bootstrap.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith("-read")]
    puts = [s for s in _statements(read.inputs["policy"]) if any("PutMetricData" in a for a in _actions(s))]
    assert puts == [
        {
            "Sid": "PublishDriftVerdict",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": DRIFT_NAMESPACE}},
        }
    ]
    assert not any(a.startswith("cloudwatch:Put") and a != "cloudwatch:PutMetricData"
                   for s in _statements(read.inputs["policy"]) for a in _actions(s))  # fmt: skip
