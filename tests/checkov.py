"""Run checkov (installed in its own venv by `make test`) and collect what it found."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from offline.mocks import REPO


@dataclass
class CheckovReport:
    failed: list[tuple[str, str]]  # (check id, resource or file)
    passed: int


def run_checkov(directory: Path, framework: str, skipped: dict[str, str], cwd: Path | None = None) -> CheckovReport:
    """`skipped` maps each check id to the reason it does not apply; the reasons live with the tests."""
    checkov = REPO / os.environ.get("CHECKOV", ".tools/checkov/bin/checkov")  # relative paths: to the repo
    if not checkov.exists():
        pytest.fail(f"checkov not found at {checkov}: run `make test`, which installs it in .tools/checkov")
    command = [str(checkov), "-d", str(directory), "--framework", framework, "--output", "json", "--compact", "--quiet"]
    if skipped:
        command += ["--skip-check", ",".join(skipped)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=cwd)
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    return CheckovReport(
        failed=[
            (c["check_id"], c.get("resource") or c.get("file_path"))
            for r in reports
            for c in r.get("results", {}).get("failed_checks", [])
        ],
        passed=sum(r.get("summary", {}).get("passed", 0) for r in reports),
    )
