"""Build the real images with podman and run them the ways the clouds do (see ../shared/CONTAINERS.md).

No registry is reachable here, so the base image is a stand-in built from Debian's packages
(`python3` of bookworm, as `python:3.11-slim-bookworm` has), put in place of the Dockerfile's pinned
FROM reference by name (`--build-context <reference>=docker-image://<stand-in>`, as BuildKit does);
the proxy's Caddy likewise (Debian's caddy binary). With registry access, MLSERVE_TEST_BASE_IMAGE and
MLSERVE_TEST_CADDY_IMAGE name the real images (CI's container job: the pinned ones themselves).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stacks.image import base_image as pinned_base
from stacks.image import source_fingerprint
from tests.serving.server import REPO

# crun refuses this kernel's hybrid cgroups; raising limits is not permitted, so set them explicitly.
PODMAN = ["podman", "--runtime", "runc"]
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
STAND_IN_BASE = "localhost/mlserve-test-base:bookworm"
STAND_IN_CADDY = "localhost/mlserve-test-caddy:debian"
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def missing() -> str | None:
    """Why the container tests cannot run here, or None."""
    tools = ["podman", "runc"] + ([] if os.environ.get("MLSERVE_TEST_BASE_IMAGE") else ["mmdebstrap", "caddy"])
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        return f"no container engine: {', '.join(absent)} not installed (apt-get install podman runc mmdebstrap caddy)"
    if os.geteuid() != 0:
        return "the podman recipe here needs root (see ../shared/CONTAINERS.md)"
    return None


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args[:3])} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


def exists(image: str) -> bool:
    return podman("image", "exists", image, check=False).returncode == 0


def _build(tag: str, context: Path, *options: str) -> str:
    if not exists(tag):
        podman("build", *ULIMITS, "--network=host", *options, "-t", tag, str(context))
    return tag


def stand_in_base() -> str:
    """Debian bookworm's Python 3.11 with pip usable in builds (this machine's CA bundle, no PEP 668 lock)."""
    if exists(STAND_IN_BASE):
        return STAND_IN_BASE
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        subprocess.run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--include=python3,python3-pip,python-is-python3,ca-certificates",
                "bookworm",
                str(rootfs),
                DEBIAN_MIRROR,
            ],
            check=True,
            capture_output=True,
            timeout=600,
        )
        podman("import", str(rootfs), STAND_IN_BASE + "-raw")
        context = Path(tmp) / "context"
        context.mkdir()
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", context / "ca-certificates.crt")
        (context / "Containerfile").write_text(
            f"FROM {STAND_IN_BASE}-raw\n"
            "COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\n"
            "RUN rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED && ln -sf /usr/bin/pip3 /usr/local/bin/pip\n"
            "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt\n"
        )
        return _build(STAND_IN_BASE, context)


def stand_in_caddy(base: str) -> str:
    """Debian's caddy binary laid out as Caddy's official image is (CMD, /config, /data)."""
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        shutil.copy(shutil.which("caddy") or "caddy", context / "caddy")
        (context / "Containerfile").write_text(
            f"FROM {base}\n"
            "COPY caddy /usr/bin/caddy\n"
            "ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data\n"
            'CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]\n'
        )
        return _build(STAND_IN_CADDY, context)


@dataclass(frozen=True)
class Images:
    serving: str
    proxy: str


def base_image() -> str:
    return os.environ.get("MLSERVE_TEST_BASE_IMAGE") or stand_in_base()


def stand_in_for(context: str, image: str) -> list[str]:
    """Build options that replace `context`'s pinned base image (its FROM reference) with `image`."""
    return ["--build-context", f"{pinned_base(context)}=docker-image://{image}"]


def build_as_declared(tag: str, image: dict) -> str:
    """Build serving/ as the program's docker-build Image declares it: build args, labels, the model."""
    options = stand_in_for("serving", base_image())
    options += [o for k, v in (image.get("buildArgs") or {}).items() for o in ("--build-arg", f"{k}={v}")]
    options += [o for k, v in (image.get("labels") or {}).items() for o in ("--label", f"{k}={v}")]
    for name, context in ((image.get("context") or {}).get("named") or {}).items():
        options += ["--build-context", f"{name}={context['location']}"]
    podman("build", *ULIMITS, "--network=host", *options, "-t", tag, str(REPO / image["context"]["location"]))
    return tag


def build_images() -> Images:
    """The real serving/ and proxy/ Dockerfiles; rebuilt only when their inputs change."""
    base = base_image()
    serving_tag = hashlib.sha256((base + source_fingerprint("serving")).encode()).hexdigest()[:16]
    serving = _build(f"localhost/mlserve-test:{serving_tag}", REPO / "serving", *stand_in_for("serving", base))
    caddy = os.environ.get("MLSERVE_TEST_CADDY_IMAGE") or stand_in_caddy(base)
    proxy_tag = hashlib.sha256((caddy + source_fingerprint("proxy")).encode()).hexdigest()[:16]
    proxy = _build(f"localhost/mlserve-test-proxy:{proxy_tag}", REPO / "proxy", *stand_in_for("proxy", caddy))
    return Images(serving, proxy)


@contextmanager
def running(name: str, image: str, args: Sequence[str] = (), options: Sequence[str] = ()) -> Iterator[str]:
    """A detached container, removed afterwards whatever happened."""
    podman("rm", "-f", name, check=False)
    try:
        podman("run", "-d", "--name", name, *ULIMITS, *options, image, *args)
        yield name
    finally:
        podman("rm", "-f", "-t", "5", name, check=False)


def address(name: str) -> str:
    """The container's address on podman's network: what another machine in the network would dial."""
    return podman("inspect", name, "--format", "{{.NetworkSettings.IPAddress}}").stdout.strip()


def logs(name: str) -> str:
    result = podman("logs", name, check=False)
    return (result.stdout + result.stderr)[-4000:]
