"""The real program with the real stack files, under mocks: the Azure resource graph and its properties."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pulumi
import pytest
import yaml

from offline.mocks import DEPLOYER, GATEWAY_ADDRESS, Evaluation, Recorded, evaluate, merged
from stacks.aci import REPLACED_ON_CHANGE, group_options
from stacks.aks_ingress import gateway_address_script
from stacks.config import ConfigError
from stacks.image import base_image
from stacks.protection import stateful

ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
TAGGABLE_PREFIXES = ("azure-native:", "aws:")
UNTAGGED = {  # resource types that take no tags
    "azure-native:containerregistry:ScopeMap",
    "azure-native:containerregistry:Token",
    "azure-native:authorization:RoleAssignment",
    "azure-native:storage:BlobContainer",
    "azure-native:storage:FileShare",
    "azure-native:network:Subnet",
    "azure-native:managedidentity:FederatedIdentityCredential",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy",
    "aws:appautoscaling/policy:Policy",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:appautoscaling/target:Target",
    "aws:kms/alias:Alias",
    "aws:s3/bucketPolicy:BucketPolicy",
    "aws:cloudwatch/dashboard:Dashboard",  # PutDashboard takes no tags
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:sns/topicSubscription:TopicSubscription",
}


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("environmentVariables", container.get("env", []))}


# Both stacks


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_registry_admin_user_is_disabled_and_push_is_scoped(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    registry = evaluation.one("azure-native:containerregistry:Registry")
    assert registry.inputs["adminUserEnabled"] is False
    assert registry.inputs["anonymousPullEnabled"] is False
    scope = evaluation.one("azure-native:containerregistry:ScopeMap")
    assert {action.split("/")[1] for action in scope.inputs["actions"]} == {"mlserve", "mlserve-proxy"}
    assert not any(action.endswith("/delete") for action in scope.inputs["actions"])
    assert evaluation.one("azure:containerservice/tokenPassword:TokenPassword")
    assert "azure-native:containerregistry:listRegistryCredentials" not in evaluation.invokes


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_image_is_pushed_to_the_registry_and_used_by_digest(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    image = evaluation.serving_image()
    assert image.inputs["push"] is True
    acr_tag, ecr_tag = image.inputs["tags"]  # both stacks also deploy SageMaker
    assert re.fullmatch(rf"mlserve{stack}acrabc123\.azurecr\.io/mlserve:weather-rain-1-[0-9a-f]{{12}}", acr_tag)
    assert ecr_tag.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/")
    assert acr_tag.split(":")[-1] == ecr_tag.split(":")[-1]
    assert image.inputs["context"]["location"] == "serving"
    assert image.inputs["platforms"] == ["linux/amd64"]
    assert [r["address"] for r in image.inputs["registries"]] == [
        f"mlserve{stack}acrabc123.azurecr.io",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    ]
    assert {"registries[0].password", "registries[1].password"} <= image.secret_paths
    assert evaluation.outputs["image"].endswith("/mlserve@sha256:" + "ab" * 32)


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_taggable_resource_is_tagged(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    taggable = [r for r in evaluation.resources if r.type.startswith(TAGGABLE_PREFIXES) and r.type not in UNTAGGED]
    assert taggable
    for resource in taggable:
        tags = resource.inputs.get("tags", {})
        assert {
            "project": "mlserve",
            "stack": stack,
            "model": "weather-rain",
            "model-version": "1",
        }.items() <= tags.items(), resource.name


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_keys_and_credentials_stay_secret(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    assert {"primary_key", "secondary_key", "application_insights_connection_string"} <= evaluation.secret_outputs
    assert evaluation.outputs["primary_key"] != evaluation.outputs["secondary_key"]


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_components_parent_their_children(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    components = {r.name for r in evaluation.resources if not r.custom}
    assert components
    for resource in evaluation.resources:
        if resource.type in ("azure-native:resources:ResourceGroup",) or not resource.custom:
            continue
        assert any(f"::{c}" in resource.parent for c in components), (resource.type, resource.name)


def test_scoring_and_swagger_uris_as_model_deploy_printed_them(dev: Evaluation) -> None:
    assert dev.outputs["scoring_uri"] == "https://mlserve-dev-weather-rain.h4sh3d.westeurope.azurecontainer.io/score"
    assert (
        dev.outputs["swagger_uri"]
        == "https://mlserve-dev-weather-rain.h4sh3d.westeurope.azurecontainer.io/swagger.json"
    )


# Dev: ACI


def test_dev_deploys_aci_and_no_cluster(dev: Evaluation) -> None:
    assert "azure-native:containerinstance:ContainerGroup" in dev.types()
    assert "azure-native:containerservice:ManagedCluster" not in dev.types()
    assert not any(r.type.startswith("kubernetes:") for r in dev.resources)


def test_dev_protects_nothing_so_destroy_removes_everything(dev: Evaluation) -> None:
    assert [r.name for r in dev.resources if r.protect] == []


def test_aci_container_group(dev: Evaluation) -> None:
    group = dev.one("azure-native:containerinstance:ContainerGroup")
    container = group.inputs["containers"][0]
    assert container["name"] == "serving"
    assert container["image"].endswith("/mlserve@sha256:" + "ab" * 32)
    assert container["resources"]["requests"] == {"cpu": 1, "memoryInGB": 1}
    assert container["command"][-4:] == ["--host", "127.0.0.1", "--port", "8080"], "loopback: group only"
    assert "http://127.0.0.1:8080/v2/health/live" in container["livenessProbe"]["exec"]["command"][-1]
    assert "http://127.0.0.1:8080/v2/health/ready" in container["readinessProbe"]["exec"]["command"][-1]
    assert group.inputs["ipAddress"]["dnsNameLabel"]
    assert group.inputs["restartPolicy"] == "Always"
    assert group.inputs["osType"] == "Linux"
    env = env_of(container)
    assert env["SERVING_MAX_CONCURRENT_REQUESTS"]["value"] == "2"
    assert env["SERVING_SCORING_TIMEOUT_MS"]["value"] == "1000"
    assert env["SERVING_MAX_QUEUE_WAIT_MS"]["value"] == "1000"
    keys_index = list(env).index("SERVING_API_KEYS")
    assert "value" not in env["SERVING_API_KEYS"]
    assert f"containers[0].environmentVariables[{keys_index}].secureValue" in group.secret_paths
    insights_index = list(env).index("APPLICATIONINSIGHTS_CONNECTION_STRING")
    assert f"containers[0].environmentVariables[{insights_index}].secureValue" in group.secret_paths
    assert "diagnostics.logAnalytics.workspaceKey" in group.secret_paths


def test_aci_serves_https_only_through_the_tls_proxy(dev: Evaluation) -> None:
    group = dev.one("azure-native:containerinstance:ContainerGroup")
    # Public: the proxy's 443, and 80 for redirects and ACME; the server's 8080 only inside the group.
    assert group.inputs["ipAddress"]["ports"] == [{"port": 443, "protocol": "TCP"}, {"port": 80, "protocol": "TCP"}]
    assert group.inputs["ipAddress"]["autoGeneratedDomainNameLabelScope"] == "TenantReuse"
    serving, proxy = group.inputs["containers"]
    assert "ports" not in serving
    assert proxy["name"] == "tls-proxy"
    # From the stack's registry, pinned by digest, built from proxy/ (Caddy pinned by digest too).
    assert re.fullmatch(r"mlservedevacrabc123\.azurecr\.io/mlserve-proxy@sha256:[0-9a-f]{64}", proxy["image"])
    (build,) = [i for i in dev.of_type("docker-build:index:Image") if i.inputs["context"]["location"] == "proxy"]
    assert build.inputs["push"] is True
    assert not build.inputs.get("buildArgs"), "Caddy's pin is proxy/Dockerfile's FROM line, nowhere else"
    assert re.fullmatch(r"caddy:[\d.]+-alpine@sha256:[0-9a-f]{64}", base_image("proxy"))
    env = {k: v["value"] for k, v in env_of(proxy).items()}
    assert env["MLSERVE_UPSTREAM"] == "127.0.0.1:8080"
    hosts = re.compile(env["MLSERVE_TLS_HOSTS"])
    assert hosts.match(dev.outputs["aci_fqdn"])
    assert not hosts.match("attacker.example")
    # Certificates survive restarts: the proxy's /data is an Azure Files share, its key secret.
    (volume,) = group.inputs["volumes"]
    assert proxy["volumeMounts"] == [{"name": volume["name"], "mountPath": "/data"}]
    assert volume["azureFile"]["shareName"] == "proxy-data"
    assert "volumes[0].azureFile.storageAccountKey" in group.secret_paths
    account = dev.one("azure-native:storage:StorageAccount")
    assert account.inputs["minimumTlsVersion"] == "TLS1_2"
    assert account.inputs["enableHttpsTrafficOnly"] is True
    assert account.inputs["allowBlobPublicAccess"] is False
    assert dev.outputs["aci_endpoint"].startswith("https://")


def test_aci_custom_domain_is_served_and_alone_allowed() -> None:
    evaluation = evaluate("dev", {"mlserve:aci": {"cpu": 1, "memoryGb": 1, "domain": "Rain.Example.com"}})
    group = evaluation.one("azure-native:containerinstance:ContainerGroup")
    env = {k: v["value"] for k, v in env_of(group.inputs["containers"][1]).items()}
    assert re.compile(env["MLSERVE_TLS_HOSTS"]).match("rain.example.com")
    assert not re.compile(env["MLSERVE_TLS_HOSTS"]).match(evaluation.outputs["aci_fqdn"])
    assert evaluation.outputs["scoring_uri"] == "https://rain.example.com/score"


def test_aci_pulls_with_a_managed_identity_granted_acr_pull(dev: Evaluation) -> None:
    group = dev.one("azure-native:containerinstance:ContainerGroup")
    identity = dev.one("azure-native:managedidentity:UserAssignedIdentity")
    credentials = group.inputs["imageRegistryCredentials"]
    assert credentials == [{"server": "mlservedevacrabc123.azurecr.io", "identity": f"{identity.name}-id"}]
    assert "password" not in credentials[0]
    (pull,) = [r for r in dev.of_type("azure-native:authorization:RoleAssignment") if r.name.endswith("acr-pull")]
    assert pull.inputs["roleDefinitionId"].endswith(ACR_PULL)
    assert pull.inputs["principalId"] == f"{identity.name}-principal"
    assert pull.inputs["scope"] == "mlservedevacr-id"
    # The group pulls as soon as it exists: it waits until the new grant has propagated.
    (wait,) = dev.of_type("time:index/sleep:Sleep")
    assert wait.urn in group.dependencies
    assert pull.urn in wait.dependencies
    assert wait.inputs["createDuration"] == "300s"


# Prod: AKS


def test_prod_deploys_aks_and_no_aci(prod: Evaluation) -> None:
    assert "azure-native:containerservice:ManagedCluster" in prod.types()
    assert "azure-native:containerinstance:ContainerGroup" not in prod.types()


def test_prod_protects_its_stateful_resources(prod: Evaluation) -> None:
    protected = {r.type for r in prod.resources if r.protect}
    assert protected == {
        "azure-native:resources:ResourceGroup",
        "azure-native:containerregistry:Registry",
        "azure-native:containerservice:ManagedCluster",
        "azure-native:storage:StorageAccount",
        "aws:ecr/repository:Repository",
        "aws:s3/bucket:Bucket",
        "aws:kms/key:Key",
    }


def test_protect_option_comes_from_one_function() -> None:
    parent = pulumi.ComponentResource.__new__(pulumi.ComponentResource)
    assert stateful(True, parent).protect is True
    assert stateful(False, parent).protect is False


def test_aci_group_is_replaced_deleting_first_when_aci_cannot_update_it(dev: Evaluation) -> None:
    """CPU, memory, restart policy, logs: ACI refuses to change them in place; the new group needs the DNS label."""
    parent = pulumi.ComponentResource.__new__(pulumi.ComponentResource)
    options = group_options(parent, [])
    assert options.delete_before_replace is True
    assert options.replace_on_changes == REPLACED_ON_CHANGE
    assert {"containers[*].resources", "restartPolicy", "diagnostics"} <= set(REPLACED_ON_CHANGE)
    group = dev.one("azure-native:containerinstance:ContainerGroup").inputs
    for path in REPLACED_ON_CHANGE:  # each names an input the group has (a typo would replace nothing)
        top, _, rest = path.partition("[*].")
        assert top in group, path
        assert not rest or all(rest in container for container in group[top]), path


def test_aks_cluster(prod: Evaluation) -> None:
    cluster = prod.one("azure-native:containerservice:ManagedCluster").inputs
    assert cluster["identity"] == {
        "type": "UserAssigned",
        "userAssignedIdentities": ["mlserve-prod-aks-control-plane-id"],
    }
    assert cluster["enableRBAC"] is True
    assert cluster["disableLocalAccounts"] is True
    assert cluster["aadProfile"] == {"managed": True, "enableAzureRBAC": True}
    assert cluster["kubernetesVersion"] == "1.35"
    assert cluster["autoUpgradeProfile"] == {"upgradeChannel": "stable", "nodeOSUpgradeChannel": "NodeImage"}
    (system,) = cluster["agentPoolProfiles"]
    assert system["mode"] == "System"
    assert system["nodeTaints"] == ["CriticalAddonsOnly=true:NoSchedule"], "system pods only"
    assert system["availabilityZones"] == ["1", "2", "3"]
    assert (system["enableAutoScaling"], system["minCount"], system["maxCount"]) == (True, 2, 3)
    user = prod.one("azure-native:containerservice:AgentPool").inputs
    assert (user["mode"], user["agentPoolName"], user["vmSize"]) == ("User", "user", "Standard_D2s_v5")
    assert (user["enableAutoScaling"], user["minCount"], user["maxCount"]) == (True, 2, 4)
    assert user["availabilityZones"] == ["1", "2", "3"]
    assert cluster["networkProfile"]["networkPolicy"] == "azure"
    assert cluster["oidcIssuerProfile"] == {"enabled": True}
    assert cluster["securityProfile"]["workloadIdentity"] == {"enabled": True}
    assert cluster["addonProfiles"]["omsagent"]["enabled"] is True


def test_aks_ignores_what_the_autoscaler_and_upgrades_change(prod: Evaluation) -> None:
    cluster = prod.one("azure-native:containerservice:ManagedCluster")
    assert set(cluster.ignore_changes) == {
        "kubernetesVersion",
        "agentPoolProfiles[*].count",
        "agentPoolProfiles[*].orchestratorVersion",
    }
    pool = prod.one("azure-native:containerservice:AgentPool")
    assert set(pool.ignore_changes) == {"count", "orchestratorVersion"}


def test_aks_role_assignments(prod: Evaluation) -> None:
    roles = {r.name: r for r in prod.of_type("azure-native:authorization:RoleAssignment")}
    pull = roles["mlserve-prod-aks-acr-pull"].inputs
    assert pull["roleDefinitionId"].endswith(ACR_PULL)
    assert pull["principalId"] == "kubelet-object-id"
    admin = roles["mlserve-prod-aks-admin-0"]
    # From the stack file, not from whoever runs `up`, with the type ARM checks it against.
    assert admin.inputs["principalId"] == "5f0c6a4e-8d2b-4b8e-9a51-3c7f2e1d0b9a"
    assert admin.inputs["principalType"] == "Group"
    assert admin.inputs["scope"] == "mlserve-prod-aks-cluster-id"
    assert DEPLOYER not in str([r.inputs for r in roles.values()])
    # The Kubernetes provider waits until the admins' role is in effect (AKS RBAC propagation).
    (wait,) = [r for r in prod.of_type("time:index/sleep:Sleep") if r.name == "mlserve-prod-aks-admin-propagation"]
    assert admin.urn in wait.dependencies
    assert wait.urn in prod.one("pulumi:providers:kubernetes").dependencies


def test_kubeconfig_is_secret_and_signs_in_with_the_azure_cli(prod: Evaluation) -> None:
    provider = prod.one("pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_paths
    assert "kubeconfig" in prod.secret_outputs
    kubeconfig = yaml.safe_load(prod.outputs["kubeconfig"])
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:3] == ["get-token", "--login", "azurecli"]


def _deployment(prod: Evaluation) -> Recorded:
    (serving,) = [d for d in prod.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "mlserve"]
    return serving


def test_deployment_runs_the_pinned_image_hardened(prod: Evaluation) -> None:
    spec = _deployment(prod).inputs["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"].endswith("/mlserve@sha256:" + "ab" * 32)
    assert "replicas" not in spec, "the HPA owns the replica count"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["terminationGracePeriodSeconds"] > 20


def test_deployment_passes_the_azure_ml_limits_and_keys_from_a_secret(prod: Evaluation) -> None:
    container = _deployment(prod).inputs["spec"]["template"]["spec"]["containers"][0]
    env = env_of(container)
    assert env["SERVING_MAX_CONCURRENT_REQUESTS"]["value"] == "2"
    assert env["SERVING_MAX_QUEUE_WAIT_MS"]["value"] == "1000"
    assert env["SERVING_SCORING_TIMEOUT_MS"]["value"] == "1000"
    assert "SERVING_API_KEYS" not in env, "keys come as a file, not an environment variable"
    assert env["SERVING_SECRETS_DIR"]["value"] == "/run/secrets/mlserve"
    pod = _deployment(prod).inputs["spec"]["template"]["spec"]
    assert {"name": "api-keys", "mountPath": "/run/secrets/mlserve", "readOnly": True} in container["volumeMounts"]
    assert {"name": "api-keys", "secret": {"secretName": "mlserve-api-keys", "defaultMode": 0o440}} in pod["volumes"]
    secret = prod.one("kubernetes:core/v1:Secret")
    assert "stringData" in secret.secret_paths


def test_autoscaling_and_disruption_budget(prod: Evaluation) -> None:
    hpa = prod.one("kubernetes:autoscaling/v2:HorizontalPodAutoscaler").inputs["spec"]
    # Two replicas at least, so a drain (node upgrade, scale-down) never takes the endpoint down.
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 3)
    assert hpa["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["scaleTargetRef"]["kind"] == "Deployment"
    pdb = prod.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]
    assert pdb["maxUnavailable"] == 1
    pod = _deployment(prod).inputs["spec"]["template"]["spec"]
    assert [c["topologyKey"] for c in pod["topologySpreadConstraints"]] == [
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    ]


def test_disruption_budget_selects_serving_pods_only(prod: Evaluation) -> None:
    """The batch CronJob's pods share name and instance: a budget matching them blocks every eviction."""
    selector = prod.one("kubernetes:policy/v1:PodDisruptionBudget").inputs["spec"]["selector"]["matchLabels"]
    serving = _deployment(prod).inputs["spec"]["template"]["metadata"]["labels"]
    batch = prod.one("kubernetes:batch/v1:CronJob").inputs["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
    assert selector.items() <= serving.items()
    assert not selector.items() <= batch["labels"].items()
    assert _deployment(prod).inputs["spec"]["selector"]["matchLabels"] == selector


def test_the_serving_service_is_internal_and_reached_over_https_through_the_gateway(prod: Evaluation) -> None:
    service = prod.one("kubernetes:core/v1:Service").inputs["spec"]
    assert service["type"] == "ClusterIP"
    assert service["ports"][0]["port"] == 80
    assert prod.outputs["aks_endpoint"] == "https://rain.example.com"
    assert prod.outputs["scoring_uri"] == "https://rain.example.com/score"
    (policy,) = [
        p
        for p in prod.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
        if p.inputs["metadata"]["name"] == "mlserve-ingress"
    ]
    sources = [f["namespaceSelector"]["matchLabels"] for f in policy.inputs["spec"]["ingress"][0]["from"]]
    assert sources == [
        {"kubernetes.io/metadata.name": "aks-istio-ingress"},
        {"kubernetes.io/metadata.name": "kube-system"},
    ]


def _custom(prod: Evaluation, kind: str) -> dict:
    (resource,) = [r for r in prod.resources if r.type.endswith(f":{kind}") and r.type.startswith("kubernetes:")]
    return resource.inputs


def test_aks_tls_terminates_at_the_managed_istio_gateway(prod: Evaluation) -> None:
    cluster = prod.one("azure-native:containerservice:ManagedCluster").inputs
    assert cluster["serviceMeshProfile"] == {
        "mode": "Istio",
        "istio": {
            "revisions": ["asm-1-30"],
            "components": {"ingressGateways": [{"enabled": True, "mode": "External"}]},
        },
    }
    gateway = _custom(prod, "Gateway")
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["metadata"]["namespace"] == "aks-istio-ingress"
    assert gateway["spec"]["selector"] == {"istio": "aks-istio-ingressgateway-external"}
    https, http = gateway["spec"]["servers"]
    assert https["port"]["number"] == 443
    assert https["hosts"] == ["rain.example.com"]
    assert https["tls"] == {"mode": "SIMPLE", "credentialName": "mlserve-tls", "minProtocolVersion": "TLSV1_2"}
    assert http["port"]["number"] == 80
    assert http["tls"] == {"httpsRedirect": True}
    route = _custom(prod, "VirtualService")
    assert route["spec"]["gateways"] == ["aks-istio-ingress/mlserve"]
    (rule,) = route["spec"]["http"]
    assert rule["route"][0]["destination"]["host"] == "mlserve.mlserve.svc.cluster.local"
    assert rule["headers"]["response"]["set"]["Strict-Transport-Security"] == "max-age=31536000"


def test_aks_certificate_comes_from_key_vault_and_renews(prod: Evaluation) -> None:
    cluster = prod.one("azure-native:containerservice:ManagedCluster").inputs
    csi = cluster["addonProfiles"]["azureKeyvaultSecretsProvider"]
    assert csi == {"enabled": True, "config": {"enableSecretRotation": "true", "rotationPollInterval": "2m"}}
    spc = _custom(prod, "SecretProviderClass")
    assert spc["metadata"]["namespace"] == "aks-istio-ingress"
    assert spc["spec"]["parameters"]["keyvaultName"] == "mlserve-certs"
    assert spc["spec"]["parameters"]["userAssignedIdentityID"] == "csi-client-id"
    assert spc["spec"]["secretObjects"][0]["type"] == "kubernetes.io/tls"
    assert "objectName: rain-example-com" in spc["spec"]["parameters"]["objects"]
    # The add-on's identity may read this certificate's secret only.
    roles = {r.name: r.inputs for r in prod.of_type("azure-native:authorization:RoleAssignment")}
    reader = roles["mlserve-prod-tls-certificate-reader"]
    assert reader["principalId"] == "csi-object-id"
    assert reader["roleDefinitionId"].endswith("4633458b-17de-408a-b874-0445c86b69e6")  # Key Vault Secrets User
    assert reader["scope"].endswith("/vaults/mlserve-certs/secrets/rain-example-com")
    # The CSI driver writes the TLS Secret only while a pod mounts the class: the sync Deployment.
    (sync,) = [
        d for d in prod.of_type("kubernetes:apps/v1:Deployment") if d.inputs["metadata"]["name"] == "mlserve-tls-sync"
    ]
    volume = sync.inputs["spec"]["template"]["spec"]["volumes"][0]
    assert volume["csi"]["volumeAttributes"] == {"secretProviderClass": "mlserve-tls"}


def test_aks_allow_list_is_enforced_on_the_node_subnet() -> None:
    evaluation = evaluate(
        "prod", {"mlserve:aks": merged("prod", "mlserve:aks", {"allowedSourceRanges": ["203.0.113.0/24"]})}
    )
    nsg = evaluation.one("azure-native:network:NetworkSecurityGroup").inputs
    allow, probes, deny = nsg["securityRules"]
    assert allow["sourceAddressPrefixes"] == ["203.0.113.0/24"]
    assert allow["destinationPortRanges"] == ["80", "443"]
    assert probes["sourceAddressPrefix"] == "AzureLoadBalancer"
    assert (deny["access"], deny["sourceAddressPrefix"]) == ("Deny", "Internet")
    subnet = evaluation.one("azure-native:network:Subnet").inputs
    assert subnet["networkSecurityGroup"] == {"id": "mlserve-prod-network-nsg-id"}
    cluster = evaluation.one("azure-native:containerservice:ManagedCluster")
    assert cluster.inputs["agentPoolProfiles"][0]["vnetSubnetID"] == "mlserve-prod-network-nodes-id"
    assert evaluation.one("azure-native:containerservice:AgentPool").inputs["vnetSubnetID"].endswith("nodes-id")
    # The control-plane identity manages load balancers in that subnet before the cluster exists.
    roles = {r.name: r for r in evaluation.of_type("azure-native:authorization:RoleAssignment")}
    network = roles["mlserve-prod-aks-subnet-network-contributor"]
    assert network.inputs["scope"] == "mlserve-prod-network-nodes-id"
    (wait,) = [
        r for r in evaluation.of_type("time:index/sleep:Sleep") if r.name == "mlserve-prod-aks-subnet-propagation"
    ]
    assert network.urn in wait.dependencies
    assert wait.urn in cluster.dependencies


def test_without_an_allow_list_anyone_may_reach_https_and_nothing_else(prod: Evaluation) -> None:
    allow, _, _ = prod.one("azure-native:network:NetworkSecurityGroup").inputs["securityRules"]
    assert allow["sourceAddressPrefix"] == "Internet"
    assert "sourceAddressPrefixes" not in allow


def test_batch_job_uses_workload_identity_and_no_account_keys(prod: Evaluation) -> None:
    account = prod.one("azure-native:storage:StorageAccount").inputs
    assert account["allowSharedKeyAccess"] is False
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    federation = prod.one("azure-native:managedidentity:FederatedIdentityCredential").inputs
    assert federation["subject"] == "system:serviceaccount:mlserve:mlserve-batch"
    assert federation["issuer"] == "https://oidc.example/issuer/"
    cron = prod.one("kubernetes:batch/v1:CronJob").inputs["spec"]
    assert cron["schedule"] == "0 2 * * *"
    pod = cron["jobTemplate"]["spec"]["template"]
    assert pod["metadata"]["labels"]["azure.workload.identity/use"] == "true"
    args = pod["spec"]["containers"][0]["args"]
    assert args[0] == "batch"
    assert args[args.index("--input") + 1].startswith("abfs://batch@")
    assert args[args.index("--input") + 1].endswith(".dfs.core.windows.net/input/weather.csv")
    image = prod.serving_image().inputs
    assert image["buildArgs"] == {"EXTRAS": "batch"}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_application_insights_alerts_reach_a_person(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    group = evaluation.one("azure-native:monitor:ActionGroup").inputs
    assert len(group["groupShortName"]) <= 12
    receivers = group.get("emailReceivers", [])
    assert [r["emailAddress"] for r in receivers] == (["ml-oncall@example.com"] if stack == "prod" else [])
    rules = {r.name.rsplit("-", 1)[1]: r.inputs for r in evaluation.of_type("azure-native:monitor:ScheduledQueryRule")}
    assert set(rules) == {"failures", "latency"}
    insights = evaluation.one("azure-native:applicationinsights:Component")
    for rule in rules.values():
        assert rule["scopes"] == [f"{insights.name}-id"]
        assert rule["actions"]["actionGroups"] == ["mlserve-" + stack + "-monitoring-oncall-id"]
        (criterion,) = rule["criteria"]["allOf"]
        assert "itemCount" in criterion["query"] or "percentile(duration, 99)" in criterion["query"]
    assert rules["failures"]["criteria"]["allOf"][0]["threshold"] == 5
    assert rules["latency"]["criteria"]["allOf"][0]["threshold"] == 500


def test_aks_pods_get_the_application_insights_connection_string_as_a_file(prod: Evaluation) -> None:
    secret = prod.one("kubernetes:core/v1:Secret")
    assert set(secret.inputs["stringData"]) == {"SERVING_API_KEYS", "APPLICATIONINSIGHTS_CONNECTION_STRING"}
    assert secret.inputs["stringData"]["APPLICATIONINSIGHTS_CONNECTION_STRING"] == "InstrumentationKey=ikey;"
    assert "stringData" in secret.secret_paths


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_target_reports_the_stacks_model_name_and_version(stack: str, request: pytest.FixtureRequest) -> None:
    evaluation: Evaluation = request.getfixturevalue(stack)
    containers = [
        *(
            c
            for g in evaluation.of_type("azure-native:containerinstance:ContainerGroup")
            for c in g.inputs["containers"]
            if c["name"] == "serving"
        ),
        *(
            c
            for d in evaluation.of_type("kubernetes:apps/v1:Deployment")
            for c in d.inputs["spec"]["template"]["spec"]["containers"]
            if c["name"] == "serving"
        ),
    ]
    assert containers
    for container in containers:
        env = {k: v.get("value") for k, v in env_of(container).items()}
        assert (env["SERVING_MODEL_NAME"], env["SERVING_MODEL_VERSION"]) == ("weather-rain", "1")
    sagemaker = evaluation.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
    assert (sagemaker["SERVING_MODEL_NAME"], sagemaker["SERVING_MODEL_VERSION"]) == ("weather-rain", "1")


def test_entra_id_tokens_are_configured_for_azure_targets_only() -> None:
    server = {"entraTenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47", "entraAudience": "api://mlserve"}
    evaluation = evaluate("dev", {"mlserve:server": merged("dev", "mlserve:server", server)})
    group = evaluation.one("azure-native:containerinstance:ContainerGroup")
    env = {k: v.get("value") for k, v in env_of(group.inputs["containers"][0]).items()}
    assert env["SERVING_ENTRA_TENANT_ID"] == "72f988bf-86f1-41af-91ab-2d7cd011db47"
    assert env["SERVING_ENTRA_AUDIENCE"] == "api://mlserve"
    sagemaker = evaluation.one("aws:sagemaker/model:Model").inputs["primaryContainer"]["environment"]
    assert "SERVING_ENTRA_TENANT_ID" not in sagemaker, "SageMaker callers authenticate with IAM"


ZONE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/dns/providers/Microsoft.Network/"
    "dnszones/example.com"
)


def test_with_a_dns_zone_the_program_keeps_the_domains_a_record() -> None:
    evaluation = evaluate("prod", {"mlserve:aks": merged("prod", "mlserve:aks", {"dnsZoneId": ZONE})})
    # The address is read on every preview and up (an invoke), not once by a resource.
    assert not [c for c in evaluation.of_type("command:local:Command") if c.name.endswith("gateway-address")]
    assert "command:local:run" in evaluation.invokes
    record = evaluation.one("azure-native:dns:RecordSet").inputs
    assert record["aRecords"] == [{"ipv4Address": GATEWAY_ADDRESS}]
    assert (record["resourceGroupName"], record["zoneName"], record["relativeRecordSetName"]) == (
        "dns",
        "example.com",
        "rain",
    )
    assert record["recordType"] == "A"
    with pytest.raises(ConfigError, match=re.escape("the zone example.org does not hold aks.domain")):
        evaluate("prod", {"mlserve:aks": merged("prod", "mlserve:aks", {"dnsZoneId": ZONE.replace(".com", ".org")})})


def test_the_gateway_address_script_waits_for_the_address(tmp_path: Path) -> None:
    """The add-on creates the gateway's Service on its own schedule: the script polls, then prints the IP."""
    counter = tmp_path / "calls"
    fake = tmp_path / "kubectl"
    fake.write_text(
        f"#!/bin/sh\necho x >> {counter}\nn=$(wc -l < {counter})\n"
        'if [ "$n" -ge "$READY_AFTER" ]; then printf 20.1.2.3; fi\n'
    )
    fake.chmod(0o755)

    def run(ready_after: str) -> subprocess.CompletedProcess[str]:
        counter.write_text("")
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "KUBECONFIG_CONTENT": "apiVersion: v1", "POLL_SECONDS": "0"}
        return subprocess.run(
            ["sh", "-c", gateway_address_script()],
            env={**env, "READY_AFTER": ready_after},
            capture_output=True,
            text=True,
            check=False,
        )

    answered = run("3")
    assert (answered.returncode, answered.stdout) == (0, "20.1.2.3")
    assert len(counter.read_text().split()) == 3
    never = run("1000")
    assert never.returncode != 0
    assert "got no public address" in never.stderr
