"""AKS: a managed cluster with managed identity, Azure RBAC, a system and a user pool, network policy.

Its kubeconfig is a secret output and feeds the Kubernetes provider the workload is deployed with.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import containerservice, managedidentity

from stacks.azure_roles import ACR_PULL, AKS_RBAC_CLUSTER_ADMIN, NETWORK_CONTRIBUTOR, grant, propagated
from stacks.protection import stateful

CSI_ADDON = "azureKeyvaultSecretsProvider"
SYSTEM_POOL = "system"
USER_POOL = "user"

# What AKS changes on its own in normal operation: the cluster autoscaler sets node counts, the
# upgrade channels move versions. Ignored so `pulumi up` does not undo them and drift checks stay quiet.
CLUSTER_IGNORED_CHANGES = [
    "kubernetesVersion",
    "agentPoolProfiles[*].count",
    "agentPoolProfiles[*].orchestratorVersion",
]
POOL_IGNORED_CHANGES = ["count", "orchestratorVersion"]


@dataclass
class AksClusterArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    node_subnet_id: pulumi.Input[str]  # stacks.aks_network: the NSG there holds the endpoint's allow-list
    kubernetes_version: str  # a new cluster's version; upgrades are AKS's (CLUSTER_IGNORED_CHANGES)
    node_vm_size: str  # the user pool, where the workload runs
    system_node_vm_size: str
    min_nodes: int  # the user pool's autoscaler bounds
    max_nodes: int
    availability_zones: Sequence[str]  # of both pools; empty: none
    private_cluster: bool
    network_policy: str  # azure | calico | cilium
    authorized_ip_ranges: Sequence[str]  # CIDRs that may reach the API server; empty: anyone
    admins: Sequence[tuple[str, str]]  # (Entra ID object id, Group | User | ServicePrincipal): Cluster Admin
    istio_revisions: Sequence[str]
    rbac_wait_seconds: int  # before the Kubernetes provider relies on the admins' new role
    protect: bool
    tags: dict[str, str]


def network_profile(network_policy: str) -> dict[str, Any]:
    profile = {
        "network_plugin": "azure",
        "network_plugin_mode": "overlay",
        "network_policy": network_policy,
        "load_balancer_sku": "standard",
    }
    if network_policy == "cilium":
        profile["network_dataplane"] = "cilium"  # AKS accepts the cilium policy only with its dataplane
    return profile


class AksCluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:AksCluster", name, None, opts)
        zones = {"availability_zones": list(args.availability_zones)} if args.availability_zones else {}
        # The nodes join a subnet the cluster does not own: its identity must be allowed to manage load
        # balancers there before it exists, so it is a user-assigned identity granted up front (AKS,
        # "Use a managed identity": pre-created identity for a bring-your-own subnet).
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-control-plane",
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        network = grant(
            f"{name}-subnet-network-contributor",
            NETWORK_CONTRIBUTOR,
            identity.principal_id,
            args.node_subnet_id,
            args.subscription_id,
            self,
        )
        network_ready = propagated(f"{name}-subnet-propagation", [network], args.rbac_wait_seconds, self)
        cluster_options = stateful(args.protect, self)
        cluster_options.ignore_changes = CLUSTER_IGNORED_CHANGES
        cluster_options.depends_on = [network_ready]
        self.cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_prefix=name,
            kubernetes_version=args.kubernetes_version,
            identity={"type": "UserAssigned", "user_assigned_identities": [identity.id]},
            enable_rbac=True,
            # Entra ID sign-in with Azure RBAC; no local admin account (CKV_AZURE_141).
            disable_local_accounts=True,
            aad_profile={"managed": True, "enable_azure_rbac": True},
            agent_pool_profiles=[
                {
                    # System pods only (CriticalAddonsOnly); the workload runs on the user pool.
                    "name": SYSTEM_POOL,
                    "mode": "System",
                    "vm_size": args.system_node_vm_size,
                    "os_type": "Linux",
                    "type": "VirtualMachineScaleSets",
                    "node_taints": ["CriticalAddonsOnly=true:NoSchedule"],
                    "enable_auto_scaling": True,
                    "count": 2 if args.protect else 1,
                    "min_count": 2 if args.protect else 1,
                    "max_count": 3,
                    "max_pods": 50,
                    "vnet_subnet_id": args.node_subnet_id,
                    **zones,
                }
            ],
            network_profile=network_profile(args.network_policy),
            api_server_access_profile={
                "enable_private_cluster": args.private_cluster,
                **({"authorized_ip_ranges": list(args.authorized_ip_ranges)} if args.authorized_ip_ranges else {}),
            },
            # "stable" follows minor versions (N-1 of the newest), so the cluster never ages past end of life.
            auto_upgrade_profile={"upgrade_channel": "stable", "node_os_upgrade_channel": "NodeImage"},
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            addon_profiles={
                "omsagent": {"enabled": True, "config": {"logAnalyticsWorkspaceResourceID": args.workspace_id}},
                "azurepolicy": {"enabled": True},
                # Syncs the endpoint's Key Vault certificate into the gateway's TLS Secret, renewals included.
                CSI_ADDON: {"enabled": True, "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"}},
            },
            # The managed Istio gateway terminates TLS for the endpoint (stacks/aks_ingress.py). Istio's
            # own Gateway API support, and application routing's, are not in the API version this
            # provider uses (2025-09-01); managed NGINX left support in November 2026.
            service_mesh_profile={
                "mode": "Istio",
                "istio": {
                    "revisions": list(args.istio_revisions),
                    "components": {"ingress_gateways": [{"enabled": True, "mode": "External"}]},
                },
            },
            sku={"name": "Base", "tier": "Standard"},
            tags=args.tags,
            opts=cluster_options,
        )
        self.user_pool = containerservice.AgentPool(
            f"{name}-user-pool",
            agent_pool_name=USER_POOL,
            resource_group_name=args.resource_group_name,
            resource_name_=self.cluster.name,
            mode="User",
            vm_size=args.node_vm_size,
            os_type="Linux",
            type="VirtualMachineScaleSets",
            enable_auto_scaling=True,
            count=args.min_nodes,
            min_count=args.min_nodes,
            max_count=args.max_nodes,
            max_pods=50,
            vnet_subnet_id=args.node_subnet_id,
            **zones,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=POOL_IGNORED_CHANGES),
        )
        kubelet_object_id = self.cluster.identity_profile.apply(
            lambda profile: (profile or {})["kubeletidentity"].object_id
        )
        # The kubelet retries image pulls with back-off, so nothing waits for this grant.
        pull = grant(f"{name}-acr-pull", ACR_PULL, kubelet_object_id, args.registry_id, args.subscription_id, self)
        admins = [
            grant(
                f"{name}-admin-{index}",
                AKS_RBAC_CLUSTER_ADMIN,
                object_id,
                self.cluster.id,
                args.subscription_id,
                self,
                principal_type=principal_type,
            )
            for index, (object_id, principal_type) in enumerate(args.admins)
        ]
        admin_roles_ready = propagated(f"{name}-admin-propagation", admins, args.rbac_wait_seconds, self)
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.resource_group_name, resource_name=self.cluster.name
        )
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs.apply(lambda configs: azure_cli_login(base64.b64decode(configs[0].value).decode()))
        )
        csi_identity = self.cluster.addon_profiles.apply(lambda addons: (addons or {})[CSI_ADDON].identity)
        self.csi_identity_client_id = csi_identity.apply(lambda i: i.client_id)
        self.csi_identity_object_id = csi_identity.apply(lambda i: i.object_id)
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Workloads wait for the user pool, the pull grant and the admins' role to be in effect.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.user_pool, pull, admin_roles_ready]),
        )
        self.register_outputs({"cluster_name": self.cluster.name, "kubeconfig": self.kubeconfig})


AKS_AAD_SERVER_ID = "6dae42f8-4368-4678-94ff-3960e28e3630"


def azure_cli_login(kubeconfig: str) -> str:
    """Make kubelogin use the Azure CLI's sign-in (what `kubelogin convert-kubeconfig -l azurecli` does).

    The credentials AKS returns ask for an interactive device-code sign-in, which `pulumi up` in CI
    cannot do; `az login` (or azure/login in a workflow) is already there.
    """
    document = yaml.safe_load(kubeconfig)
    for user in document.get("users", []):
        exec_ = (user.get("user") or {}).get("exec")
        if exec_ and exec_.get("command") == "kubelogin":
            args = exec_.get("args", [])
            server_id = args[args.index("--server-id") + 1] if "--server-id" in args else AKS_AAD_SERVER_ID
            exec_["args"] = ["get-token", "--login", "azurecli", "--server-id", server_id]
    return str(yaml.safe_dump(document, sort_keys=False))
