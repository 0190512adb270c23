"""mlserve policy pack: `pulumi preview --policy-pack policy` (Pulumi sets up policy/.venv from requirements.txt)."""

from pack import policies
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name="mlserve", enforcement_level=EnforcementLevel.MANDATORY, policies=policies())
