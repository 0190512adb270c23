"""AKS: a managed cluster with managed identity, Azure RBAC, autoscaling system pool and network policy.

Its kubeconfig is a secret output and feeds the Kubernetes provider the workload is deployed with.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import yaml
from pulumi_azure_native import containerservice

from stacks.azure_roles import ACR_PULL, AKS_RBAC_CLUSTER_ADMIN, grant
from stacks.config import AksConfig
from stacks.protection import stateful


@dataclass
class AksClusterArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    deployer_object_id: pulumi.Input[str]  # who runs `pulumi up`: gets cluster admin through Azure RBAC
    registry_id: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    settings: AksConfig
    protect: bool
    tags: dict[str, str]


class AksCluster(pulumi.ComponentResource):
    def __init__(self, name: str, args: AksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlserve:azure:AksCluster", name, None, opts)
        s = args.settings
        self.cluster = containerservice.ManagedCluster(
            f"{name}-cluster",
            resource_group_name=args.resource_group_name,
            location=args.location,
            dns_prefix=name,
            kubernetes_version=s.kubernetes_version,
            identity={"type": "SystemAssigned"},
            enable_rbac=True,
            # Entra ID sign-in with Azure RBAC; no local admin account (CKV_AZURE_141).
            disable_local_accounts=True,
            aad_profile={"managed": True, "enable_azure_rbac": True},
            agent_pool_profiles=[
                {
                    "name": "system",
                    "mode": "System",
                    "vm_size": s.node_vm_size,
                    "os_type": "Linux",
                    "type": "VirtualMachineScaleSets",
                    "enable_auto_scaling": True,
                    "count": s.min_nodes,
                    "min_count": s.min_nodes,
                    "max_count": s.max_nodes,
                    "max_pods": 50,
                }
            ],
            network_profile={
                "network_plugin": "azure",
                "network_plugin_mode": "overlay",
                "network_policy": s.network_policy,
                "load_balancer_sku": "standard",
            },
            api_server_access_profile={
                "enable_private_cluster": s.private_cluster,
                **({"authorized_ip_ranges": list(s.authorized_ip_ranges)} if s.authorized_ip_ranges else {}),
            },
            auto_upgrade_profile={"upgrade_channel": "patch", "node_os_upgrade_channel": "NodeImage"},
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            addon_profiles={
                "omsagent": {"enabled": True, "config": {"logAnalyticsWorkspaceResourceID": args.workspace_id}},
                "azurepolicy": {"enabled": True},
            },
            sku={"name": "Base", "tier": "Standard"},
            tags=args.tags,
            opts=stateful(args.protect, self),
        )
        kubelet_object_id = self.cluster.identity_profile.apply(
            lambda profile: (profile or {})["kubeletidentity"].object_id
        )
        pull = grant(f"{name}-acr-pull", ACR_PULL, kubelet_object_id, args.registry_id, args.subscription_id, self)
        admin = grant(
            f"{name}-deployer-admin",
            AKS_RBAC_CLUSTER_ADMIN,
            args.deployer_object_id,
            self.cluster.id,
            args.subscription_id,
            self,
            principal_type="User",
        )
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=args.resource_group_name, resource_name=self.cluster.name
        )
        self.kubeconfig = pulumi.Output.secret(
            credentials.kubeconfigs.apply(lambda configs: azure_cli_login(base64.b64decode(configs[0].value).decode()))
        )
        self.oidc_issuer_url = self.cluster.oidc_issuer_profile.apply(lambda p: p.issuer_url if p else "")
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            # Workloads wait for the pull grant and the deployer's admin role to exist.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pull, admin]),
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
    return yaml.safe_dump(document, sort_keys=False)
