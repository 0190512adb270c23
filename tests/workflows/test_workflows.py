"""The workflows, run: every trigger through act, the stand-in actions and CLIs of tests/workflows/act.py.

Most cases run act's jobs as host processes (act's `-self-hosted` platform): the job graph, the
conditions, the outputs between jobs, the steps and what reaches the CLIs are act's, as with
containers, and a run takes seconds. Measured here, a job in a podman container costs about a minute
(act's per-step container calls through podman's API), so one case, the drift check, runs in the
podman job containers to keep that path proven, and the suite stays within a few minutes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.drift.test_publish import Ingestion
from tests.drift.week import OURS, SAGEMAKER, model_with_baseline, write_week
from tests.mlflow_registry import ALLOW_FILE_STORE, register
from tests.serving.models import linear_regressor
from tests.workflows.act import ORG, Run, Stand, Workspace, missing, missing_containers, podman_service, triggered

pytestmark = pytest.mark.skipif(missing() is not None, reason=missing() or "")

BOTH = {
    "PULUMI_ORG": ORG,
    "AZURE_CLIENT_ID": "azure-deploy-client",
    "AZURE_TENANT_ID": "tenant",
    "AZURE_SUBSCRIPTION_ID": "subscription",
    "AWS_REGION": "eu-west-1",
    "AWS_DEPLOY_ROLE_ARN": "arn:aws:iam::111122223333:role/mlserve-ci-deploy",
    "AWS_PREVIEW_ROLE_ARN": "arn:aws:iam::111122223333:role/mlserve-ci-read",
}
AZURE_ONLY = {k: v for k, v in BOTH.items() if not k.startswith("AWS_")}
AWS_ONLY = {k: v for k, v in BOTH.items() if not k.startswith("AZURE_")}
OUTPUTS = {
    stack: {"sagemaker_endpoint_name": f"mlserve-{stack}", "sagemaker_region": "eu-west-1", "model_sample": [1, 2]}
    for stack in ("dev", "prod", "pr-7")
}
# A review environment runs on ACI: the comment on the pull request names its scoring URI.
OUTPUTS["pr-7"]["scoring_uri"] = "https://mlserve-pr-7.westeurope.azurecontainer.io/score"
SMOKE = "aws sagemaker-runtime invoke-endpoint --region eu-west-1 --endpoint-name mlserve-"


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace(tmp_path / "w")


def run(workspace: Workspace, event: str, payload: dict, variables: dict | None = None, **stand: object) -> Run:
    workflows = triggered(event, payload, cron=str(payload.pop("cron", "")) or None)
    # The site's publication is a run of its own on GitHub, with cases of its own (below).
    workflows = [w for w in workflows if w != "docs.yml" or event == "workflow_dispatch"]
    return workspace.run(event, payload, workflows, variables or BOTH, Stand(outputs=OUTPUTS, **stand))  # type: ignore[arg-type]


def ups(result: Run) -> list[tuple[str, str | None]]:
    """(pulumi command and stack, model version in that stack's file) for every pulumi call that changes or shows."""
    found = []
    for call in result.calls:
        if call.argv[0] == "pulumi" and call.argv[1] in {"up", "preview", "destroy"}:
            found.append((f"{call.argv[1]} {call.argv[call.argv.index('--stack') + 1]}", call.model))
    return found


def actions(result: Run, name: str) -> list[str]:
    return [c.line.removeprefix(f"action {name}").strip() for c in result.calls if c.argv[:2] == ["action", name]]


def push(branch: str, workspace: Workspace, before: str | None = None) -> dict:
    after = workspace.git("rev-parse", "HEAD")
    return {"ref": f"refs/heads/{branch}", "before": before or "0" * 40, "after": after}


def pull_request(action: str, workspace: Workspace, **extra: object) -> dict:
    head = workspace.git("rev-parse", "HEAD")
    return {
        "action": action,
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"ref": "feature", "sha": head, "repo": {"full_name": "example/mlserve"}},
            "base": {"ref": "main", "repo": {"full_name": "example/mlserve"}},
            "labels": [{"name": "review-env"}],
        },
        **extra,
    }


