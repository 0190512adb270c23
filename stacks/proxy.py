"""The TLS front of the ACI container group: Caddy, built from proxy/ into the stack's registry.

The Caddyfile is committed (proxy/Caddyfile) and baked into the image; a stack sets only its
environment, built here. The local test runs the same file with the same environment builder.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker_build as docker_build

from stacks.image import image_tag
from stacks.registry import PROXY_REPOSITORY, PushTarget

CONTEXT = "proxy"  # its Dockerfile pins Caddy's official image by digest (Dependabot updates it)
DATA_DIR = "/data"  # the image's XDG_DATA_HOME: certificates and ACME account, on an Azure Files share
HTTP_PORT = 80
HTTPS_PORT = 443


def aci_hosts_pattern(dns_label: str, location: str, custom_domain: str | None) -> str:
    """The host names the proxy may get certificates for: the custom domain, or the group's own FQDN.

    With a tenant-scoped label the FQDN carries a hash next to the label, known only once the group
    exists; the pattern allows that label (and hash) in that region and nothing else. A name that
    matches but is not the group's fails the CA's validation anyway: it does not resolve here.
    """
    if custom_domain:
        return f"^{re.escape(custom_domain.lower())}$"
    region = location.replace(" ", "").lower()
    return rf"^{re.escape(dns_label.lower())}([.-][a-z0-9]+)?\.{re.escape(region)}\.azurecontainer\.io$"


def proxy_environment(hosts_pattern: str, upstream_port: int, **local: str) -> dict[str, str]:
    """The Caddyfile's settings. `local` overrides are for the local test only (ports, local CA)."""
    environment = {"MLSERVE_TLS_HOSTS": hosts_pattern, "MLSERVE_UPSTREAM": f"127.0.0.1:{upstream_port}"}
    for key, value in local.items():
        environment[f"MLSERVE_{key.upper()}"] = value
    return environment


@dataclass
class ProxyImageArgs:
    target: PushTarget  # the registry; the image goes to its mlserve-proxy repository
    tag_prefix: str


class ProxyImage(pulumi.ComponentResource):
    """proxy/ built and pushed; `ref` is `<registry>/mlserve-proxy@sha256:...`."""

    def __init__(self, name: str, args: ProxyImageArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:image:ProxyImage", name, None, opts)
        build: dict[str, Any] = {
            "dockerfile": f"{CONTEXT}/Dockerfile",
            "platforms": [docker_build.Platform.LINUX_AMD64.value],
        }
        repository = pulumi.Output.concat(args.target.address, "/", PROXY_REPOSITORY)
        self.image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=CONTEXT),
            dockerfile=docker_build.DockerfileArgs(location=CONTEXT + "/Dockerfile"),
            platforms=[docker_build.Platform.LINUX_AMD64],
            tags=[pulumi.Output.concat(repository, ":", image_tag(args.tag_prefix, None, build, context=CONTEXT))],
            registries=[
                docker_build.RegistryArgs(
                    address=args.target.address, username=args.target.username, password=args.target.password
                )
            ],
            push=True,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.ref = pulumi.Output.concat(repository, "@", self.image.digest)
        self.register_outputs({"ref": self.ref})
