"""The offline plan: deterministic, complete, committed, and never showing a secret."""

from __future__ import annotations

import subprocess
import sys

import pytest

from offline.mocks import REPO, merged
from offline.plan import plan

# Every secret the mocks hand out; none may appear in a plan.
SECRETS = ["generated-mlserve-", "token-password-1", "workspace-shared-key", "ecr-token", "InstrumentationKey"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_committed_plan_is_up_to_date(stack: str) -> None:
    committed = (REPO / "plans" / f"{stack}.txt").read_text()
    assert plan(stack) == committed, f"plans/{stack}.txt is out of date: run `make plans` and commit the diff"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_never_shows_a_secret(stack: str) -> None:
    text = plan(stack)
    for secret in SECRETS:
        assert secret not in text
    assert "primary_key: [secret]" in text
    assert "[secret]" in text


def test_plan_shows_an_infrastructure_change() -> None:
    from offline.mocks import evaluate
    from offline.plan import render

    bigger = render(
        "prod", evaluate("prod", {"mlserve:kubernetes": merged("prod", "mlserve:kubernetes", {"maxReplicas": 5})})
    )
    assert "maxReplicas: 5" in bigger
    assert "maxReplicas: 5" not in plan("prod")


def test_plan_command_checks_the_snapshot() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "offline.plan", "--stack", "dev", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "offline.plan", "--stack", "staging"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2
    assert "no stack file Pulumi.staging.yaml" in missing.stderr
