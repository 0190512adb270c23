"""What each CI identity may do, as data: the GitHub environments, Azure roles and AWS policies.

Kept apart from the resources so the tests can check them against the main program: every invoke
it makes during a preview must be granted to the read-only identity (INVOKE_ACTIONS), and every AWS
service it creates resources in must be in the deploy policy.
"""

from __future__ import annotations

from stacks.azure_roles import (
    ACR_PULL,
    AKS_RBAC_CLUSTER_ADMIN,
    KEY_VAULT_SECRETS_USER,
    NETWORK_CONTRIBUTOR,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
)
from stacks.drift_signal import DRIFT_NAMESPACE

GITHUB_OIDC_ISSUER = "https://token.actions.githubusercontent.com"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
AWS_AUDIENCE = "sts.amazonaws.com"

# GitHub environment -> which identity its jobs sign in as ("deploy" or "read").
ENVIRONMENTS = {
    "dev": "deploy",
    "production": "deploy",
    "review": "deploy",
    "preview": "read",
    "production-read": "read",
}
# drift.yml checks dev with the read-only AWS role from the dev environment.
AWS_READ_ALSO_FROM = ("dev",)

# Built-in Azure roles (ids are the same in every tenant).
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
STORAGE_BLOB_DATA_READER = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1"
# The roles the main program assigns; the deploy identity may assign these and no others.
ASSIGNABLE_ROLES = (
    ACR_PULL,
    STORAGE_BLOB_DATA_CONTRIBUTOR,
    AKS_RBAC_CLUSTER_ADMIN,
    NETWORK_CONTRIBUTOR,  # the AKS control plane on its node subnet
    KEY_VAULT_SECRETS_USER,  # the Key Vault CSI add-on on the endpoint's certificate
)

# Invokes of the main program (pulumi preview/up/refresh call them) and the actions each needs.
INVOKE_ACTIONS: dict[str, tuple[str, ...]] = {
    "azure-native:authorization:getClientConfig": (),
    "azure-native:operationalinsights:getSharedKeys": ("Microsoft.OperationalInsights/workspaces/sharedKeys/action",),
    "azure-native:storage:listStorageAccountKeys": ("Microsoft.Storage/storageAccounts/listkeys/action",),
    "azure-native:containerservice:listManagedClusterUserCredentials": (
        "Microsoft.ContainerService/managedClusters/listClusterUserCredential/action",
    ),
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": ("ecr:GetAuthorizationToken",),
    "aws:index/getRegion:getRegion": (),
    "aws:index/getCallerIdentity:getCallerIdentity": (),  # sts:GetCallerIdentity needs no permission
    # kubectl reads the AKS gateway's Service with the cluster user credentials above (data-plane read).
    "command:local:run": (),
}


def azure_preview_actions() -> list[str]:
    """Reader's `*/read`, plus the POST actions the program's invokes need."""
    extra = sorted({a for actions in INVOKE_ACTIONS.values() for a in actions if a.startswith("Microsoft.")})
    return ["*/read", *extra]


# Kubernetes objects on AKS (Azure RBAC data actions): a refresh reads all of the workload's
# objects, the key Secret included (its value is in the stack's state for this identity anyway).
AZURE_PREVIEW_DATA_ACTIONS = ["Microsoft.ContainerService/managedClusters/*/read"]


def rbac_administrator_condition() -> str:
    """ABAC condition: role assignments may be written or deleted only for ASSIGNABLE_ROLES.

    ("Delegate Azure role assignment management to others with conditions", condition version 2.0.)
    """
    roles = "{" + ", ".join(ASSIGNABLE_ROLES) + "}"
    attribute = "Microsoft.Authorization/roleAssignments:RoleDefinitionId"
    return (
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "
        f"(@Request[{attribute}] ForAnyOfAnyValues:GuidEquals {roles}))"
        " AND "
        "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "
        f"(@Resource[{attribute}] ForAnyOfAnyValues:GuidEquals {roles}))"
    )


def capture_reader_condition(container: str) -> str:
    """ABAC condition: blobs may be read (and listed) only in containers of this name: the capture stores'.

    ("Example Azure role assignment conditions for Blob Storage": container name, condition version 2.0.)
    """
    return (
        "((!(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})) OR "
        f"(@Resource[Microsoft.Storage/storageAccounts/blobServices/containers:name] StringEquals '{container}'))"
    )


