"""Tags and labels that say which project, stack and model a resource belongs to."""

from __future__ import annotations

from stacks.config import StackConfig


def cloud_tags(config: StackConfig) -> dict[str, str]:
    return {
        "project": config.project,
        "stack": config.stack,
        "model": config.model.name,
        "model-version": config.model.version,
        "managed-by": "pulumi",
    }


def kubernetes_labels(config: StackConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": config.project,
        "app.kubernetes.io/instance": config.stack,
        "app.kubernetes.io/version": config.model.version,
        "app.kubernetes.io/managed-by": "pulumi",
        "mlserve/model": config.model.name,
    }
