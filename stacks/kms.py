"""A customer-managed KMS key for the stack's AWS data: image layers, endpoint volumes, captured data."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from stacks.protection import stateful


@dataclass(frozen=True)
class StackKeyArgs:
    protect: bool  # a protected stack cannot delete the key (or what it encrypts) by accident
    tags: dict[str, str]


class StackKey(pulumi.ComponentResource):
    """Rotated yearly; deleting it waits 30 days, so a mistaken destroy can be undone."""

    def __init__(self, name: str, args: StackKeyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:aws:StackKey", name, None, opts)
        protect, tags = args.protect, args.tags
        key = aws.kms.Key(
            f"{name}-key",
            description=f"mlserve {name}: ECR images, SageMaker volumes and data capture",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags,
            opts=stateful(protect, self),
        )
        aws.kms.Alias(
            f"{name}-alias", name=f"alias/{name}", target_key_id=key.key_id, opts=pulumi.ResourceOptions(parent=self)
        )
        self.arn = key.arn
        self.register_outputs({"arn": self.arn})