# AWS: everything the main program names starts with the project name (Pulumi auto-naming keeps
# the logical name as the prefix; SageMaker endpoints default to mlserve-<stack>).
PREFIX = "mlserve"

# AWS service prefix of each resource type the main program creates.
AWS_RESOURCE_SERVICES = {
    "aws:ecr/repository:Repository": "ecr",
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": "ecr",
    "aws:iam/role:Role": "iam",
    "aws:iam/rolePolicy:RolePolicy": "iam",
    "aws:kms/key:Key": "kms",
    "aws:kms/alias:Alias": "kms",
    "aws:sagemaker/model:Model": "sagemaker",
    "aws:sagemaker/endpointConfiguration:EndpointConfiguration": "sagemaker",
    "aws:sagemaker/endpoint:Endpoint": "sagemaker",
    "aws:cloudwatch/metricAlarm:MetricAlarm": "cloudwatch",
    "aws:cloudwatch/dashboard:Dashboard": "cloudwatch",
    "aws:sns/topic:Topic": "sns",
    "aws:sns/topicSubscription:TopicSubscription": "sns",
    "aws:appautoscaling/target:Target": "application-autoscaling",
    "aws:appautoscaling/policy:Policy": "application-autoscaling",
    "aws:s3/bucket:Bucket": "s3",
    "aws:s3/bucketPolicy:BucketPolicy": "s3",
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": "s3",
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": "s3",
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": "s3",
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": "s3",
}


