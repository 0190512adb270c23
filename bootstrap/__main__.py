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
    client = authorization.get_client_config_output()
    region = aws.get_region_output().region
    azure = AzureCiIdentities(
        "mlserve-ci",
        AzureCiArgs(config.full_name, client.subscription_id, config.cluster_admins),
    )
    aws_roles = AwsCiRoles(
        "mlserve-ci",
        AwsCiArgs(
            config.full_name,
            region,
            aws.get_caller_identity_output().account_id,
            {"project": "mlserve", "managed-by": "pulumi", "stack": pulumi.get_stack()},
        ),
    )
    GitHubSetup(
        "mlserve-ci",
        GitHubSetupArgs(
            repository=config.repository,
            production_reviewers=config.production_reviewers,
            variables={
                "PULUMI_ORG": config.pulumi_org,
                "AZURE_TENANT_ID": client.tenant_id,
                "AZURE_SUBSCRIPTION_ID": client.subscription_id,
                "AWS_REGION": region,
                "AWS_DEPLOY_ROLE_ARN": aws_roles.role_arns["deploy"],
                "AWS_PREVIEW_ROLE_ARN": aws_roles.role_arns["read"],
                **({"MLFLOW_TRACKING_URI": config.mlflow_tracking_uri} if config.mlflow_tracking_uri else {}),
            },
            azure_client_ids=azure.client_ids,
            pulumi_access_token=config.pulumi_access_token,
        ),
    )
    # Goes into the main stacks' mlserve:aks.admins (type Group).
    pulumi.export("cluster_admins_group_id", azure.cluster_admins.object_id)
    pulumi.export("azure_deploy_client_id", azure.client_ids["deploy"])
    pulumi.export("azure_read_client_id", azure.client_ids["read"])
    pulumi.export("aws_deploy_role_arn", aws_roles.role_arns["deploy"])
    pulumi.export("aws_read_role_arn", aws_roles.role_arns["read"])


main()
