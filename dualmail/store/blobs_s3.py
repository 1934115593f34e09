"""Blobs in an S3-compatible object store (``--blobs s3://BUCKET?endpoint=...``).

Object keys are content addresses: ``[PREFIX]a<account>/<sha256 hex>``, so the same
message stored twice in an account is one object, and a PUT of bytes already there is
harmless (idempotent).  The reference counts stay in the KV store (``blobref``); this
module only moves bytes.  The ordering rules (upload before the referencing commit,
delete after the unreferencing one) are in ``store.blobs`` and ``Store``.

Client: boto3 (docs/dependencies.md).  Credentials come from boto3's standard chain
(``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN``, the shared
credentials file and ``AWS_PROFILE``, instance roles); the URL carries no secret.  URL
parameters: ``endpoint`` (the S3 API URL; default: AWS), ``region`` (default
``us-east-1``), ``prefix`` (prepended to every key).  Any failure to reach the store
is ``errors.UnavailableError`` (IMAP ``NO [UNAVAILABLE]``, JMAP ``serverUnavailable``).

Imports no twisted and no lmdb.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, urlsplit

from ..model import errors
from .blobs import BlobKey

# How long an uploaded-but-not-yet-committed blob is protected from this process's own
# post-commit deletes (the transaction that references it is normally a few ms behind).
STAGED_TTL = 600.0


def _unavailable(e: BaseException) -> errors.UnavailableError:
    return errors.UnavailableError(f"the blob store is unavailable: {type(e).__name__}: {e}")


class S3Blobs:
    """Blobs as objects of one bucket."""

    external = True

    def __init__(self, bucket: str, *, endpoint: str | None = None, region: str = "us-east-1",
                 prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint = endpoint
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint, region_name=region,
                config=Config(
                    s3={"addressing_style": "path"},
                    connect_timeout=5, read_timeout=30,
                    retries={"max_attempts": 3, "mode": "standard"},
                    # plain PUTs with Content-MD5-less bodies work on every S3-compatible store
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    max_pool_connections=32,
                ))
        self.s3 = client
        self._lock = threading.Lock()
        self._staged: dict[tuple[int, bytes], float] = {}

    @classmethod
    def from_url(cls, url: str) -> "S3Blobs":
        u = urlsplit(url)
        if u.scheme != "s3" or not u.netloc:
            raise ValueError(f"not an s3://BUCKET URL: {url!r}")
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        unknown = set(q) - {"endpoint", "region", "prefix"}
        if unknown:
            raise ValueError(f"unknown --blobs parameter(s): {', '.join(sorted(unknown))}")
        prefix = q.get("prefix", "") or u.path.lstrip("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        return cls(u.netloc, endpoint=q.get("endpoint"), region=q.get("region", "us-east-1"),
                   prefix=prefix)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" + (f" at {self.endpoint}" if self.endpoint else "")

    # -- keys --

    def key(self, account: int, sha: bytes) -> str:
        return f"{self.prefix}a{account}/{sha.hex()}"

    def _parse(self, key: str) -> tuple[int, bytes] | None:
        rest = key[len(self.prefix):]
        a, _, h = rest.partition("/")
        if not a.startswith("a") or not a[1:].isdigit() or len(h) != 64:
            return None
        try:
            return int(a[1:]), bytes.fromhex(h)
        except ValueError:
            return None

    # -- BlobStore --

    def check_bucket(self) -> None:
        """Fail early (at start-up) when the bucket is missing or unreachable."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.head_bucket(Bucket=self.bucket)
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise errors.StoreFormatError(f"the S3 bucket {self.bucket!r} does not exist") from None
            raise _unavailable(e) from None
        except BotoCoreError as e:
            raise _unavailable(e) from None

    def get(self, account: int, sha: bytes) -> bytes | None:
        return self._get(account, sha, None)

    def get_range(self, account: int, sha: bytes, start: int, length: int) -> bytes | None:
        if length <= 0:
            return b"" if self.exists(account, sha) else None
        return self._get(account, sha, f"bytes={start}-{start + length - 1}")

    def _get(self, account: int, sha: bytes, byte_range: str | None) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        kw: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(account, sha)}
        if byte_range is not None:
            kw["Range"] = byte_range
        try:
            body = self.s3.get_object(**kw)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return None
            if code == "InvalidRange":  # a start at or past the end (RFC 9110 §15.5.17)
                return b""
            raise _unavailable(e) from None
        except BotoCoreError as e:
            raise _unavailable(e) from None

    def exists(self, account: int, sha: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.head_object(Bucket=self.bucket, Key=self.key(account, sha))
            return True
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise _unavailable(e) from None
        except BotoCoreError as e:
            raise _unavailable(e) from None

    def put(self, account: int, sha: bytes, data: bytes) -> None:
        """Upload (unless this process staged the same blob moments ago)."""
        with self._lock:
            when = self._staged.get((account, sha))
        if when is not None and time.monotonic() - when < STAGED_TTL / 2:
            return
        self.stage(account, sha, data)

    def stage(self, account: int, sha: bytes, data: bytes) -> None:
        """Upload ahead of the transaction that will reference the blob; until that
        commits, this process's post-commit deletes leave the object alone."""
        from botocore.exceptions import BotoCoreError, ClientError

        now = time.monotonic()
        with self._lock:  # marked first: a delete racing with this upload skips it
            self._staged[(account, sha)] = now
            if len(self._staged) > 10_000:
                self._staged = {k: t for k, t in self._staged.items() if now - t < STAGED_TTL}
        try:
            self.s3.put_object(Bucket=self.bucket, Key=self.key(account, sha), Body=data,
                               ContentLength=len(data))
        except (ClientError, BotoCoreError) as e:
            with self._lock:
                self._staged.pop((account, sha), None)
            raise _unavailable(e) from None

    def delete(self, account: int, sha: bytes) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.s3.delete_object(Bucket=self.bucket, Key=self.key(account, sha))
        except (ClientError, BotoCoreError) as e:
            raise _unavailable(e) from None

    def delete_unreferenced(self, account: int, sha: bytes, referenced: Callable[[], bool]) -> bool:
        """After the commit that dropped the last reference: delete the object unless this
        process is storing the same blob again right now (staged, not yet committed) or
        ``referenced()`` (a fresh read of the KV store) says it is referenced again.
        Under the lock ``stage`` marks under, so an upload racing with this either makes
        it skip or comes after the delete."""
        with self._lock:
            when = self._staged.get((account, sha))
            if when is not None and time.monotonic() - when < STAGED_TTL:
                return False  # check --repair reaps it if that transaction never commits
            if referenced():
                return False
            self.delete(account, sha)
            return True

    def committed(self, keys: Iterable[tuple[int, bytes]]) -> None:
        """The transaction referencing these staged blobs committed: unmark them."""
        with self._lock:
            for k in keys:
                self._staged.pop(k, None)

    def keys(self, account: int | None = None) -> Iterator[BlobKey]:
        from botocore.exceptions import BotoCoreError, ClientError

        prefix = self.prefix + (f"a{account}/" if account is not None else "")
        try:
            for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=prefix):
                for obj in page.get("Contents", ()):
                    parsed = self._parse(obj["Key"])
                    if parsed is None:
                        continue
                    modified = obj.get("LastModified")
                    yield BlobKey(parsed[0], parsed[1], int(obj.get("Size", 0)),
                                  modified.timestamp() if modified is not None else None)
        except (ClientError, BotoCoreError) as e:
            raise _unavailable(e) from None

    def delete_account(self, account: int) -> int:
        """Every object of ``account`` (after ``Store.delete_account`` committed)."""
        n = 0
        for k in list(self.keys(account)):
            self.delete(k.account, k.sha)
            n += 1
        return n
