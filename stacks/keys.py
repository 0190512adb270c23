"""The endpoint's two API keys (primary and secondary, for rotation), generated and kept secret."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random


@dataclass(frozen=True)
class ApiKeysArgs:
    # Letters and digits only: keys travel in headers and comma-separated in SERVING_API_KEYS. The server
    # refuses keys under 16 characters.
    length: int = 48


class ApiKeys(pulumi.ComponentResource):
    """Two random keys. Rotate one with `pulumi up --replace <its URN>`."""

    def __init__(self, name: str, args: ApiKeysArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:security:ApiKeys", name, None, opts)
        if args.length < 16:
            raise ValueError(f"ApiKeysArgs.length {args.length}: the server refuses keys under 16 characters")
        child = pulumi.ResourceOptions(parent=self)
        self.primary: pulumi.Output[str] = pulumi.Output.secret(
            random.RandomPassword(f"{name}-primary", length=args.length, special=False, opts=child).result
        )
        self.secondary: pulumi.Output[str] = pulumi.Output.secret(
            random.RandomPassword(f"{name}-secondary", length=args.length, special=False, opts=child).result
        )
        # "primary,secondary", the form SERVING_API_KEYS takes.
        self.joined: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.concat(self.primary, ",", self.secondary))
        self.register_outputs({"primary": self.primary, "secondary": self.secondary})
