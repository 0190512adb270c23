"""Resource options for stateful resources: protected in prod so `pulumi destroy` cannot remove them.

Kept in one function so the unit tests can check it directly (mocks never see resource options).
"""

from __future__ import annotations

import pulumi


def stateful(protect: bool, parent: pulumi.Resource) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, protect=protect)
