"""The bootstrap stack's settings: read once from `pulumi.Config`, validated, frozen."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pulumi
import yaml

from stacks.config import OBJECT_ID


class BootstrapConfigError(pulumi.RunError):
    """A bad stack setting. A RunError: `pulumi preview`/`up` show its one-line message, no traceback."""


@dataclass(frozen=True)
class BootstrapConfig:
    owner: str  # GitHub organization or user
    repository: str  # its name, without the owner
    pulumi_org: str
    production_reviewers: tuple[int, ...]  # GitHub user ids
    cluster_admins: tuple[str, ...]  # Entra ID object ids (people), besides the deploy identity
    pulumi_access_token: pulumi.Output[str]  # secret
    mlflow_tracking_uri: str | None  # for models:/ model sources; becomes the MLFLOW_TRACKING_URI variable
    clouds: frozenset[str]  # "azure", "aws": those the stacks CI deploys use
    aws_oidc_provider_arn: str | None = None  # the account's GitHub OIDC provider, if it exists already

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.repository}"


# The stacks the workflows deploy (main.yml, deploy.yml) and the cloud of each target.
CI_STACKS = ("dev", "prod")
TARGET_CLOUDS = {"aci": "azure", "aks": "azure", "sagemaker": "aws"}


PROJECT_DIR = Path(__file__).resolve().parents[1]  # the main program's, above bootstrap/


def clouds_of_stacks() -> frozenset[str]:
    """The clouds the repository's CI stacks use: identities, variables and sign-ins for those only."""
    clouds: set[str] = set()
    for stack in CI_STACKS:
        stack_file = PROJECT_DIR / f"Pulumi.{stack}.yaml"
        if stack_file.is_file():
            config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
            targets = config.get("mlserve:targets") or []
            clouds |= {TARGET_CLOUDS[t] for t in targets if t in TARGET_CLOUDS}
    if not clouds:
        raise BootstrapConfigError(
            f"no CI stack to set up: {' or '.join(f'Pulumi.{s}.yaml' for s in CI_STACKS)} with mlserve:targets "
            "(aci, aks, sagemaker) is needed next to bootstrap/"
        )
    return frozenset(clouds)


def load() -> BootstrapConfig:
    stack = pulumi.get_stack()
    config = pulumi.Config("bootstrap")

    def fail(key: str, problem: str) -> BootstrapConfigError:
        return BootstrapConfigError(f"{key} in Pulumi.{stack}.yaml: {problem}")

    owner = pulumi.Config("github").get("owner")
    if not owner or not re.fullmatch(r"[A-Za-z0-9-]{1,39}", owner):
        raise fail("github:owner", "required: the GitHub organization or user that owns the repository")
    repository = config.get("repository") or ""
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", repository):
        raise fail("bootstrap:repository", "required: the repository's name, e.g. mlserve")
    pulumi_org = config.get("pulumiOrg") or ""
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", pulumi_org):
        raise fail("bootstrap:pulumiOrg", "required: the Pulumi Cloud organization of the stacks")
    reviewers = config.get_object("productionReviewers") or []
    if not reviewers or not all(isinstance(r, int) and not isinstance(r, bool) for r in reviewers):
        raise fail(
            "bootstrap:productionReviewers",
            "expected a non-empty list of GitHub user ids (numbers; `gh api users/<login> --jq .id`): "
            "production deploys wait for one of them",
        )
    admins = config.get_object("clusterAdmins") or []
    if not isinstance(admins, list) or not all(isinstance(a, str) and re.fullmatch(OBJECT_ID, a) for a in admins):
        raise fail("bootstrap:clusterAdmins", "expected a list of Entra ID object ids (GUIDs)")
    token = config.get_secret("pulumiAccessToken") if config.get("pulumiAccessToken") else None
    if token is None:
        raise fail("bootstrap:pulumiAccessToken", "required: `pulumi config set --secret bootstrap:pulumiAccessToken`")
    mlflow = config.get("mlflowTrackingUri")
    if mlflow is not None and not re.fullmatch(r"(https|databricks)(://\S+)?", mlflow):
        raise fail("bootstrap:mlflowTrackingUri", f"{mlflow!r}: expected the registry's https:// URL, or databricks")
    provider = config.get("awsOidcProviderArn")
    if provider is not None and not re.fullmatch(
        r"arn:aws[\w-]*:iam::\d{12}:oidc-provider/token\.actions\.githubusercontent\.com", provider
    ):
        raise fail(
            "bootstrap:awsOidcProviderArn",
            f"{provider!r}: expected the ARN of the account's token.actions.githubusercontent.com provider",
        )
    return BootstrapConfig(
        mlflow_tracking_uri=mlflow,
        clouds=clouds_of_stacks(),
        aws_oidc_provider_arn=provider,
        owner=owner,
        repository=repository,
        pulumi_org=pulumi_org,
        production_reviewers=tuple(reviewers),
        cluster_admins=tuple(a.lower() for a in admins),
        pulumi_access_token=token,
    )
