"""An offline plan: the resources a stack declares, as text, from the real program under mocks.

    python -m offline.plan --stack dev            # print
    python -m offline.plan --stack dev --write    # update plans/dev.txt (committed)
    python -m offline.plan --stack dev --check    # exit 1 if plans/dev.txt is out of date

It needs no cloud credentials, so pull requests from forks get a reviewable infrastructure diff too.
Values computed by the clouds (ids, names with random suffixes, endpoints) are the mocks' stand-ins.
Secrets are masked; the image tag's source fingerprint is shown as <fingerprint> so the plan only
changes when the infrastructure does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path
from typing import Any

import pulumi

from offline.mocks import REPO, Evaluation, Recorded, evaluate
from stacks.config import NAMESPACE
from stacks.stack_file import stack_file_problems

PLANS = REPO / "plans"
MASK = "[secret]"
MAX_VALUE = 160


def _flatten(value: Any, path: str, secrets: set[str]) -> list[tuple[str, str]]:
    if path in secrets:
        return [(path, MASK)]
    if isinstance(value, dict) and value:
        rows = []
        for key in sorted(value):
            rows += _flatten(value[key], f"{path}.{key}" if path else key, secrets)
        return rows
    long_list = isinstance(value, list) and len(json.dumps(value)) > MAX_VALUE
    if isinstance(value, list) and value and (long_list or any(isinstance(v, (dict, list)) for v in value)):
        rows = []
        for index, item in enumerate(value):
            rows += _flatten(item, f"{path}[{index}]", secrets)
        return rows
    text = json.dumps(value, sort_keys=True)
    if len(text) > MAX_VALUE:
        text = text[: MAX_VALUE - 3] + "..."
    return [(path, text)]


def _json_strings(inputs: dict[str, Any]) -> dict[str, Any]:
    """Policy documents and the like are JSON in a string: show them as structure."""
    shown = {}
    for key, value in inputs.items():
        if isinstance(value, str) and value[:1] in "{[":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        shown[key] = value
    return shown


def render(stack: str, evaluation: Evaluation) -> str:
    by_urn = {r.urn: r for r in evaluation.resources}
    children: dict[str, list[Recorded]] = {}
    for resource in evaluation.resources:
        parent = resource.parent if resource.parent in by_urn else ""
        children.setdefault(parent, []).append(resource)
    lines = [
        f"# Offline plan of stack '{stack}': what `pulumi up` would declare (python -m offline.plan --stack {stack}).",
        "# Cloud-computed values are stand-ins; secrets are masked.",
        f"# {sum(r.custom for r in evaluation.resources)} resources in "
        f"{sum(not r.custom for r in evaluation.resources)} components",
        "",
    ]

    def walk(parent: str, depth: int) -> None:
        for resource in sorted(children.get(parent, []), key=lambda r: (r.type, r.name)):
            flags = "  [protected]" if resource.protect else ""
            lines.append(f"{'  ' * depth}{resource.type}  {resource.name}{flags}")
            for path, value in _flatten(_json_strings(resource.inputs), "", resource.secret_paths):
                if not path:
                    continue
                lines.append(f"{'  ' * depth}    {path}: {value}")
            walk(resource.urn, depth + 1)

    walk("", 0)
    lines += ["", "# Stack outputs"]
    for name in sorted(evaluation.outputs):
        value = MASK if name in evaluation.secret_outputs else json.dumps(evaluation.outputs[name])
        lines.append(f"{name}: {value}")
    text = "\n".join(lines) + "\n"
    for image in evaluation.of_type("docker-build:index:Image"):
        for tag in image.inputs.get("tags", []):
            fingerprint = tag.rsplit("-", 1)[-1]
            if re.fullmatch(r"[0-9a-f]{12}", fingerprint):
                text = text.replace(fingerprint, "<fingerprint>")
    return text


def plan(stack: str, project_dir: Path = REPO) -> str:
    return render(stack, evaluate(stack, project_dir=project_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m offline.plan", description="Offline plan of a stack (no cloud, no credentials)"
    )
    parser.add_argument("--stack", required=True)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write plans/<stack>.txt")
    mode.add_argument("--check", action="store_true", help="fail if plans/<stack>.txt is out of date")
    parser.add_argument("--project-dir", type=Path, default=REPO, help="where Pulumi.yaml and the stack file are")
    args = parser.parse_args(argv)
    if not (args.project_dir / f"Pulumi.{args.stack}.yaml").is_file():
        print(f"error: no stack file Pulumi.{args.stack}.yaml in {args.project_dir}", file=sys.stderr)
        return 2
    shape = stack_file_problems(args.project_dir / f"Pulumi.{args.stack}.yaml", NAMESPACE)
    if shape:  # as `pulumi preview` says it: one line each, no traceback
        print("\n".join(shape), file=sys.stderr)
        return 2
    try:
        text = plan(args.stack, args.project_dir)
    except pulumi.RunError as error:  # as `pulumi preview` shows it: the message, no traceback
        print(error, file=sys.stderr)
        return 2
    target = PLANS / f"{args.stack}.txt"
    if args.write:
        PLANS.mkdir(exist_ok=True)
        target.write_text(text)
        print(f"wrote {target.relative_to(REPO)}")
    elif args.check:
        if not target.is_file() or target.read_text() != text:
            print(f"{target.relative_to(REPO)} is out of date: run `make plans`", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
