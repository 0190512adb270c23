"""The serving image: built from serving/ with BuildKit, pushed, and referenced by digest downstream."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_docker_build as docker_build

from stacks.registry import PushTarget

CONTEXT = "serving"
IGNORED_PARTS = {"__pycache__", ".pytest_cache"}


def source_fingerprint(*directories: str | None) -> str:
    """A hash of the files that go into the image: path, file mode and contents of each."""
    digest = hashlib.sha256()
    for directory in filter(None, directories):
        root = Path(directory)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            if IGNORED_PARTS & set(relative.parts) or path.suffix == ".pyc":
                continue
            mode = f"{path.stat().st_mode & 0o777:o}".encode()
            digest.update(str(relative).encode() + b"\0" + mode + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def base_image(context: str = CONTEXT) -> str:
    """The image the shipped stage starts from: the last `FROM` of `<context>/Dockerfile`.

    Each Dockerfile names its base literally, pinned by digest, where Dependabot reads and updates it.
    """
    dockerfile = (Path(__file__).resolve().parent.parent / context / "Dockerfile").read_text()
    references: list[str] = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    return references[-1]


def image_tag(prefix: str, model_directory: str | None, build: dict[str, Any], context: str = CONTEXT) -> str:
    """`<prefix>-<fingerprint>`: the fingerprint covers every input of the build, not only files.

    ECR tags are immutable, and docker-build rebuilds when a build argument, label or file mode
    changes; a tag that missed any of them would be pushed twice with different content and refused.
    """
    digest = hashlib.sha256(source_fingerprint(context, model_directory).encode())
    digest.update(json.dumps(build, sort_keys=True).encode())
    return f"{prefix}-{digest.hexdigest()[:12]}"


@dataclass
class ServingImageArgs:
    targets: list[PushTarget]  # only the registries of enabled targets
    tag_prefix: str  # <model name>-<model version>; the build's fingerprint is appended
    model_directory: str | None = None  # replaces the bundled demo model (a BuildKit named context)
    batch_extras: bool = False  # also install serving/requirements-batch.txt (Parquet, s3://, abfs://)
    labels: dict[str, str] = field(default_factory=dict)


class ServingImage(pulumi.ComponentResource):
    """One build, pushed to every target registry under the model's tag.

    `refs[i]` is `<repository>@sha256:...` for `targets[i]`: deployments are pinned to the exact
    image, and a new model version changes them, so the change shows in `pulumi preview`.
    """

    def __init__(self, name: str, args: ServingImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:image:ServingImage", name, None, opts)
        if not args.targets:
            raise ValueError("ServingImage needs at least one registry to push to")
        if args.model_directory is not None and not Path(args.model_directory).is_dir():
            raise ValueError(f"model directory {args.model_directory!r} does not exist")
        context = docker_build.BuildContextArgs(
            location=CONTEXT,
            named={"model": docker_build.ContextArgs(location=args.model_directory)} if args.model_directory else None,
        )
        build: dict[str, Any] = {
            "dockerfile": f"{CONTEXT}/Dockerfile",
            "platforms": [docker_build.Platform.LINUX_AMD64.value],
            "build_args": {"EXTRAS": "batch" if args.batch_extras else ""},
            "labels": {"org.opencontainers.image.title": "mlserve", **args.labels},
        }
        self.tag = image_tag(args.tag_prefix, args.model_directory, build)
        self.image = docker_build.Image(
            f"{name}-image",
            context=context,
            dockerfile=docker_build.DockerfileArgs(location=build["dockerfile"]),
            platforms=[docker_build.Platform.LINUX_AMD64],
            # Fully qualified tags: a bare name would go to Docker Hub.
            tags=[pulumi.Output.concat(t.repository, ":", self.tag) for t in args.targets],
            registries=[
                docker_build.RegistryArgs(address=t.address, username=t.username, password=t.password)
                for t in args.targets
            ],
            build_args=build["build_args"],
            labels=build["labels"],
            push=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.digest = self.image.digest
        self.refs = [pulumi.Output.concat(t.repository, "@", self.image.digest) for t in args.targets]
        self.register_outputs({"digest": self.digest, "refs": self.refs})
