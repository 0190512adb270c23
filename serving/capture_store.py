"""Where captured batches go: a blob container, reached with the workload's managed identity.

Deployed, the stack passes the account URL and container, and `DefaultAzureCredential` finds the
identity (ACI: the container group's user-assigned identity through AZURE_CLIENT_ID; AKS: workload
identity's federated token). No keys. A connection string is accepted for local runs and tests
(Azurite). The Azure libraries are imported here only, and this module only when capture is on: they
cost each worker memory (issue #34).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Protocol

# The SDK's own retries would block the uploader for minutes inside one call; the capture worker
# retries whole batches itself, with a backoff and the shutdown deadline in view.
_CLIENT_OPTIONS: dict[str, Any] = {"retry_total": 0, "connection_timeout": 5, "read_timeout": 20}


class Store(Protocol):
    def upload(self, name: str, data: bytes) -> None:
        """Write one blob; raise on failure (the caller retries)."""


class BlobStore:
    def __init__(self, container: str, account_url: str | None = None, connection_string: str | None = None) -> None:
        from azure.storage.blob import ContainerClient, ContentSettings

        # The SDK logs every request's headers at INFO: a line per upload. Failures are logged by the caller.
        logging.getLogger("azure").setLevel(logging.WARNING)

        if connection_string:
            self._client = ContainerClient.from_connection_string(connection_string, container, **_CLIENT_OPTIONS)
        elif account_url:
            from azure.identity import DefaultAzureCredential

            # The workload's identity only (environment, workload identity, managed identity): no developer
            # sign-in (CLI, PowerShell, VS Code...) is probed; in a container there is none.
            credential = DefaultAzureCredential(
                exclude_cli_credential=True,
                exclude_powershell_credential=True,
                exclude_developer_cli_credential=True,
                exclude_shared_token_cache_credential=True,
                exclude_visual_studio_code_credential=True,
                exclude_interactive_browser_credential=True,
            )
            self._client = ContainerClient(account_url, container, credential=credential, **_CLIENT_OPTIONS)
        else:
            raise ValueError("capture needs SERVING_CAPTURE_ACCOUNT_URL or SERVING_CAPTURE_CONNECTION_STRING")
        self._content = ContentSettings(content_type="application/jsonlines")
        self.location = self._client.url.split("?")[0]  # never a SAS token in a log line

    def upload(self, name: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        # Never overwrite: a retry after a write whose answer was lost finds the blob there, and that is
        # success (names are unique per batch), not a duplicate.
        with contextlib.suppress(ResourceExistsError):
            self._client.upload_blob(name, data, overwrite=False, content_settings=self._content)
