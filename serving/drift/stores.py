"""Where captured records are read from: a directory, S3 (SageMaker Data Capture) or Azure blob storage.

Each store lists one folder level at a time, so that only the period's hour folders are listed, never
the whole retention. Keys are relative to the source and separated by '/'.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from serving.drift.period import Period
from serving.drift.problems import DriftInputError

T = TypeVar("T")
YEAR = re.compile(r"\d{4}")
# Below the source: <endpoint>/<variant or version>/YYYY/..., <variant>/YYYY/... or YYYY/... directly.
LEVELS_ABOVE_YEARS = 2


class Store(Protocol):
    description: str

    def folders(self, prefix: str) -> list[str]:
        """Names of the folders right under `prefix` ('' or ending in '/')."""
        ...

    def files(self, prefix: str) -> list[str]:
        """Keys of the files right under `prefix`."""
        ...

    def read(self, key: str) -> bytes: ...


class LocalStore:
    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise DriftInputError(f"--source {root}: no such directory")
        self.root = root
        self.description = str(root)

    def folders(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def files(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        return sorted(prefix + p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()


class S3Store:
    def __init__(self, bucket: str, prefix: str, endpoint_url: str | None) -> None:
        import boto3

        self.bucket, self.prefix = bucket, prefix
        self.description = f"s3://{bucket}/{prefix}".rstrip("/")
        self.client = _s3_errors(self, lambda: boto3.client("s3", endpoint_url=endpoint_url))

    def _pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        yield from _s3_errors(
            self, lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/"))
        )

    def folders(self, prefix: str) -> list[str]:
        names = [p["Prefix"] for page in self._pages(prefix) for p in page.get("CommonPrefixes", [])]
        return sorted(name[len(self.prefix + prefix) :].rstrip("/") for name in names)

    def files(self, prefix: str) -> list[str]:
        keys = [o["Key"] for page in self._pages(prefix) for o in page.get("Contents", [])]
        return sorted(key[len(self.prefix) :] for key in keys)

    def read(self, key: str) -> bytes:
        body = _s3_errors(self, lambda: self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"])
        data: bytes = body.read()
        return data


def _s3_errors(store: S3Store, call: Callable[[], T]) -> T:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return call()
    except NoCredentialsError:
        raise DriftInputError(f"{store.description}: no AWS credentials (log in, or set AWS_PROFILE)") from None
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise DriftInputError(f"{store.description}: S3 answered {code}: {error}") from None
    except (BotoCoreError, ValueError) as error:  # ValueError: an --endpoint-url that is no URL
        raise DriftInputError(f"{store.description}: {error}") from None


class BlobStore:
    def __init__(self, container: Any, prefix: str, description: str) -> None:
        self.container, self.prefix, self.description = container, prefix, description

    def _walk(self, prefix: str) -> list[Any]:
        return _blob_errors(
            self, lambda: list(self.container.walk_blobs(name_starts_with=self.prefix + prefix, delimiter="/"))
        )

    def folders(self, prefix: str) -> list[str]:
        start = len(self.prefix + prefix)
        return sorted(item.name[start:].rstrip("/") for item in self._walk(prefix) if item.name.endswith("/"))

    def files(self, prefix: str) -> list[str]:
        names = [item.name for item in self._walk(prefix) if not item.name.endswith("/")]
        return sorted(name[len(self.prefix) :] for name in names)

    def read(self, key: str) -> bytes:
        data: bytes = _blob_errors(self, lambda: self.container.download_blob(self.prefix + key).readall())
        return data


def _blob_errors(store: BlobStore, call: Callable[[], T]) -> T:
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    try:
        return call()
    except ClientAuthenticationError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DriftInputError(
            f"{store.description}: cannot sign in ({first}); run `az login`, or pass --connection-string"
        ) from None
    except HttpResponseError as error:
        code = getattr(error, "error_code", None) or error.status_code
        raise DriftInputError(f"{store.description}: the blob service answered {code}") from None
    except AzureError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DriftInputError(f"{store.description}: {first}") from None


def _blob_store(account_url: str | None, container: str, prefix: str, connection_string: str | None) -> BlobStore:
    from azure.storage.blob import ContainerClient

    if connection_string:
        try:
            client = ContainerClient.from_connection_string(connection_string, container)
        except ValueError as error:
            raise DriftInputError(f"--connection-string: {error}") from None
        where = f"container {container}"
    elif account_url:
        from azure.identity import DefaultAzureCredential

        client = ContainerClient(account_url, container, credential=DefaultAzureCredential())
        where = f"{account_url.rstrip('/')}/{container}"
    else:
        raise DriftInputError(
            f"--source az://{container}/{prefix}: say which storage account: --account-url "
            "https://ACCOUNT.blob.core.windows.net, or --connection-string (or $AZURE_STORAGE_CONNECTION_STRING)"
        )
    return BlobStore(client, prefix, f"{where}/{prefix}".rstrip("/"))


def open_store(source: str, endpoint_url: str | None, connection_string: str | None, account_url: str | None) -> Store:
    connection_string = connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or None
    parts = urlsplit(source)
    if parts.scheme == "s3":
        return S3Store(parts.netloc, _folder(parts.path), endpoint_url)
    if parts.scheme == "az":
        return _blob_store(account_url, parts.netloc, _folder(parts.path), connection_string)
    if parts.scheme == "https" and ".blob." in parts.netloc:
        container, _, prefix = parts.path.lstrip("/").partition("/")
        if not container:
            raise DriftInputError(
                f"--source {source}: name the container: https://ACCOUNT.blob.core.windows.net/CONTAINER/prefix"
            )
        return _blob_store(f"https://{parts.netloc}", container, _folder(prefix), connection_string)
    if parts.scheme in ("", "file"):
        return LocalStore(Path(parts.path if parts.scheme == "file" else source))
    raise DriftInputError(
        f"--source {source}: expected a directory, s3://bucket/prefix, az://container/prefix or "
        "https://ACCOUNT.blob.core.windows.net/container/prefix"
    )


def _folder(path: str) -> str:
    path = path.strip("/")
    return path + "/" if path else ""


def captured_files(store: Store, period: Period) -> list[str]:
    """The JSON Lines files in the period's hour folders of every variant below the source."""
    found = []
    for root in _year_parents(store, "", LEVELS_ABOVE_YEARS):
        for hour in period.hours():
            found += [key for key in store.files(f"{root}{hour}/") if key.endswith(".jsonl")]
    return found


def _year_parents(store: Store, prefix: str, depth: int) -> list[str]:
    """The folders whose sub-folders are years (YYYY/MM/DD/HH below them)."""
    folders = store.folders(prefix)
    if any(YEAR.fullmatch(name) for name in folders):
        return [prefix]
    if depth == 0:
        return []
    return [parent for name in folders for parent in _year_parents(store, f"{prefix}{name}/", depth - 1)]
