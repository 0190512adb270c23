"""Delivery: the workflows lint clean (actionlint, checkov), and the smoke test catches a broken endpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from offline.mocks import REPO
from stacks.model_source import BUNDLED_MODEL, sample_row
from stacks.versions import KUBELOGIN_VERSION
from tests.checkov import run_checkov
from tests.conftest import PRIMARY_KEY
from tests.serving.models import linear_regressor
from tests.serving.server import RunningServer, running_server
from tests.tls import Proxy, needs_caddy, tls_proxy

WORKFLOWS = REPO / ".github" / "workflows"
# checkov GitHub Actions checks that do not apply, and why.
SKIPPED_CHECKS = {
    "CKV_GHA_7": "model-release.yml takes the model's source, version and sha256 as inputs by design (a release "
    "by hand); they pass through the environment, scripts/release_model.py validates them and fetches the source to "
    "check the digest, and they become a pull request that is reviewed, previewed and merged before anything deploys",
}


def workflows() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(WORKFLOWS.glob("*.yml"))}


def test_actionlint_finds_nothing() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "actionlint"), "-no-color"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_checkov_github_actions_checks_pass(tmp_path: Path) -> None:
    report = run_checkov(REPO, "github_actions", SKIPPED_CHECKS, cwd=tmp_path)
    assert report.failed == []
    assert report.passed > 20


def test_every_workflow_has_least_privilege_defaults() -> None:
    for name, workflow in workflows().items():
        assert workflow["permissions"] == {"contents": "read"}, name
        for job_name, job in workflow["jobs"].items():
            for step in job.get("steps", []):
                uses = step.get("uses", "")
                if uses and not uses.startswith("./"):
                    assert "@v" in uses, f"{name}:{job_name} uses an unpinned action {uses}"


def test_deploys_of_one_stack_never_overlap_and_prod_waits_for_approval() -> None:
    deploy = workflows()["deploy.yml"]["jobs"]["deploy"]
    assert deploy["concurrency"] == {"group": "deploy-${{ inputs.stack }}", "cancel-in-progress": False}
    assert deploy["environment"]["name"] == "${{ inputs.environment }}"
    main = workflows()["main.yml"]["jobs"]
    assert main["prod"]["needs"] == "dev"
    assert main["prod"]["with"]["environment"] == "production"
    assert main["dev"]["needs"] == ["test", "audit"]


def test_forks_get_the_offline_plan_and_no_credentials() -> None:
    jobs = workflows()["pull-request.yml"]["jobs"]
    assert "head.repo.full_name == github.repository" in jobs["preview"]["if"]
    assert "if" not in jobs["offline-plan"]
    assert "permissions" not in jobs["offline-plan"], "inherits contents: read only"


def test_drift_detection_runs_weekly_and_fails_on_changes() -> None:
    drift = workflows()["drift.yml"]
    assert drift[True]["schedule"]  # YAML reads the `on` key as True
    script = next(s["run"] for s in drift["jobs"]["refresh"]["steps"] if "run" in s and "refresh" in s["run"])
    # A preview after a refresh honours ignoreChanges (autoscaled node counts, auto-upgraded versions);
    # `refresh --preview-only` would report them as drift every week.
    refresh, preview = (
        next(line for line in script.splitlines() if f"pulumi {verb} " in line) for verb in ("refresh", "preview")
    )
    assert script.index(refresh) < script.index(preview)
    assert "--expect-no-changes" in preview
    assert "--preview-only" not in script
    # Images are not refreshed: their saved ECR login has expired by then.
    assert "--exclude '**docker-build:index:Image**'" in refresh
    uses = [s.get("uses", "") for s in drift["jobs"]["refresh"]["steps"]]
    assert any(u.startswith("docker/setup-buildx-action") for u in uses), "a preview builds the image"


def test_review_environments_get_their_config_on_every_run() -> None:
    """Pulumi.pr-<n>.yaml exists only on the runner that wrote it: a later push must not `up` without config."""
    up = workflows()["review-environment.yml"]["jobs"]["up"]
    scripts = [s["run"] for s in up["steps"] if "run" in s]
    setup = next(s for s in scripts if "stack init" in s)
    config_line = next(line for line in setup.splitlines() if "config cp" in line)
    assert config_line.strip() == 'pulumi config cp --stack "$DEV" --dest "$STACK"'
    assert not config_line.startswith((" ", "\t")), "runs on every run, not only inside the init branch"
    assert "--copy-config-from" not in setup
    steps = [s.get("name", s.get("uses", "")) for s in up["steps"]]
    assert steps.index("pr-<number> with dev's config, on every run") < next(
        i for i, s in enumerate(up["steps"]) if s.get("with", {}).get("command") == "up"
    )


def test_every_workflow_installs_the_kubelogin_the_program_expects() -> None:
    found = 0
    for name, workflow in workflows().items():
        for job in workflow["jobs"].values():
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("azure/use-kubelogin"):
                    found += 1
                    assert step["with"]["kubelogin-version"] == KUBELOGIN_VERSION, name
    assert found >= 3  # preview, deploy, drift


DEMO_SAMPLE = sample_row(BUNDLED_MODEL)


def _outputs(tmp_path: Path, **values: object) -> Path:
    """Stack outputs as `pulumi stack output --json` writes them; the demo model's sample row unless given."""
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps({"model_sample": DEMO_SAMPLE, **values}))
    return path


