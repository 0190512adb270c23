"""Container registries. Each gives the same shape: where to push, and push credentials (secret)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_azure as azure_classic
from pulumi_azure_native import containerregistry

from stacks.protection import stateful

REPOSITORY = "mlserve"
PROXY_REPOSITORY = "mlserve-proxy"  # the ACI group's TLS proxy


@dataclass(frozen=True)
class PushTarget:
    """A repository the serving image is pushed to."""

    address: pulumi.Output[str]  # registry host, e.g. myacr.azurecr.io
    repository: pulumi.Output[str]  # host/repository, without tag or digest
    username: pulumi.Output[str]
    password: pulumi.Output[str]  # secret


@dataclass
class AcrRegistryArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    sku: str  # Basic | Standard | Premium
    protect: bool
    tags: dict[str, str]


class AcrRegistry(pulumi.ComponentResource):
    """Azure Container Registry, admin user disabled.

    Pushes use a registry token scoped to the serving repository (read and write on it, nothing
    else); pulls use managed identities with AcrPull, granted by the consumers.
    """

    def __init__(self, name: str, args: AcrRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:AcrRegistry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.registry = containerregistry.Registry(
            # Registry names are globally unique and alphanumeric; Pulumi appends a random suffix.
            re.sub(r"[^a-z0-9]", "", name.lower()),
            resource_group_name=args.resource_group_name,
            location=args.location,
            sku={"name": args.sku},
            admin_user_enabled=False,
            anonymous_pull_enabled=False,
            tags=args.tags,
            opts=stateful(args.protect, self),
        )
        scope_map = containerregistry.ScopeMap(
            f"{name}-push",
            resource_group_name=args.resource_group_name,
            registry_name=self.registry.name,
            description="Push and pull of the mlserve images only",
            actions=[
                f"repositories/{repository}/{action}"
                for repository in (REPOSITORY, PROXY_REPOSITORY)
                for action in ("content/read", "content/write", "metadata/read")
            ],
            opts=child,
        )
        token = containerregistry.Token(
            f"{name}-push",
            resource_group_name=args.resource_group_name,
            registry_name=self.registry.name,
            scope_map_id=scope_map.id,
            status="enabled",
            opts=child,
        )
        # azure-native cannot generate a token password, so this one resource uses the classic provider.
        # pulumi-azure v6 refuses to start without a subscription id, and the stack files set none:
        # an explicit provider gets the one azure-native signed in to, and registers no resource providers.
        classic = azure_classic.Provider(
            f"{name}-classic",
            subscription_id=args.subscription_id,
            resource_provider_registrations="none",
            opts=child,
        )
        password = azure_classic.containerservice.TokenPassword(
            f"{name}-push",
            container_registry_token_id=token.id,
            password1={},
            opts=pulumi.ResourceOptions(parent=self, provider=classic),
        )
        self.push_target = PushTarget(
            address=self.registry.login_server,
            repository=pulumi.Output.concat(self.registry.login_server, "/", REPOSITORY),
            username=token.name,
            password=pulumi.Output.secret(password.password1.apply(lambda p: p.value or "")),
        )
        self.register_outputs({"login_server": self.registry.login_server, "registry_id": self.registry.id})


@dataclass
class EcrRegistryArgs:
    keep_images: int  # tagged images kept; older ones expire
    kms_key_arn: pulumi.Input[str] | None  # None: AES-256 with an AWS-owned key
    force_delete: bool  # dev only: let `pulumi destroy` remove a repository that still holds images
    protect: bool
    tags: dict[str, str]


class EcrRegistry(pulumi.ComponentResource):
    """An ECR repository: scan on push, immutable tags, encryption, a lifecycle policy."""

    def __init__(self, name: str, args: EcrRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:aws:EcrRegistry", name, None, opts)
        encryption = (
            {"encryption_type": "KMS", "kms_key": args.kms_key_arn}
            if args.kms_key_arn
            else {"encryption_type": "AES256"}
        )
        self.repository = aws.ecr.Repository(
            f"{name}-repo",
            image_scanning_configuration={"scan_on_push": True},
            image_tag_mutability="IMMUTABLE",
            encryption_configurations=[encryption],
            force_delete=args.force_delete,
            tags=args.tags,
            opts=stateful(args.protect, self),
        )
        aws.ecr.LifecyclePolicy(
            f"{name}-lifecycle",
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": "Expire untagged images after a day",
                            "selection": {
                                "tagStatus": "untagged",
                                "countType": "sinceImagePushed",
                                "countUnit": "days",
                                "countNumber": 1,
                            },
                            "action": {"type": "expire"},
                        },
                        {
                            "rulePriority": 2,
                            "description": f"Keep the last {args.keep_images} images",
                            "selection": {
                                "tagStatus": "any",
                                "countType": "imageCountMoreThan",
                                "countNumber": args.keep_images,
                            },
                            "action": {"type": "expire"},
                        },
                    ]
                }
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        token = aws.ecr.get_authorization_token_output(registry_id=self.repository.registry_id)
        self.push_target = PushTarget(
            address=self.repository.repository_url.apply(lambda url: url.split("/", 1)[0]),
            repository=self.repository.repository_url,
            username=token.user_name,
            password=pulumi.Output.secret(token.password),
        )
        self.register_outputs({"repository_url": self.repository.repository_url})
