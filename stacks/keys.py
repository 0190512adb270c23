"""The endpoint's two API keys (primary and secondary, for rotation), generated and kept secret."""

from __future__ import annotations

import pulumi
import pulumi_random as random


class ApiKeys(pulumi.ComponentResource):
    """Two random 48-character keys. Rotate one with `pulumi up --replace <its URN>`."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:security:ApiKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.primary = pulumi.Output.secret(
            random.RandomPassword(f"{name}-primary", length=48, special=False, opts=child).result
        )
        self.secondary = pulumi.Output.secret(
            random.RandomPassword(f"{name}-secondary", length=48, special=False, opts=child).result
        )
        # "primary,secondary", the form SERVING_API_KEYS takes.
        self.joined = pulumi.Output.secret(pulumi.Output.concat(self.primary, ",", self.secondary))
        self.register_outputs({"primary": self.primary, "secondary": self.secondary})
