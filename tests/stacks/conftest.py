from __future__ import annotations

import os

import pytest

from offline.mocks import REPO, Evaluation, evaluate


@pytest.fixture(autouse=True)
def _in_project_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    # `pulumi up` runs the program from the project directory; paths in it are relative to that.
    monkeypatch.chdir(REPO)


@pytest.fixture(scope="module")
def dev() -> Evaluation:
    os.chdir(REPO)
    return evaluate("dev")


@pytest.fixture(scope="module")
def prod() -> Evaluation:
    os.chdir(REPO)
    return evaluate("prod")