def aws_deploy_policy(region: str, account: str) -> dict:
    """What `pulumi up` of the main program needs in AWS, scoped to the project's resources."""
    arn = f"{region}:{account}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Ecr",
                "Effect": "Allow",
                "Action": "ecr:*",
                "Resource": f"arn:aws:ecr:{arn}:repository/{PREFIX}-*",
            },
            {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {
                "Sid": "SageMaker",
                "Effect": "Allow",
                "Action": "sagemaker:*",
                "Resource": [
                    f"arn:aws:sagemaker:{arn}:model/{PREFIX}-*",
                    f"arn:aws:sagemaker:{arn}:endpoint-config/{PREFIX}-*",
                    f"arn:aws:sagemaker:{arn}:endpoint/{PREFIX}-*",
                ],
            },
            {
                "Sid": "ExecutionRole",
                "Effect": "Allow",
                "Action": [
                    "iam:*Role",
                    "iam:*RolePolicy",
                    "iam:*RolePolicies",
                    "iam:TagRole",
                    "iam:UntagRole",
                    "iam:ListRoleTags",
                    "iam:ListAttachedRolePolicies",
                    "iam:ListInstanceProfilesForRole",
                ],
                "Resource": f"arn:aws:iam::{account}:role/{PREFIX}-*",
            },
            {
                "Sid": "PassExecutionRoleToSageMaker",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": f"arn:aws:iam::{account}:role/{PREFIX}-*",
                "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
            },
            {
                "Sid": "AutoscalingServiceLinkedRole",
                "Effect": "Allow",
                "Action": "iam:CreateServiceLinkedRole",
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}
                },
            },
            # Application Auto Scaling and CloudWatch's Describe calls have no resource-level permissions.
            {"Sid": "Autoscaling", "Effect": "Allow", "Action": "application-autoscaling:*", "Resource": "*"},
            {
                "Sid": "Alarms",
                "Effect": "Allow",
                "Action": "cloudwatch:*",
                "Resource": [
                    f"arn:aws:cloudwatch:{arn}:alarm:{PREFIX}-*",
                    # PutScalingPolicy of a target-tracking policy creates and deletes its alarms as the
                    # caller: TargetTracking-endpoint/<endpoint>/variant/<variant>-AlarmHigh-<uuid>, ...
                    f"arn:aws:cloudwatch:{arn}:alarm:TargetTracking-endpoint/{PREFIX}-*",
                ],
            },
            {"Sid": "DescribeAlarms", "Effect": "Allow", "Action": "cloudwatch:DescribeAlarms", "Resource": "*"},
            {
                # Dashboards are global: their ARNs have no region.
                "Sid": "Dashboards",
                "Effect": "Allow",
                "Action": ["cloudwatch:PutDashboard", "cloudwatch:GetDashboard", "cloudwatch:DeleteDashboards"],
                "Resource": f"arn:aws:cloudwatch::{account}:dashboard/{PREFIX}-*",
            },
            {"Sid": "AlarmTopic", "Effect": "Allow", "Action": "sns:*", "Resource": f"arn:aws:sns:{arn}:{PREFIX}-*"},
            {
                "Sid": "CaptureBucket",
                "Effect": "Allow",
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{PREFIX}-*", f"arn:aws:s3:::{PREFIX}-*/*"],
            },
            # CreateKey has no resource yet; the key's own actions are limited to keys tagged as this project's.
            {"Sid": "CreateKey", "Effect": "Allow", "Action": ["kms:CreateKey", "kms:ListAliases"], "Resource": "*"},
            {
                "Sid": "StackKey",
                "Effect": "Allow",
                "Action": "kms:*",
                "Resource": f"arn:aws:kms:{arn}:key/*",
                "Condition": {"StringEquals": {"aws:ResourceTag/project": PREFIX}},
            },
            {
                # CreateKey with tags also needs kms:TagResource, asked for a key that has no tags yet:
                # allowed when the request tags it as this project's (StackKey's condition cannot match).
                "Sid": "TagNewStackKey",
                "Effect": "Allow",
                "Action": "kms:TagResource",
                "Resource": f"arn:aws:kms:{arn}:key/*",
                "Condition": {"StringEquals": {"aws:RequestTag/project": PREFIX}},
            },
            {
                "Sid": "StackKeyAlias",
                "Effect": "Allow",
                "Action": "kms:*Alias",
                "Resource": [f"arn:aws:kms:{arn}:alias/{PREFIX}-*", f"arn:aws:kms:{arn}:key/*"],
            },
        ],
    }


def aws_read_policy(account: str) -> dict:
    """What `pulumi preview` and `refresh` of the main program read, and what the weekly drift report
    reads and writes (the captured requests; its verdict as a metric). No resource is changed."""
    invoke_actions = sorted(
        {a for actions in INVOKE_ACTIONS.values() for a in actions if ":" in a and not a.startswith("Microsoft.")}
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Invokes", "Effect": "Allow", "Action": invoke_actions, "Resource": "*"},
            {
                "Sid": "Read",
                "Effect": "Allow",
                "Action": [
                    "ecr:Describe*",
                    "ecr:List*",
                    "ecr:GetLifecyclePolicy",
                    "ecr:GetRepositoryPolicy",
                    "sagemaker:Describe*",
                    "sagemaker:List*",
                    "application-autoscaling:Describe*",
                    "cloudwatch:DescribeAlarms",
                    "cloudwatch:GetDashboard",
                    "cloudwatch:ListTagsForResource",
                    "sns:GetTopicAttributes",
                    "sns:GetSubscriptionAttributes",
                    "sns:ListTagsForResource",
                    "sns:ListSubscriptionsByTopic",
                    "kms:DescribeKey",
                    "kms:GetKeyPolicy",
                    "kms:GetKeyRotationStatus",
                    "kms:ListResourceTags",
                    "kms:ListAliases",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ReadRoles",
                "Effect": "Allow",
                "Action": [
                    "iam:GetRole",
                    "iam:GetRolePolicy",
                    "iam:ListRolePolicies",
                    "iam:ListAttachedRolePolicies",
                    "iam:ListRoleTags",
                ],
                "Resource": f"arn:aws:iam::{account}:role/{PREFIX}-*",
            },
            # Bucket configuration only (no object reads): the bucket ARN without `/*`.
            {
                "Sid": "ReadBuckets",
                "Effect": "Allow",
                "Action": [
                    "s3:GetBucket*",
                    "s3:GetEncryptionConfiguration",
                    "s3:GetLifecycleConfiguration",
                    "s3:GetAccelerateConfiguration",
                    "s3:GetReplicationConfiguration",
                    "s3:ListBucket",
                ],
                "Resource": f"arn:aws:s3:::{PREFIX}-*",
            },
            # The weekly drift report reads what Data Capture wrote (the capture/ prefix of the stacks'
            # buckets, nothing else in them), decrypting with the stack's key where one encrypts it.
            {
                "Sid": "ReadCapturedRequests",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{PREFIX}-*/capture/*",
            },
            # ... and leaves its verdict for the stack's CloudWatch dashboard, in that namespace only.
            {
                "Sid": "PublishDriftVerdict",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": DRIFT_NAMESPACE}},
            },
            {
                "Sid": "DecryptCapturedRequests",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": f"arn:aws:kms:*:{account}:key/*",
                "Condition": {
                    "StringEquals": {"aws:ResourceTag/project": PREFIX},
                    "StringLike": {"kms:ViaService": "s3.*.amazonaws.com"},
                },
            },
        ],
    }
