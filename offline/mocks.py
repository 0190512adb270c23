"""Run the real Pulumi program (__main__.py) with a real stack file under Pulumi's mocks.

No cloud and no CLI: every resource the program declares is recorded with its inputs, parent and
options, as the engine would receive them.
"""

from __future__ import annotations

import base64
import json
import runpy
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.sync_await import _sync_await

REPO = Path(__file__).resolve().parents[1]
SECRET_SIG = "4dabf18193072939515e22adb298388d"
SUBSCRIPTION = "00000000-0000-0000-0000-00000000abcd"
GATEWAY_ADDRESS = "203.0.113.80"
DEPLOYER = "11111111-1111-1111-1111-111111111111"
ACCOUNT = "123456789012"

KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "aks", "cluster": {"server": "https://aks.example:443"}}],
    "users": [
        {
            "name": "user",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": "kubelogin",
                    "args": [
                        "get-token",
                        "--login",
                        "devicecode",
                        "--server-id",
                        "6dae42f8-4368-4678-94ff-3960e28e3630",
                    ],
                }
            },
        }
    ],
    "contexts": [{"name": "aks", "context": {"cluster": "aks", "user": "user"}}],
    "current-context": "aks",
}


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    parent: str
    protect: bool
    custom: bool
    secret_paths: set[str]
    dependencies: list[str]
    provider: str = ""  # "<provider urn>::<id>"; empty: the default provider of the package
    ignore_changes: tuple[str, ...] = ()
    retain_on_delete: bool = False


