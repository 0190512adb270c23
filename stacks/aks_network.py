"""The cluster's own virtual network: one node subnet behind a network security group.

The NSG is where the endpoint's source-IP allow-list lives. The Azure load balancer passes the
client's address through to the nodes, so a subnet rule sees it; the managed Istio gateway's
Service cannot be customised (AKS reverts changes to it), so the allow-list cannot live there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi_azure_native import network

# AKS's own default for a managed network; pods use the overlay CIDR, Services 10.0.0.0/16.
ADDRESS_SPACE = "10.224.0.0/12"
NODE_SUBNET = "10.224.0.0/16"
PUBLIC_PORTS = ["80", "443"]


def inbound(
    name: str, priority: int, access: str, protocol: str, source: dict[str, Any], ports: dict[str, Any]
) -> dict[str, Any]:
    """One inbound NSG rule: `source` and `ports` hold the address-prefix and port-range keys."""
    common = {"direction": "Inbound", "source_port_range": "*", "destination_address_prefix": "*"}
    return {"name": name, "priority": priority, "access": access, "protocol": protocol, **common, **source, **ports}


def security_rules(allowed_sources: Sequence[str]) -> list[dict[str, Any]]:
    """Public HTTP(S) from the allow-list (anyone when empty); nothing else from the internet."""
    clients = (
        {"source_address_prefixes": list(allowed_sources)} if allowed_sources else {"source_address_prefix": "Internet"}
    )
    every_port = {"destination_port_range": "*"}
    return [
        inbound("allow-https-clients", 100, "Allow", "Tcp", clients, {"destination_port_ranges": PUBLIC_PORTS}),
        # The load balancer's health probes (Azure's default rule allows them too; explicit here
        # because the deny below must not catch them).
        inbound(
            "allow-load-balancer-probes", 110, "Allow", "*", {"source_address_prefix": "AzureLoadBalancer"}, every_port
        ),
        inbound("deny-other-internet", 4000, "Deny", "*", {"source_address_prefix": "Internet"}, every_port),
    ]


@dataclass
class ClusterNetworkArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    allowed_sources: Sequence[str]  # CIDRs that may reach the endpoint; empty: anyone
    tags: dict[str, str]


class ClusterNetwork(pulumi.ComponentResource):
    def __init__(self, name: str, args: ClusterNetworkArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:ClusterNetwork", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.security_group = network.NetworkSecurityGroup(
            f"{name}-nsg",
            resource_group_name=args.resource_group_name,
            location=args.location,
            security_rules=security_rules(args.allowed_sources),
            tags=args.tags,
            opts=child,
        )
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            resource_group_name=args.resource_group_name,
            location=args.location,
            address_space={"address_prefixes": [ADDRESS_SPACE]},
            tags=args.tags,
            # The subnet is its own resource; a VNet update without it would delete it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]),
        )
        self.subnet = network.Subnet(
            f"{name}-nodes",
            subnet_name="nodes",
            resource_group_name=args.resource_group_name,
            virtual_network_name=self.vnet.name,
            address_prefix=NODE_SUBNET,
            network_security_group={"id": self.security_group.id},
            opts=child,
        )
        self.register_outputs({"subnet_id": self.subnet.id})
