"""One-time CI set-up, run by an admin: `cd bootstrap && pulumi up` (its own stack).

Creates what the main program's workflows sign in with, and sets up the GitHub repository to use it:
Entra ID applications with federated credentials per GitHub environment, their Azure roles, the AKS
admins group; the AWS GitHub OIDC provider and two roles; the repository's environments (production
with required reviewers), variables and the Pulumi token secret.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The stack runs from bootstrap/; the permission tables share the main program's role ids.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pulumi
import pulumi_aws as aws
from pulumi_azure_native import authorization

from bootstrap.aws_ci import AwsCiArgs, AwsCiRoles
from bootstrap.azure_ci import AzureCiArgs, AzureCiIdentities
from bootstrap.config import load
from bootstrap.github_repo import GitHubSetup, GitHubSetupArgs


def main() -> None:
    config = load()
    variables: dict[str, pulumi.Input[str]] = {"PULUMI_ORG": config.pulumi_org}
    if config.mlflow_tracking_uri:
        variables["MLFLOW_TRACKING_URI"] = config.mlflow_tracking_uri
    azure_client_ids: dict[str, pulumi.Input[str]] = {}
    # Only the clouds the CI stacks use (Pulumi.dev.yaml, Pulumi.prod.yaml): the workflows sign in to a
    # cloud only where its variables are set.
    if "azure" in config.clouds:
        client = authorization.get_client_config_output()
        azure = AzureCiIdentities(
            "mlserve-ci",
            AzureCiArgs(config.full_name, client.subscription_id, config.cluster_admins),
        )
        variables |= {"AZURE_TENANT_ID": client.tenant_id, "AZURE_SUBSCRIPTION_ID": client.subscription_id}
        azure_client_ids = dict(azure.client_ids)
        # Goes into the main stacks' mlserve:aks.admins (type Group).
        pulumi.export("cluster_admins_group_id", azure.cluster_admins.object_id)
        pulumi.export("azure_deploy_client_id", azure.client_ids["deploy"])
        pulumi.export("azure_read_client_id", azure.client_ids["read"])
    if "aws" in config.clouds:
        region = aws.get_region_output().region
        aws_roles = AwsCiRoles(
            "mlserve-ci",
            AwsCiArgs(
                config.full_name,
                region,
                aws.get_caller_identity_output().account_id,
                {"project": "mlserve", "managed-by": "pulumi", "stack": pulumi.get_stack()},
                config.aws_oidc_provider_arn,
            ),
        )
        variables |= {
            "AWS_REGION": region,
            "AWS_DEPLOY_ROLE_ARN": aws_roles.role_arns["deploy"],
            "AWS_PREVIEW_ROLE_ARN": aws_roles.role_arns["read"],
        }
        pulumi.export("aws_deploy_role_arn", aws_roles.role_arns["deploy"])
        pulumi.export("aws_read_role_arn", aws_roles.role_arns["read"])
    GitHubSetup(
        "mlserve-ci",
        GitHubSetupArgs(
            repository=config.repository,
            production_reviewers=config.production_reviewers,
            variables=variables,
            azure_client_ids=azure_client_ids,
            pulumi_access_token=config.pulumi_access_token,
        ),
    )
    pulumi.export("clouds", sorted(config.clouds))


main()