def run_smoke(outputs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "smoke_test.py"), str(outputs)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SMOKE_READY_TIMEOUT": "2", **env},
    )


@pytest.fixture(scope="module")
def https(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The keyed server behind the ACI TLS proxy, as a deployed dev stack answers."""
    with tls_proxy(tmp_path_factory.mktemp("smoke-tls"), server.port) as proxy:
        yield proxy


def run_https_smoke(proxy: Proxy, outputs: Path) -> subprocess.CompletedProcess[str]:
    return run_smoke(outputs, SSL_CERT_FILE=str(proxy.root_ca), SMOKE_HTTP_PORT=str(proxy.http_port))


@needs_caddy
def test_smoke_test_passes_against_a_healthy_endpoint(https: Proxy, tmp_path: Path) -> None:
    result = run_https_smoke(https, _outputs(tmp_path, scoring_uri=https.url + "/score", primary_key=PRIMARY_KEY))
    assert result.returncode == 0, result.stderr
    assert f"ok {https.url}/score: prediction 1" in result.stdout
    assert "redirects to https://localhost/v2/health/ready" in result.stdout


@needs_caddy
def test_smoke_test_fails_with_a_wrong_key(https: Proxy, tmp_path: Path) -> None:
    outputs = _outputs(tmp_path, scoring_uri=https.url + "/score", primary_key="wrong-key-0123456789abcdef")
    result = run_https_smoke(https, outputs)
    assert result.returncode != 0
    assert "HTTP 401" in result.stderr


@needs_caddy
def test_smoke_test_takes_its_row_from_the_stacks_model(tmp_path: Path) -> None:
    """Any model: the row comes from the model (sample_input metadata, or zeros of its width)."""
    model = linear_regressor(tmp_path / "m" / "model.onnx", [1.0, 2.0, 3.0], 0.5)
    assert sample_row(model) == [0.0, 0.0, 0.0]
    env = {"SERVING_API_KEYS": PRIMARY_KEY}
    with (
        running_server(tmp_path, env=env, args=["--model", str(model)]) as server,
        tls_proxy(tmp_path, server.port) as proxy,
    ):
        outputs = _outputs(tmp_path, scoring_uri=proxy.url + "/score", primary_key=PRIMARY_KEY, model_sample=[1, 1, 1])
        result = run_https_smoke(proxy, outputs)
    assert result.returncode == 0, result.stderr
    assert f"ok {proxy.url}/score: prediction 6.5" in result.stdout


def test_smoke_test_refuses_to_send_a_key_over_plain_http(server: RunningServer, tmp_path: Path) -> None:
    result = run_smoke(_outputs(tmp_path, scoring_uri=server.url + "/score", primary_key=PRIMARY_KEY))
    assert result.returncode != 0
    assert "not HTTPS, so the key would travel in clear text" in result.stderr


def test_smoke_test_fails_when_nothing_answers(tmp_path: Path) -> None:
    result = run_smoke(_outputs(tmp_path, scoring_uri="https://127.0.0.1:9/score", primary_key=PRIMARY_KEY))
    assert result.returncode != 0
    assert "not ready" in result.stderr


@pytest.mark.parametrize(("answer", "ok"), [("1\n", True), ("", False)])
def test_smoke_test_invokes_sagemaker_with_the_aws_cli(tmp_path: Path, answer: str, ok: bool) -> None:
    fake_aws = tmp_path / "aws"
    fake_aws.write_text(
        f"#!{sys.executable}\nimport sys, json\n"
        f"open({str(tmp_path / 'args.json')!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
        f"open(sys.argv[-1], 'w').write({answer!r})\n"
    )
    fake_aws.chmod(0o755)
    outputs = _outputs(
        tmp_path, sagemaker_endpoint_name="mlserve-prod", sagemaker_region="eu-west-1", model_sample=[1.5, 0, 2]
    )
    result = run_smoke(outputs, AWS_CLI=str(fake_aws))
    assert (result.returncode == 0) is ok, result.stderr
    args = json.loads((tmp_path / "args.json").read_text())
    assert args[:6] == [
        "sagemaker-runtime",
        "invoke-endpoint",
        "--region",
        "eu-west-1",
        "--endpoint-name",
        "mlserve-prod",
    ]


def test_model_release_ships_source_version_and_digest_weekly_or_on_demand() -> None:
    release = workflows()["model-release.yml"]
    triggers = release[True]  # YAML 1.1 reads the key `on` as True
    assert set(triggers["workflow_dispatch"]["inputs"]) == {"source", "version", "sha256"}
    assert triggers["repository_dispatch"] == {"types": ["model-registered"]}
    assert triggers["schedule"] == [{"cron": "0 11 * * 1"}]  # Monday 11:00 UTC
    propose = release["jobs"]["propose"]
    step = next(s for s in propose["steps"] if s.get("name", "").startswith("Write source, version and sha256"))
    assert "${{" not in step["run"], "inputs reach the script through the environment only"
    assert {"SOURCE", "VERSION", "SHA256"} <= set(step["env"])
    assert "scripts/release_model.py record" in step["run"]
    # A release is a pull request: nothing deploys from this workflow; merging it runs main.yml.
    assert set(release["jobs"]) == {"newest", "propose"}
    assert release["jobs"]["newest"]["permissions"]["contents"] == "read"
    assert propose["permissions"] == {"contents": "write", "pull-requests": "write", "id-token": "write"}


def test_develop_deploys_dev_and_only_main_reaches_prod() -> None:
    main = workflows()["main.yml"]
    assert main[True]["push"]["branches"] == ["main", "develop"]
    assert main["jobs"]["prod"]["if"] == "github.ref == 'refs/heads/main'"
    assert "if" not in main["jobs"]["dev"]


def test_sessions_last_as_long_as_the_longest_deploy() -> None:
    """OIDC sessions default to an hour; an AKS or SageMaker `up` can take longer."""
    from bootstrap.aws_ci import MAX_SESSION_SECONDS

    found = 0
    for name, workflow in workflows().items():
        for job_name, job in workflow["jobs"].items():
            steps = job.get("steps", [])
            for step in steps:
                if step.get("uses", "").startswith("aws-actions/configure-aws-credentials"):
                    found += 1
                    assert step["with"]["role-duration-seconds"] == MAX_SESSION_SECONDS, f"{name}:{job_name}"
            if any(
                s.get("with", {}).get("command") in {"up", "preview"} or "pulumi " in s.get("run", "") for s in steps
            ):
                env = {**workflow.get("env", {}), **job.get("env", {})}
                assert env.get("ARM_USE_OIDC") == "${{ vars.AZURE_CLIENT_ID != '' }}", f"{name}:{job_name}"
                assert env["ARM_CLIENT_ID"] == "${{ vars.AZURE_CLIENT_ID }}", f"{name}:{job_name}"
    assert found >= 5