def checked_first(jobs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """main.yml's jobs after its first stage, which must be the tests and the audit (side by side, in
    either order), both passed."""
    assert sorted(jobs[:2]) == [("Main/audit", "success"), ("Main/test", "success")], jobs
    return jobs[2:]


# Pull requests and their review environment


def test_a_pull_request_is_tested_planned_and_previewed_with_the_read_identities(workspace: Workspace) -> None:
    result = run(workspace, "pull_request", pull_request("opened", workspace))
    assert result.returncode == 0, result.log
    assert sorted(job for job, _ in result.jobs) == [
        "Pull request/Container tests",
        "Pull request/Offline plan",
        "Pull request/Preview dev",
        "Pull request/Preview prod",
        "Pull request/Test and lint",
        "Pull request/Vulnerability audit",
    ]
    assert "make audit" in result.clis("make")
    containers, act_in_containers = result.clis("sudo")
    assert "pytest tests/container" in containers, "the container tests run as root, from the pinned bases"
    assert "pytest tests/workflows -m serial" in act_in_containers, "and the act case with podman job containers"
    assert sorted(ups(result)) == [("preview acme/dev", "1"), ("preview acme/prod", "1")]
    read_role = f"role-to-assume={BOTH['AWS_PREVIEW_ROLE_ARN']} aws-region=eu-west-1 role-duration-seconds=7200"
    assert actions(result, "aws-actions/configure-aws-credentials") == [read_role, read_role]
    assert result.clis("make").count("make test") == 1
    assert "make -s plans" in result.clis("make")


def test_a_review_environment_goes_up_up_again_with_the_same_config_and_down(workspace: Workspace) -> None:
    labeled = run(workspace, "pull_request", pull_request("labeled", workspace, label={"name": "review-env"}))
    assert labeled.returncode == 0, labeled.log
    assert [job for job, _ in labeled.jobs] == ["Review environment/up"]
    setup = [
        "pulumi login",
        "pulumi stack select acme/pr-7",
        "pulumi config cp --stack acme/dev --dest acme/pr-7",
        "pulumi up --stack acme/pr-7 --non-interactive --yes --policy-pack policy",
        "pulumi stack output --stack acme/pr-7 scoring_uri",
    ]
    assert labeled.clis("pulumi") == setup
    assert labeled.clis("gh")[0].startswith(
        "gh pr comment 7 --repo example/mlserve --body Review environment `acme/pr-7` is up: scoring URI "
        f"{OUTPUTS['pr-7']['scoring_uri']} "
    )

    workspace.git("commit", "-q", "--allow-empty", "-m", "a second push")
    workspace.git("push", "-q", "origin", "HEAD:refs/heads/feature")
    again = run(workspace, "pull_request", pull_request("synchronize", workspace))
    assert again.returncode == 0, again.log
    assert "Review environment/up" in [job for job, _ in again.jobs]
    review = [c.line for c in again.calls if c.argv[0] == "pulumi" and c.job == "up"]
    assert review == setup, "config copied from dev again: the runner has no Pulumi.pr-7.yaml"

    closed = run(workspace, "pull_request", pull_request("closed", workspace))
    assert closed.returncode == 0, closed.log
    assert [job for job, _ in closed.jobs] == ["Review environment/down"]
    assert closed.clis("pulumi") == [
        "pulumi login",
        "pulumi stack select acme/pr-7",
        "pulumi destroy --stack acme/pr-7 --yes --non-interactive",
        "pulumi stack rm acme/pr-7 --yes --non-interactive",
    ]


# Pushes


def test_a_push_to_main_tests_then_deploys_dev_then_prod_with_smoke_tests(workspace: Workspace) -> None:
    result = run(workspace, "push", push("main", workspace))
    assert result.returncode == 0, result.log
    assert checked_first(result.jobs) == [
        ("dev/Deploy a stack/Deploy dev", "success"),
        ("prod/Deploy a stack/Deploy prod", "success"),
    ]
    assert ups(result) == [("up acme/dev", "1"), ("up acme/prod", "1")]
    assert result.clis("pulumi")[:3] == [
        "pulumi stack select --create --stack acme/dev --non-interactive",  # a new org's first run creates it
        "pulumi up --stack acme/dev --non-interactive --yes --policy-pack policy --diff",
        "pulumi stack output --stack acme/dev --json --show-secrets",
    ]
    assert [c.split(" --content-type")[0] for c in result.clis("aws")] == [f"{SMOKE}dev", f"{SMOKE}prod"]
    deploy_role = f"role-to-assume={BOTH['AWS_DEPLOY_ROLE_ARN']} aws-region=eu-west-1 role-duration-seconds=7200"
    assert actions(result, "aws-actions/configure-aws-credentials") == [deploy_role, deploy_role]
    assert (
        actions(result, "azure/login")
        == ["client-id=azure-deploy-client tenant-id=tenant subscription-id=subscription"] * 2
    )


def test_a_push_to_develop_deploys_dev_only(workspace: Workspace) -> None:
    result = run(workspace, "push", push("develop", workspace))
    assert result.returncode == 0, result.log
    assert [job for job, _ in checked_first(result.jobs)] == ["dev/Deploy a stack/Deploy dev"]
    assert ups(result) == [("up acme/dev", "1")]


@pytest.mark.parametrize(
    ("variables", "cloud_actions"),
    [
        (AZURE_ONLY, ["azure/login", "azure/use-kubelogin"]),
        (AWS_ONLY, ["aws-actions/configure-aws-credentials"]),
    ],
)
def test_a_one_cloud_repository_signs_in_to_its_cloud_only(
    workspace: Workspace, variables: dict, cloud_actions: list[str]
) -> None:
    result = run(workspace, "push", push("main", workspace), variables)
    assert result.returncode == 0, result.log
    clouds = {"azure/login", "azure/use-kubelogin", "aws-actions/configure-aws-credentials"}
    used = {c.argv[1] for c in result.calls if c.argv[0] == "action"} & clouds
    assert used == set(cloud_actions)


# Failures on the way to prod


def test_a_failing_dev_deploy_stops_before_prod(workspace: Workspace) -> None:
    result = run(workspace, "push", push("main", workspace), fail=["pulumi up --stack acme/dev"])
    assert result.returncode != 0
    assert checked_first(result.jobs) == [("dev/Deploy a stack/Deploy dev", "failure")]
    assert ups(result) == [("up acme/dev", "1")], "no smoke test, no rollback of a failed up, no prod"
    assert result.clis("aws") == []


def test_a_failing_dev_smoke_test_rolls_dev_back_and_stops_before_prod(workspace: Workspace) -> None:
    before = workspace.git("rev-parse", "HEAD")
    bump_model_version(workspace, "2")
    result = run(workspace, "push", push("main", workspace, before=before), fail=[f"{SMOKE}dev"])
    assert result.returncode != 0
    assert checked_first(result.jobs) == [("dev/Deploy a stack/Deploy dev", "failure")]
    assert ups(result) == [("up acme/dev", "2"), ("up acme/dev", "1")], "the previous model comes back"


def bump_model_version(workspace: Workspace, version: str) -> None:
    for stack in ("dev", "prod"):
        path = workspace.repo / f"Pulumi.{stack}.yaml"
        path.write_text(path.read_text().replace('    version: "1"\n', f'    version: "{version}"\n'))
    workspace.git("commit", "-q", "-am", f"model {version}")
    workspace.git("push", "-q", "origin", "HEAD:refs/heads/main")


# Model releases: a pull request, then the normal path to prod


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return linear_regressor(tmp_path / "registry" / "v2" / "model.onnx", [1.0, 2.0], 0.5)


def stack_model(workspace: Workspace, ref: str, stack: str) -> dict:
    text = workspace.git("show", f"{ref}:Pulumi.{stack}.yaml", cwd=workspace.remote)
    return yaml.safe_load(text)["config"]["mlserve:model"]


def test_a_release_by_hand_goes_through_a_pull_request_to_prod(workspace: Workspace, model: Path) -> None:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    inputs = {"source": str(model), "version": "2", "sha256": ""}
    released = run(workspace, "workflow_dispatch", {"workflow": "model-release.yml", "inputs": inputs}, real_plans=True)
    assert released.returncode == 0, released.log
    assert released.jobs == [("Model release/Propose the release as a pull request", "success")]
    # The branch on GitHub: the stack files and the refreshed plans, one commit on main.
    assert workspace.branches() == ["main", "model-release/2"]
    changed = workspace.git("diff", "--name-only", "main", "model-release/2", cwd=workspace.remote).split()
    assert changed == ["Pulumi.dev.yaml", "Pulumi.prod.yaml", "plans/dev.txt", "plans/prod.txt"]
    assert (
        workspace.git("log", "--format=%s", "main..model-release/2", cwd=workspace.remote) == "Release model version 2"
    )
    for stack in ("dev", "prod"):
        assert stack_model(workspace, "model-release/2", stack) == {
            "name": "weather-rain",
            "version": "2",
            "source": str(model),
            "sha256": digest,
        }
    plan = workspace.git("show", "model-release/2:plans/dev.txt", cwd=workspace.remote)
    assert digest in plan, "the committed plan shows the new model"
    (create,) = released.clis("gh")[1:]
    assert create.startswith("gh pr create --base main --head model-release/2 --title Release model version 2")
    assert released.clis("gh")[0].startswith("gh pr list --head model-release/2 --state open")

    # Its pull request previews the new model ...
    workspace.fetch()
    workspace.git("checkout", "-q", "origin/model-release/2")
    preview = run(workspace, "pull_request", pull_request("opened", workspace))
    assert sorted(ups(preview)) == [("preview acme/dev", "2"), ("preview acme/prod", "2")]
    # ... from the model the release fetched: the release kept it under the new stack files' key,
    # which is the key the previews and the deploys restore (no model-store access needed for them).
    (kept,) = actions(released, "actions/cache")
    assert kept.startswith("path=~/.cache/mlserve/models key=mlserve-models-")
    assert actions(preview, "actions/cache") == [kept, kept]
    # ... and merging it deploys dev, then prod, with the new model. Prod's smoke test fails here:
    # the previous model comes back and the run is red.
    before = workspace.git("rev-parse", "origin/main")
    workspace.git("push", "-q", "origin", "HEAD:refs/heads/main")
    merged = run(workspace, "push", push("main", workspace, before=before), fail=[f"{SMOKE}prod"])
    assert merged.returncode != 0
    assert checked_first(merged.jobs) == [
        ("dev/Deploy a stack/Deploy dev", "success"),
        ("prod/Deploy a stack/Deploy prod", "failure"),
    ]
    assert ups(merged) == [("up acme/dev", "2"), ("up acme/prod", "2"), ("up acme/prod", "1")]
    assert actions(merged, "actions/cache") == [kept, kept]
    digest_of_stack_files = kept.split()[1].removeprefix("key=mlserve-models-")
    assert len(digest_of_stack_files) == 64, "act evaluated hashFiles over the stack files"


def test_a_release_from_a_training_pipeline_updates_its_open_pull_request(workspace: Workspace, model: Path) -> None:
    payload = {"action": "model-registered", "client_payload": {"source": str(model), "version": "2"}}
    result = run(workspace, "repository_dispatch", payload, answers={"gh pr list": "12\n"})
    assert result.returncode == 0, result.log
    assert [job for job, _ in result.jobs] == ["Model release/Propose the release as a pull request"]
    record = next(c for c in result.clis("python") if "record" in c)
    stacks = "Pulumi.dev.yaml Pulumi.prod.yaml"
    assert record == f"python scripts/release_model.py record --source {model} --version 2 --sha256  {stacks}"
    assert result.clis("make") == ["make .venv/.installed-stamp", "make plans"]
    assert result.clis("gh")[1].startswith("gh pr edit model-release/2 --title Release model version 2")
    assert stack_model(workspace, "model-release/2", "prod")["version"] == "2"


@pytest.fixture
def registry(tmp_path: Path, workspace: Workspace) -> tuple[Path, dict[str, str]]:
    """The dev and prod stacks run models:/tariff/1 from an MLflow registry on local files."""
    for stack in ("dev", "prod"):
        path = workspace.repo / f"Pulumi.{stack}.yaml"
        path.write_text(
            path.read_text().replace('    version: "1"\n', '    version: "1"\n    source: "models:/tariff/1"\n')
        )
    workspace.git("commit", "-q", "-am", "models from the registry")
    workspace.git("push", "-q", "origin", "HEAD:refs/heads/main")
    (tmp_path / "mlflow").mkdir()
    return tmp_path / "mlflow", ALLOW_FILE_STORE


def test_the_weekly_release_proposes_a_newer_registered_version(
    workspace: Workspace, registry: tuple[Path, dict[str, str]], model: Path
) -> None:
    directory, env = registry
    tracking = register(directory, model, "tariff", versions=2)
    variables = {**BOTH, "MLFLOW_TRACKING_URI": tracking}
    result = run(workspace, "schedule", {"cron": "0 11 * * 1"}, variables, env=env)
    assert result.returncode == 0, result.log
    assert [job for job, _ in result.jobs] == [
        "Model release/Newest registered version",
        "Model release/Propose the release as a pull request",
    ]
    assert stack_model(workspace, "model-release/2", "dev")["source"] == "models:/tariff/2"
    assert result.clis("gh")[1].startswith("gh pr create --base main --head model-release/2")


def test_the_weekly_release_does_nothing_when_nothing_is_newer(
    workspace: Workspace, registry: tuple[Path, dict[str, str]], model: Path
) -> None:
    directory, env = registry
    tracking = register(directory, model, "tariff", versions=1)
    result = run(workspace, "schedule", {"cron": "0 11 * * 1"}, {**BOTH, "MLFLOW_TRACKING_URI": tracking}, env=env)
    assert result.returncode == 0, result.log
    assert [job for job, _ in result.jobs] == ["Model release/Newest registered version"]
    assert result.clis("gh") == []
    assert workspace.branches() == ["main"]


# Drift, in podman job containers


@pytest.mark.serial
@pytest.mark.skipif(missing_containers() is not None, reason=missing_containers() or "")
def test_the_weekly_drift_check_previews_both_stacks_with_the_read_identities(
    workspace: Workspace, tmp_path: Path
) -> None:
    assert triggered("schedule", {}, cron="17 6 * * 1") == ["drift.yml"]
    with podman_service(tmp_path) as socket:
        workspace.socket = socket
        result = workspace.run("schedule", {}, ["drift.yml"], BOTH, Stand(), in_containers=True)
    assert result.returncode == 0, result.log
    assert sorted(job for job, _ in result.jobs) == ["Drift detection/Drift in dev", "Drift detection/Drift in prod"]
    calls = sorted(c for c in result.clis("pulumi") if c.startswith(("pulumi preview", "pulumi refresh")))
    assert calls == sorted(
        line
        for stack in ("dev", "prod")
        for line in (
            f"pulumi preview --stack acme/{stack} --expect-no-changes --non-interactive --diff",
            f"pulumi refresh --stack acme/{stack} --yes --skip-preview --non-interactive "
            "--exclude **docker-build:index:Image**",
        )
    )
    read_role = f"role-to-assume={BOTH['AWS_PREVIEW_ROLE_ARN']} aws-region=eu-west-1 role-duration-seconds=7200"
    assert actions(result, "aws-actions/configure-aws-credentials") == [read_role, read_role]


# Upkeep: the weekly audit and the pins Dependabot cannot read


@pytest.mark.parametrize("event", ["schedule", "workflow_dispatch"])
def test_the_weekly_upkeep_audits_the_locks_and_checks_the_other_pins(workspace: Workspace, event: str) -> None:
    payload = {"cron": "23 5 * * 1"} if event == "schedule" else {"workflow": "upkeep.yml"}
    answers = {"python scripts/stale_pins.py": "all pins current\n", LOCATIONS: '["westeurope", "swedencentral"]'}
    result = run(workspace, event, payload, answers=answers)
    assert result.returncode == 0, result.log
    assert sorted(result.jobs) == [
        ("Upkeep/Azure regions", "success"),
        ("Upkeep/Pins outside Dependabot", "success"),
        ("Upkeep/Vulnerability audit", "success"),
    ]
    assert result.clis("make") == ["make audit"]
    (regions,) = [line for line in result.clis("python") if "azure_regions.py" in line]
    assert regions.startswith("python scripts/azure_regions.py /")
    assert regions.endswith("/locations.json")
    assert sorted(result.clis("python")) == [regions, "python scripts/stale_pins.py"]
    assert "AZURE_REGIONS has all 2 regions Azure lists" in result.log
    # Only the regions job signs in, and only to Azure, with the read identity's environment.
    assert [c.job for c in result.calls if c.argv[:2] == ["action", "azure/login"]] == ["azure-regions"]
    assert not [c for c in result.calls if c.argv[:2] == ["action", "aws-actions/configure-aws-credentials"]]


LOCATIONS = "az account list-locations --query [?metadata.regionType=='Physical'].name --output json"


def test_a_stale_pin_an_advisory_or_a_new_azure_region_makes_the_upkeep_run_red(workspace: Workspace) -> None:
    answers = {LOCATIONS: '["westeurope", "atlantiseast"]'}
    fail = ["make audit", "python scripts/stale_pins.py"]
    result = run(workspace, "schedule", {"cron": "23 5 * * 1"}, fail=fail, answers=answers)
    assert result.returncode != 0
    assert sorted(result.jobs) == [
        ("Upkeep/Azure regions", "failure"),
        ("Upkeep/Pins outside Dependabot", "failure"),
        ("Upkeep/Vulnerability audit", "failure"),
    ]
    assert "AZURE_REGIONS lacks atlantiseast, which Azure lists" in result.log


def test_without_an_azure_identity_the_regions_are_not_checked(workspace: Workspace) -> None:
    answers = {"python scripts/stale_pins.py": "all pins current\n"}
    result = run(workspace, "workflow_dispatch", {"workflow": "upkeep.yml"}, AWS_ONLY, answers=answers)
    assert result.returncode == 0, result.log
    assert ("Upkeep/Azure regions", "success") in result.jobs
    assert not [c for c in result.calls if c.argv[0] == "az" or c.argv[:2] == ["action", "azure/login"]]


# Model drift: each stack's captured week against its model's baseline


@pytest.fixture
def captured(tmp_path: Path, workspace: Workspace) -> dict[str, Path]:
    """Both stacks serve the demo model with a baseline; a week of capture up to now in a directory each
    (the stand-in for their capture store): dev's on ACI, warmer than the baseline; prod's by SageMaker,
    as it was."""
    model = model_with_baseline(tmp_path / "model.onnx")
    for stack in ("dev", "prod"):
        path = workspace.repo / f"Pulumi.{stack}.yaml"
        path.write_text(path.read_text().replace('    version: "1"\n', f'    version: "1"\n    source: "{model}"\n'))
    workspace.git("commit", "-q", "-am", "the model with its baseline")
    workspace.git("push", "-q", "origin", "HEAD:refs/heads/main")
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return {
        "dev": write_week(tmp_path / "dev", OURS, ("Temperature_C",), until=now),
        "prod": write_week(tmp_path / "prod", SAGEMAKER, until=now),
    }


@dataclass
class Dashboards:
    """Where the verdicts go: moto's CloudWatch (in this process, over HTTP) and Application Insights'
    ingestion stand-in (tests/drift/test_publish.py)."""

    cloudwatch: Any
    ingestion: Ingestion
    env: dict[str, str]


@pytest.fixture
def dashboards() -> Iterator[Dashboards]:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}  # fmt: skip
    ingestion = Ingestion()
    client = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=env["AWS_ENDPOINT_URL"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    yield Dashboards(client, ingestion, env)
    ingestion.server.shutdown()
    server.stop()


def step_results(result: Run, step: str) -> dict[str, str]:
    """The step's result in each job of the matrix, by stack."""
    found = {}
    for line in result.log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("step") == step and entry.get("stage") == "Main" and "stepResult" in entry:
            found[entry["matrix"]["stack"]] = entry["stepResult"]
    return found


def drift_run(
    workspace: Workspace, outputs: dict, dashboards: Dashboards, variables: dict | None = None, scheduled: bool = False
) -> Run:
    """By hand for the last 6 days, or as the Monday schedule runs it (the input's default, 7 days)."""
    stand = Stand(outputs={stack: {**OUTPUTS[stack], **values} for stack, values in outputs.items()},
                  env=dashboards.env)  # fmt: skip
    event, payload = ("schedule", {}) if scheduled else ("workflow_dispatch", {"inputs": {"days": "6"}})
    return workspace.run(event, payload, ["model-drift.yml"], variables or BOTH, stand)


def test_the_weekly_model_drift_report_fails_visibly_for_the_stack_that_drifted(
    workspace: Workspace, captured: dict[str, Path], dashboards: Dashboards
) -> None:
    assert triggered("schedule", {}, cron="41 6 * * 1") == ["model-drift.yml"]
    outputs = {
        "dev": {"aci_capture_uri": str(captured["dev"]),
                "application_insights_connection_string": dashboards.ingestion.connection_string},
        "prod": {"sagemaker_capture_uri": str(captured["prod"])},
    }  # fmt: skip
    result = drift_run(workspace, outputs, dashboards)
    assert result.returncode != 0
    assert sorted(job for job, _ in result.jobs) == [
        "Model drift/Model drift in dev",
        "Model drift/Model drift in prod",
    ]
    # act gives every job of a matrix the matrix's result once one fails: each stack's step says which failed.
    assert step_results(result, "Drift report") == {"dev": "failure", "prod": "success"}
    assert "::error title=Model drift in dev::captured requests drifted past the threshold" in result.log
    assert "Temperature_C: wasserstein_distance_in_std" in result.log
    reports = sorted(line for line in result.clis("python") if "stack_drift.py" in line)
    assert [line.split(" --markdown ")[0] for line in reports] == [
        f"python scripts/stack_drift.py --stack {stack} --outputs {line.split('--outputs ')[1].split()[0]} "
        f"--days 6 --output-dir drift-report/{stack}"
        for stack, line in zip(("dev", "prod"), reports, strict=True)
    ]
    # The report is kept whatever the verdict; only the read identity signs in.
    assert sorted(actions(result, "actions/upload-artifact")) == [
        f"name=drift-report-{stack} path=drift-report/{stack} if-no-files-found=ignore" for stack in ("dev", "prod")
    ]
    read_role = f"role-to-assume={BOTH['AWS_PREVIEW_ROLE_ARN']} aws-region=eu-west-1 role-duration-seconds=7200"
    assert actions(result, "aws-actions/configure-aws-credentials") == [read_role, read_role]
    # Each verdict is on its stack's dashboard: dev's as the workbook's event, with the run to open
    # (and nothing else is sent to the stack's Application Insights).
    (event,) = [e["data"]["baseData"] for e in dashboards.ingestion.envelopes]
    assert event["name"] == "mlserve drift report"
    properties = event["properties"]
    assert (properties["stack"], properties["target"], properties["drifted"]) == ("dev", "aci", "true")
    assert properties["drifted_columns"] == "Temperature_C"
    assert "/actions/runs/" in properties["report"]
    # The secret is read only for the stack that has it (prod here has no Azure target).
    assert [c for c in result.clis("pulumi") if "--show-secrets" in c] == [
        f"pulumi stack output --stack {ORG}/dev application_insights_connection_string --show-secrets"
    ]
    assert f"::add-mask::{dashboards.ingestion.connection_string}" in result.log
    assert drift_metric(dashboards, "mlserve-prod") == [0.0]
    assert drift_metric(dashboards, "mlserve-dev") == []


def drift_metric(dashboards: Dashboards, endpoint: str) -> list[float]:
    end = datetime.now(UTC) + timedelta(minutes=5)
    answer = dashboards.cloudwatch.get_metric_statistics(
        Namespace="mlserve/Drift", MetricName="Drifted", Dimensions=[{"Name": "EndpointName", "Value": endpoint}],
        StartTime=end - timedelta(days=1), EndTime=end, Period=86400, Statistics=["Maximum"],
    )  # fmt: skip
    return [point["Maximum"] for point in answer["Datapoints"]]


def test_no_drift_and_a_stack_without_capture_make_a_green_scheduled_run_signed_in_to_one_cloud(
    workspace: Workspace, captured: dict[str, Path], dashboards: Dashboards
) -> None:
    outputs = {"prod": {"sagemaker_capture_uri": str(captured["prod"])}}
    result = drift_run(workspace, outputs, dashboards, AWS_ONLY, scheduled=True)
    assert result.returncode == 0, result.log
    assert any("stack_drift.py --stack prod" in line and "--days 7 " in line for line in result.clis("python"))
    assert "prod: the sagemaker verdict is on the CloudWatch dashboard (mlserve-prod, eu-west-1)" in result.log
    assert drift_metric(dashboards, "mlserve-prod") == [0.0]
    assert sorted(result.jobs) == [("Model drift/Model drift in dev", "success"),
                                   ("Model drift/Model drift in prod", "success")]  # fmt: skip
    assert "dev: no capture location among the stack's outputs (capture is off): no report" in result.log
    assert "predictions: population_stability_index" in result.log
    assert not {c.argv[1] for c in result.calls if c.argv[0] == "action"} & {"azure/login", "azure/use-kubelogin"}


# The documentation site


def test_a_push_to_main_builds_the_site_then_publishes_it(workspace: Workspace) -> None:
    payload = push("main", workspace)
    assert "docs.yml" in triggered("push", payload)
    assert "docs.yml" not in triggered("push", push("develop", workspace))
    assert "docs.yml" not in triggered("pull_request", pull_request("opened", workspace))
    result = workspace.run("push", payload, ["docs.yml"], BOTH, Stand())
    assert result.returncode == 0, result.log
    assert result.jobs == [("Docs/Build the site", "success"), ("Docs/Publish to GitHub Pages", "success")]
    assert result.clis("make") == ["make docs"]
    assert actions(result, "actions/upload-pages-artifact") == ["path=site"]
    assert actions(result, "actions/deploy-pages") == [""]
    assert not {c.argv[1] for c in result.calls if c.argv[0] == "action"} & {
        "azure/login",
        "aws-actions/configure-aws-credentials",
    }, "publishing the site signs in to no cloud"


def test_a_site_that_does_not_build_is_not_published(workspace: Workspace) -> None:
    result = run(workspace, "workflow_dispatch", {"workflow": "docs.yml"}, fail=["make docs"])
    assert result.returncode != 0
    assert result.jobs == [("Docs/Build the site", "failure")]
    assert actions(result, "actions/upload-pages-artifact") == []
    assert actions(result, "actions/deploy-pages") == []
