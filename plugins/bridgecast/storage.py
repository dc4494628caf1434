"""Object storage (any S3 API: SeaweedFS embedded, MinIO/AWS in production).

Everything that crosses tasks or machines goes through here, never through a worker's local disk. The key
scheme lives in `bridgecast.objects`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from bridgecast.connections import ConnectionInfo, get_connection
from bridgecast.objects import health_key

MULTIPART_THRESHOLD = 16 * 1024 * 1024
_TRANSFER = TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=16 * 1024 * 1024,
                           max_concurrency=4, use_threads=True)


def sha256_file(path: str | os.PathLike, chunk: int = 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class PutResult:
    key: str
    created: bool  # False: the key already existed (same content-addressed bytes), nothing was written


class Storage:
    def __init__(self, client, bucket: str):
        self.client = client
        self.bucket = bucket

    def __repr__(self) -> str:
        return f"Storage(bucket={self.bucket!r})"

    @classmethod
    def from_connection(cls, conn_id: str = "bridgecast_s3", bucket: str | None = None) -> "Storage":
        return cls.from_info(get_connection(conn_id), bucket)

    @classmethod
    def from_info(cls, conn: ConnectionInfo, bucket: str | None = None) -> "Storage":
        """From a Connection already looked up (e.g. by the board, inside Airflow's api-server)."""
        extra = conn.extra
        # No SHA-256 of the body in the signature: every write carries a checksum header the server verifies
        # (put_bytes' SHA-256, upload_file's, botocore's CRC32 on the rest), and the signature covers that
        # header, so the bytes are as bound to the request as before. What it saves is hashing each body twice
        # more — here for the signature and on the server to check it (a 4 MB photo: ~2.7 ms here, about as
        # much in SeaweedFS). Over HTTPS botocore already does this by itself; the embedded stack is HTTP.
        client = boto3.client(
            "s3", endpoint_url=extra.get("endpoint_url") or None, region_name=extra.get("region_name", "us-east-1"),
            aws_access_key_id=conn.login or None, aws_secret_access_key=conn.password or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=60,
                          request_checksum_calculation="when_supported",  # not left to AWS_* env settings
                          s3={"addressing_style": "path", "payload_signing_enabled": False}))
        return cls(client, bucket or extra.get("bucket") or os.environ.get("BRIDGECAST_BUCKET", "bridgecast"))

    # --- writes -------------------------------------------------------------------------------------------
    def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
                  if_absent: bool = False, metadata: dict | None = None, sha256: str | None = None) -> PutResult:
        """`sha256`: the hex digest of `data` when the caller has it (not computed again); S3 checks it either way."""
        digest = bytes.fromhex(sha256) if sha256 else hashlib.sha256(data).digest()
        kwargs = dict(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
                      ChecksumSHA256=base64.b64encode(digest).decode(), Metadata=metadata or {})
        if if_absent:
            kwargs["IfNoneMatch"] = "*"
        try:
            self.client.put_object(**kwargs)
        except ClientError as exc:
            if if_absent and _code(exc) in ("PreconditionFailed", "412"):
                return PutResult(key, created=False)
            raise
        return PutResult(key, created=True)

    def put_json(self, key: str, data, **kw) -> PutResult:
        body = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode()
        return self.put_bytes(key, body, content_type="application/json; charset=utf-8", **kw)

    def upload_file(self, path: str | os.PathLike, key: str, *, content_type: str = "application/octet-stream",
                    if_absent: bool = True, sha256: str | None = None,
                    progress: Callable[[int], None] | None = None) -> PutResult:
        """Stream a file up (multipart above 16 MB, SHA-256 checksums per part); never overwrite by default.
        `progress(bytes_since_last_call)` is boto3's transfer callback (called from its threads)."""
        if if_absent and self.exists(key):
            return PutResult(key, created=False)
        sha256 = sha256 or sha256_file(path)
        self.client.upload_file(str(path), self.bucket, key, Config=_TRANSFER, Callback=progress, ExtraArgs={
            "ContentType": content_type, "ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha256}})
        return PutResult(key, created=True)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    # --- reads --------------------------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def head(self, key: str) -> dict:
        return self.client.head_object(Bucket=self.bucket, Key=key)

    def get_bytes(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_json(self, key: str):
        return json.loads(self.get_bytes(key))

    def download_file(self, key: str, path: str | os.PathLike, *,
                      progress: Callable[[int], None] | None = None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, key, str(path), Config=_TRANSFER, Callback=progress)
        return path

    def list_keys(self, prefix: str) -> Iterator[dict]:
        """Objects under `prefix` (dicts with Key, Size, LastModified), in key order."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def check_writable(self) -> None:
        """Preflight: a round trip through the bucket (write, read back, delete)."""
        key = health_key(f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
        self.put_bytes(key, b"ok")
        if self.get_bytes(key) != b"ok":
            raise RuntimeError(f"storage read-back mismatch on {self.bucket}/{key}")
        self.delete(key)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


# Codes an S3 service answers when it is overloaded, restarting or briefly inconsistent: the same request later
# succeeds. Anything else with a 4xx status is about the request itself and fails the same way every time.
_TRANSIENT_CODES = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "TooManyRequests", "503", "500"}


def is_transient(exc: BaseException) -> bool:
    """Would the same storage call succeed later? S3 unreachable, a 5xx or throttling answer, a connection reset
    or timeout: yes (retry the task). NoSuchKey, AccessDenied, a bad request: no (it is about the object)."""
    from botocore.exceptions import (ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError,
                                     ReadTimeoutError, ResponseStreamingError)
    from urllib3.exceptions import HTTPError as Urllib3Error

    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return _code(exc) in _TRANSIENT_CODES or status >= 500 or status == 429
    return isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError,
                            ResponseStreamingError, Urllib3Error, ConnectionError, TimeoutError))
