"""The repository's GitHub environments, variables and the Pulumi token secret, with pulumi-github."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_github as github

from bootstrap.permissions import ENVIRONMENTS


@dataclass
class GitHubSetupArgs:
    repository: str  # name only; the owner comes from the github provider's config
    production_reviewers: tuple[int, ...]
    variables: dict[str, pulumi.Input[str]]  # repository variables
    azure_client_ids: dict[str, pulumi.Input[str]]  # "deploy" / "read" -> client id; empty without Azure
    pulumi_access_token: pulumi.Input[str]  # secret


class GitHubSetup(pulumi.ComponentResource):
    def __init__(self, name: str, args: GitHubSetupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:bootstrap:GitHubSetup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for environment, identity in ENVIRONMENTS.items():
            protected = environment == "production"
            env = github.RepositoryEnvironment(
                f"{name}-{environment}",
                repository=args.repository,
                environment=environment,
                # The approval gate: a required reviewer who is not the one who pushed.
                reviewers=[{"users": list(args.production_reviewers)}] if protected else None,
                prevent_self_review=protected,
                can_admins_bypass=not protected,
                opts=child,
            )
            if args.azure_client_ids:  # an AWS-only repository: its workflows never sign in to Azure
                github.ActionsEnvironmentVariable(
                    f"{name}-{environment}-azure-client-id",
                    repository=args.repository,
                    environment=env.environment,
                    variable_name="AZURE_CLIENT_ID",
                    value=args.azure_client_ids[identity],
                    opts=child,
                )
        for variable, value in sorted(args.variables.items()):
            github.ActionsVariable(
                f"{name}-{variable.lower().replace('_', '-')}",
                repository=args.repository,
                variable_name=variable,
                value=value,
                opts=child,
            )
        # Dependabot's security updates: a pull request as soon as an advisory names a pinned version,
        # outside .github/dependabot.yml's weekly schedule. They need the vulnerability alerts.
        alerts = github.RepositoryVulnerabilityAlerts(
            f"{name}-vulnerability-alerts", repository=args.repository, enabled=True, opts=child
        )
        github.RepositoryDependabotSecurityUpdates(
            f"{name}-dependabot-security-updates",
            repository=args.repository,
            enabled=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[alerts]),
        )
        github.ActionsSecret(
            f"{name}-pulumi-token",
            repository=args.repository,
            secret_name="PULUMI_ACCESS_TOKEN",  # noqa: S106 - the name, not the value
            plaintext_value=pulumi.Output.secret(args.pulumi_access_token),
            opts=child,
        )
        self.register_outputs({})
