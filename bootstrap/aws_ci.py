"""AWS roles for GitHub Actions: the GitHub OIDC provider, a deploy role and a read-only role."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from bootstrap.permissions import (
    AWS_AUDIENCE,
    AWS_READ_ALSO_FROM,
    ENVIRONMENTS,
    GITHUB_OIDC_ISSUER,
    aws_deploy_policy,
    aws_read_policy,
)

OIDC_HOST = GITHUB_OIDC_ISSUER.removeprefix("https://")
# An AKS cluster's or a SageMaker endpoint's first `up` takes longer than the default hour; the
# workflows ask for this much (role-duration-seconds).
MAX_SESSION_SECONDS = 3600 * 2


@dataclass
class AwsCiArgs:
    repository: str  # owner/name
    region: pulumi.Input[str]
    account_id: pulumi.Input[str]
    tags: dict[str, str]
    # The account's GitHub OIDC provider when it has one already (an account holds one per URL: creating
    # a second fails with EntityAlreadyExists); None creates it.
    oidc_provider_arn: str | None = None


def trust_policy(provider_arn: str, repository: str, environments: list[str]) -> dict:
    """Only GitHub's tokens for this repository's named environments may assume the role."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {
                    "StringEquals": {
                        f"{OIDC_HOST}:aud": AWS_AUDIENCE,
                        f"{OIDC_HOST}:sub": [f"repo:{repository}:environment:{e}" for e in environments],
                    }
                },
            }
        ],
    }


class AwsCiRoles(pulumi.ComponentResource):
    def __init__(self, name: str, args: AwsCiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:bootstrap:AwsCiRoles", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        if args.oidc_provider_arn:
            provider_arn: pulumi.Output[str] = pulumi.Output.from_input(args.oidc_provider_arn)
        else:
            provider_arn = aws.iam.OpenIdConnectProvider(
                f"{name}-github", url=GITHUB_OIDC_ISSUER, client_id_lists=[AWS_AUDIENCE], tags=args.tags, opts=child
            ).arn
        environments = {
            "deploy": [e for e, who in ENVIRONMENTS.items() if who == "deploy"],
            "read": [e for e, who in ENVIRONMENTS.items() if who == "read"] + list(AWS_READ_ALSO_FROM),
        }
        policies = {
            "deploy": pulumi.Output.all(args.region, args.account_id).apply(lambda v: aws_deploy_policy(v[0], v[1])),
            "read": pulumi.Output.from_input(args.account_id).apply(aws_read_policy),
        }
        self.role_arns: dict[str, pulumi.Output[str]] = {}
        for identity in ("deploy", "read"):
            role = aws.iam.Role(
                f"{name}-{identity}",
                assume_role_policy=provider_arn.apply(
                    lambda arn, envs=environments[identity]: pulumi.Output.json_dumps(
                        trust_policy(arn, args.repository, envs)
                    )
                ),
                max_session_duration=MAX_SESSION_SECONDS,
                tags=args.tags,
                opts=child,
            )
            aws.iam.RolePolicy(
                f"{name}-{identity}",
                role=role.id,
                policy=policies[identity].apply(pulumi.Output.json_dumps),
                opts=child,
            )
            self.role_arns[identity] = role.arn
        self.register_outputs({"role_arns": self.role_arns})
