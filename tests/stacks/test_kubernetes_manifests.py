"""Render the Kubernetes objects the prod stack declares and check them with real validators.

kubernetes-validate checks them (strictly) against the API schemas of the stack's Kubernetes
version; checkov runs its Kubernetes policies. Every skipped check has its reason here.
"""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from offline.mocks import Evaluation
from tests.checkov import run_checkov

# checkov Kubernetes checks that do not apply, and why.
CUSTOM_GROUPS = {"networking.istio.io", "secrets-store.csi.x-k8s.io"}
SKIPPED_CHECKS: dict[str, str] = {}  # none: every checkov Kubernetes check applies and passes


def manifests(evaluation: Evaluation) -> list[dict]:
    documents = []
    for resource in evaluation.resources:
        if not resource.type.startswith("kubernetes:") or not resource.custom:
            continue
        document = dict(resource.inputs)
        if document.get("kind") == "Secret" and "stringData" in document:
            document["stringData"] = dict.fromkeys(document["stringData"], "redacted")
        documents.append(document)
    return documents


@pytest.fixture(scope="module")
def rendered(prod: Evaluation, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("manifests")
    for index, document in enumerate(manifests(prod)):
        (directory / f"{index:02d}-{document['kind'].lower()}.yaml").write_text(yaml.safe_dump(document))
    return directory


def test_the_prod_stack_declares_the_whole_workload(prod: Evaluation) -> None:
    kinds = sorted(d["kind"] for d in manifests(prod))
    assert kinds == sorted(
        [
            "Namespace",
            "Secret",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "NetworkPolicy",
            "ServiceAccount",
            "CronJob",
            # The TLS front: the Key Vault certificate's sync, the Istio gateway and route.
            "SecretProviderClass",
            "Deployment",
            "NetworkPolicy",
            "Gateway",
            "VirtualService",
        ]
    )


def test_manifests_validate_strictly_against_the_kubernetes_schemas(prod: Evaluation) -> None:
    version = "1.33.0"
    for document in manifests(prod):
        if document["apiVersion"].split("/")[0] in CUSTOM_GROUPS:
            continue  # their schemas come with the add-ons' CRDs; tests/stacks/test_azure_stacks.py checks them
        kubernetes_validate.validate(document, version, strict=True)


def test_checkov_kubernetes_checks_pass(rendered: Path) -> None:
    report = run_checkov(rendered, "kubernetes", SKIPPED_CHECKS)
    assert report.failed == []
    assert report.passed > 50


def test_the_workload_with_capture_still_validates_and_passes_checkov(tmp_path: Path) -> None:
    """Capture adds the serving pods' service account (workload identity) and its label."""
    from offline.mocks import evaluate

    captured = evaluate("prod", {"mlserve:capture": {"percent": 5}})
    documents = manifests(captured)
    accounts = [d for d in documents if d["kind"] == "ServiceAccount"]
    assert {a["metadata"]["name"] for a in accounts} == {"mlserve-batch", "mlserve-serving"}
    for index, document in enumerate(documents):
        if document["apiVersion"].split("/")[0] not in CUSTOM_GROUPS:
            kubernetes_validate.validate(document, "1.33.0", strict=True)
        (tmp_path / f"{index:02d}-{document['kind'].lower()}.yaml").write_text(yaml.safe_dump(document))
    report = run_checkov(tmp_path, "kubernetes", SKIPPED_CHECKS)
    assert report.failed == []
