"""Record a model release in the stack files, or find the newest registered version (model-release.yml).

    python scripts/release_model.py record --source S --version V [--sha256 H] Pulumi.dev.yaml Pulumi.prod.yaml
    python scripts/release_model.py newest Pulumi.dev.yaml

`record` fetches the source (as `pulumi preview` will), checks or computes the sha256 of the model
that ships, and writes mlserve:model.source, .version (a string) and .sha256 into each stack file,
keeping everything else in the file as it is. `newest` asks where the stack's model comes from for
its newest version: the MLflow registry for models:/<name>/<version>, or a `latest.json` next to the
artifact or in the directory above ({"version": ..., "source": ..., "sha256": ...}) for https://,
s3:// and az:// sources.
It prints `release=true|false`, `source=`, `version=`, `sha256=` lines for $GITHUB_OUTPUT.
Exit codes: 0 done, 2 bad input (the message says what).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stacks.model_source import ModelSourceError, fetch_model

VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
SHA256 = re.compile(r"[0-9a-f]{64}")
SECTION = "  mlserve:model:"


class ReleaseError(Exception):
    pass


def model_settings(stack_file: Path) -> dict:
    document = yaml.safe_load(stack_file.read_text()) or {}
    return dict((document.get("config") or {}).get("mlserve:model") or {})


def write_model_settings(stack_file: Path, changes: dict[str, str]) -> None:
    """Replace the keys in the file's `mlserve:model:` block; comments and other sections stay."""
    lines = stack_file.read_text().splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == SECTION)
    except StopIteration:
        raise ReleaseError(f"{stack_file}: no `mlserve:model:` section under config") from None
    end = start + 1
    while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
        end += 1
    block = lines[start + 1 : end]
    kept = [line for line in block if not any(line.startswith(f"    {key}:") for key in changes)]
    added = [f"    {key}: {json.dumps(value)}\n" for key, value in changes.items()]
    stack_file.write_text("".join(lines[: start + 1] + kept + added + lines[end:]))
    written = model_settings(stack_file)
    if any(written.get(key) != value for key, value in changes.items()):
        raise ReleaseError(f"{stack_file}: the model settings did not read back as written")


def record(source: str, version: str, sha256: str | None, stack_files: list[Path]) -> str:
    if not VERSION.fullmatch(version):
        raise ReleaseError(f"invalid model version {version!r}: letters, digits, '.', '_' or '-', up to 63")
    if sha256 is not None and not SHA256.fullmatch(sha256):
        raise ReleaseError(f"invalid sha256 {sha256!r}: 64 lowercase hex digits")
    try:
        artifact = fetch_model(source, sha256)
    except ModelSourceError as error:
        raise ReleaseError(str(error)) from None
    for stack_file in stack_files:
        write_model_settings(stack_file, {"source": source, "version": version, "sha256": artifact.sha256})
    return artifact.sha256


def newest(stack_file: Path) -> dict[str, str] | None:
    """The newest registered release of the stack's model, or None when it knows of none."""
    current = model_settings(stack_file)
    source = str(current.get("source") or "")
    if source.startswith("models:/"):
        name = source.removeprefix("models:/").split("/", 1)[0]
        from mlflow import MlflowClient

        versions = MlflowClient().search_model_versions(f"name='{name}'")
        if not versions:
            return None
        top = max(versions, key=lambda v: int(v.version))
        return {"source": f"models:/{name}/{top.version}", "version": str(top.version), "sha256": ""}
    if source.startswith(("https://", "s3://", "az://", "abfs://")):
        return _pointed(source)
    return None


def _pointed(source: str) -> dict[str, str] | None:
    """`latest.json` in the artifact's directory, or in the one above (…/v1/model.onnx -> …/latest.json)."""
    import fsspec

    directory = source.split("?", 1)[0].rsplit("/", 1)[0]
    for pointer in (f"{directory}/latest.json", f"{directory.rsplit('/', 1)[0]}/latest.json"):
        try:
            with fsspec.open(pointer, "rt") as file:
                latest = json.load(file)
        except (FileNotFoundError, OSError, ValueError):
            continue
        if not isinstance(latest, dict) or not {"version", "source"} <= set(latest):
            raise ReleaseError(f'{pointer}: expected {{"version": ..., "source": ..., "sha256": ...}}')
        return {key: str(latest.get(key, "")) for key in ("source", "version", "sha256")}
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/release_model.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rec = commands.add_parser("record", help="write source, version and sha256 into the stack files")
    rec.add_argument("--source", required=True)
    rec.add_argument("--version", required=True)
    rec.add_argument("--sha256", default=None, help="the digest to expect; empty: computed from the source")
    rec.add_argument("stack_files", nargs="+", type=Path)
    new = commands.add_parser("newest", help="the newest registered version, for the weekly release")
    new.add_argument("stack_file", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "record":
            digest = record(args.source, args.version, args.sha256 or None, args.stack_files)
            print(f"recorded version {args.version} (sha256 {digest}) in {', '.join(map(str, args.stack_files))}")
            return 0
        found = newest(args.stack_file)
    except ReleaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    deployed = model_settings(args.stack_file)
    release = found is not None and found["version"] != str(deployed.get("version"))
    print(f"release={'true' if release else 'false'}")
    for key in ("source", "version", "sha256"):
        print(f"{key}={(found or {}).get(key, '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