@dataclass
class Evaluation:
    resources: list[Recorded]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    invokes: list[str] = field(default_factory=list)

    def of_type(self, type_: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Recorded:
        found = self.of_type(type_)
        if len(found) != 1:
            raise LookupError(f"expected one {type_}, found {len(found)}")
        return found[0]

    def serving_image(self) -> Recorded:
        """The serving image build (the ACI proxy is built too)."""
        (image,) = [i for i in self.of_type("docker-build:index:Image") if i.inputs["context"]["location"] == "serving"]
        return image

    def types(self) -> set[str]:
        return {r.type for r in self.resources}


def _secret_paths(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            yield path
            return
        for key, item in value.items():
            yield from _secret_paths(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _secret_paths(item, f"{path}[{index}]")


def unwrap_secrets(value: Any) -> Any:
    """Inputs as plain values; which of them were secret is kept in Recorded.secret_paths."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) == "1b47061264138c4ac30d75fd1eb44270":
            return unwrap_secrets(value.get("value"))
        return {key: unwrap_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # protobuf Structs carry every number as a double
    return value


class RecordingMonitor(MockMonitor):
    def __init__(self, mocks: pulumi.runtime.Mocks, evaluation: Evaluation) -> None:
        super().__init__(mocks)
        self.evaluation = evaluation

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            raw = json_format.MessageToDict(request.object)
            self.evaluation.resources.append(
                Recorded(
                    urn=response.urn,
                    type=request.type,
                    name=request.name,
                    inputs=unwrap_secrets(raw) if request.custom else {},
                    parent=request.parent,
                    protect=request.protect,
                    custom=request.custom,
                    secret_paths=set(_secret_paths(raw)),
                    dependencies=list(request.dependencies),
                    provider=request.provider,
                    ignore_changes=tuple(request.ignoreChanges),
                    retain_on_delete=request.retainOnDelete,
                )
            )
        return response


class CloudMocks(pulumi.runtime.Mocks):
    """Plausible outputs for what the clouds compute; inputs are passed through."""

    def __init__(self, evaluation: Evaluation) -> None:
        self.evaluation = evaluation

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        name = args.name
        computed: dict[str, Any] = {
            "azure-native:containerregistry:Registry": {
                "loginServer": f"{name}abc123.azurecr.io",
                "name": f"{name}abc123",
            },
            "azure-native:containerregistry:Token": {"name": f"{name}-token"},
            "azure:containerservice/tokenPassword:TokenPassword": {"password1": {"value": "token-password-1"}},
            "docker-build:index:Image": {"digest": "sha256:" + "ab" * 32, "ref": "image@sha256:" + "ab" * 32},
            "random:index/randomPassword:RandomPassword": {"result": f"generated-{name}-0123456789abcdef"},
            "azure-native:managedidentity:UserAssignedIdentity": {
                "principalId": f"{name}-principal",
                "clientId": f"{name}-client",
                "name": name,
            },
            "azure-native:operationalinsights:Workspace": {"customerId": "workspace-customer-id", "name": name},
            "azure-native:applicationinsights:Component": {"connectionString": "InstrumentationKey=ikey;"},
            "azure-native:resources:ResourceGroup": {"name": f"{name}-1234"},
            "azure-native:storage:FileShare": {"name": state.get("shareName", name)},
            "azure-native:containerinstance:ContainerGroup": {
                "ipAddress": {**state.get("ipAddress", {}), "fqdn": aci_fqdn(state)}
            },
            "azure-native:containerservice:ManagedCluster": {
                "name": name,
                "identityProfile": {
                    "kubeletidentity": {"objectId": "kubelet-object-id", "clientId": "c", "resourceId": "r"}
                },
                "oidcIssuerProfile": {"enabled": True, "issuerURL": "https://oidc.example/issuer/"},
                # AKS adds an identity to the add-ons that need one.
                "addonProfiles": {
                    addon: {
                        **profile,
                        **(
                            {"identity": {"clientId": "csi-client-id", "objectId": "csi-object-id", "resourceId": "r"}}
                            if addon == "azureKeyvaultSecretsProvider"
                            else {}
                        ),
                    }
                    for addon, profile in (state.get("addonProfiles") or {}).items()
                },
            },
            "kubernetes:core/v1:Service": {"status": {"loadBalancer": {"ingress": [{"ip": "20.0.0.10"}]}}},
            "azure-native:storage:StorageAccount": {
                "name": f"{name}store",
                "primaryEndpoints": {"blob": f"https://{name}store.blob.core.windows.net/"},
            },
            "azure-native:storage:BlobContainer": {"name": state.get("containerName", name)},
            "aws:ecr/repository:Repository": {
                "repositoryUrl": f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{name}-1a2b",
                "arn": f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/{name}-1a2b",
                "registryId": ACCOUNT,
                "name": f"{name}-1a2b",
            },
            "aws:iam/role:Role": {"arn": f"arn:aws:iam::{ACCOUNT}:role/{name}-1a2b", "name": f"{name}-1a2b"},
            "aws:sagemaker/model:Model": {"name": f"{name}-1a2b"},
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration": {"name": f"{name}-1a2b"},
            "aws:sagemaker/endpoint:Endpoint": {
                "arn": f"arn:aws:sagemaker:eu-west-1:{ACCOUNT}:endpoint/{state.get('name', name)}"
            },
            "aws:cloudwatch/metricAlarm:MetricAlarm": {
                "name": f"{name}-1a2b",
                "arn": f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{name}",
            },
            "aws:kms/key:Key": {"arn": f"arn:aws:kms:eu-west-1:{ACCOUNT}:key/{name}-0000", "keyId": f"{name}-0000"},
            "aws:s3/bucket:Bucket": {"bucket": f"{name}-1a2b", "arn": f"arn:aws:s3:::{name}-1a2b"},
            "azuread:index/application:Application": {"clientId": f"{name}-client-id"},
            "azuread:index/servicePrincipal:ServicePrincipal": {"objectId": f"{name}-object-id"},
            "azuread:index/group:Group": {"objectId": f"{name}-object-id"},
            "aws:iam/openIdConnectProvider:OpenIdConnectProvider": {
                "arn": f"arn:aws:iam::{ACCOUNT}:oidc-provider/token.actions.githubusercontent.com"
            },
            "aws:sns/topic:Topic": {"arn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:{name}-1a2b", "name": f"{name}-1a2b"},
        }.get(args.typ, {})
        state.update(computed)
        identity = state.get("identity")
        if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
            # Azure takes a list of identity ids and answers with a map keyed by them.
            state["identity"] = {
                **identity,
                "userAssignedIdentities": {i: {} for i in identity["userAssignedIdentities"]},
            }
        if args.typ.startswith("kubernetes:") and "metadata" in state:
            state["metadata"] = {**state["metadata"], "name": state["metadata"].get("name", name)}
        if args.typ == "azure-native:storage:BlobContainer":
            # A role assignment may be scoped to a container: its id is the ARM path ARM checks the scope by.
            return (
                f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{state.get('resourceGroupName')}/providers/"
                f"Microsoft.Storage/storageAccounts/{state.get('accountName')}/blobServices/default/containers/"
                f"{state['name']}",
                state,
            )
        return f"{name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        self.evaluation.invokes.append(args.token)
        if args.token == "azure-native:authorization:getClientConfig":
            return {
                "subscriptionId": SUBSCRIPTION,
                "objectId": DEPLOYER,
                "tenantId": "tenant",
                "clientId": "client",
            }, []
        if args.token == "command:local:run":  # the AKS gateway's address (stacks/aks_ingress.py)
            return {"stdout": GATEWAY_ADDRESS, "stderr": "", "command": args.args.get("command", "")}, []
        if args.token == "azure-native:operationalinsights:getSharedKeys":
            return {"primarySharedKey": "workspace-shared-key"}, []
        if args.token == "azure-native:storage:listStorageAccountKeys":
            return {"keys": [{"keyName": "key1", "value": "storage-account-key", "permissions": "FULL"}]}, []
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            encoded = base64.b64encode(yaml.safe_dump(KUBECONFIG).encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": encoded}]}, []
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "userName": "AWS",
                "password": "ecr-token",
                "proxyEndpoint": "https://ecr.example",
                "authorizationToken": "x",
                "expiresAt": "later",
                "id": "r",
            }, []
        if args.token == "aws:index/getRegion:getRegion":
            return {"region": "eu-west-1", "name": "eu-west-1", "id": "eu-west-1", "description": "Europe"}, []
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/deployer",
                "userId": "u",
                "id": ACCOUNT,
            }, []
        return {}, []


def aci_fqdn(group: dict) -> str:
    """What ACI answers for a tenant-scoped label: the label, a hash, the region."""
    label = group.get("ipAddress", {}).get("dnsNameLabel", "group")
    return f"{label}.h4sh3d.{group.get('location', 'westeurope')}.azurecontainer.io"


def stack_config(stack: str, project_dir: Path = REPO) -> dict[str, str]:
    """The stack file's config as the engine passes it: structured values as JSON strings."""
    document = yaml.safe_load((project_dir / f"Pulumi.{stack}.yaml").read_text())
    return {
        key: value if isinstance(value, str) else json.dumps(value)
        for key, value in (document.get("config") or {}).items()
    }


def merged(stack: str, key: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The stack file's `key` section with `changes` applied: an override that keeps the other settings."""
    return {**json.loads(stack_config(stack).get(key, "{}")), **changes}


def evaluate(
    stack: str,
    overrides: dict[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    stack_name: str | None = None,
    project_dir: Path = REPO,
    project: str = "mlserve",
) -> Evaluation:
    """Run __main__.py for `stack`, with config keys replaced (`overrides`) or dropped (`remove`).

    `stack_name`: run the stack file's config under another stack name (a review stack, `pr-<n>`).
    """
    config = stack_config(stack, project_dir)
    for key in remove:
        config.pop(key, None)
    for key, value in (overrides or {}).items():
        config[key] = value if isinstance(value, str) else json.dumps(value)
    evaluation = Evaluation(resources=[], outputs={}, secret_outputs=set())
    mocks = CloudMocks(evaluation)
    pulumi.runtime.set_all_config(config)
    pulumi.runtime.settings.set_root_resource(None)  # a fresh stack, without a previous run's exports
    pulumi.runtime.set_mocks(
        mocks,
        project=project,
        stack=stack_name or stack,
        preview=False,
        monitor=RecordingMonitor(mocks, evaluation),
    )

    @pulumi.runtime.test
    def run() -> None:
        runpy.run_path(str(project_dir / "__main__.py"), run_name="__main__")

    run()
    stack_resource = pulumi.runtime.get_root_resource()
    for name, output in stack_resource.outputs.items():
        out = pulumi.Output.from_input(output)
        evaluation.outputs[name] = _sync_await(out.future())
        if _sync_await(out.is_secret()):
            evaluation.secret_outputs.add(name)
    return evaluation
