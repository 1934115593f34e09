"""Where message bytes live: the ``BlobStore`` interface and its default, the KV store.

A blob is the byte-exact message (or JMAP upload), addressed by account and SHA-256.
Its reference count and upload mark stay in the KV table ``blobref`` whatever the blob
store; only the bytes move.

- ``KvBlobs`` (the default): the bytes are rows of the KV table ``blob`` (key
  ``keys.blob(account, sha)``), written and deleted inside the mail transaction, exactly
  as before this module existed (existing stores work unchanged).
- ``blobs_s3.S3Blobs`` (``--blobs s3://BUCKET?endpoint=...``): the bytes are objects of
  an S3-compatible store, outside the transaction.  ``external`` is True: the bytes are
  uploaded *before* the transaction that references them commits (``stage``, ideally
  before the transaction starts, so no lock is held while uploading), and deleted only
  *after* the transaction that dropped the last reference has committed
  (``Store._after_commit``).  A crash between the two leaves at most an unreferenced
  object, which ``dualmail check`` reports and ``dualmail check --repair`` removes once
  older than the grace period.

Imports no twisted and no lmdb.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol

from ..model import errors
from . import keys as K
from .kv import KVRead, KVWrite, prefix_end


@dataclass(frozen=True, slots=True)
class BlobKey:
    """One stored blob as listed by ``BlobStore.keys`` (``check``)."""

    account: int
    sha: bytes
    size: int
    modified: float | None  # epoch seconds (None: not known, the KV store)


class BlobStore(Protocol):
    """The bytes of blobs, by (account, SHA-256)."""

    external: bool  # outside the KV transaction (S3): staged before, deleted after commit

    def get(self, account: int, sha: bytes) -> bytes | None: ...

    def get_range(self, account: int, sha: bytes, start: int, length: int) -> bytes | None:
        """``length`` octets from ``start`` (fewer at the end); None: no such blob."""
        ...

    def put(self, account: int, sha: bytes, data: bytes) -> None:
        """Store ``data`` under ``sha`` (idempotent: the same bytes again change nothing)."""
        ...

    def delete(self, account: int, sha: bytes) -> None: ...

    def exists(self, account: int, sha: bytes) -> bool: ...

    def keys(self, account: int | None = None) -> Iterator[BlobKey]:
        """Every stored blob (of ``account``), for ``check``."""
        ...

    # external stores only (``Store`` calls these when ``external``):

    def stage(self, account: int, sha: bytes, data: bytes) -> None:
        """Upload ahead of the transaction that will reference the blob."""
        ...

    def delete_unreferenced(self, account: int, sha: bytes, referenced: Callable[[], bool]) -> bool:
        """After the unreferencing commit: delete unless staged again or ``referenced()``."""
        ...

    def committed(self, keys: Iterable[tuple[int, bytes]]) -> None:
        """The transaction referencing these staged blobs committed."""
        ...

    def delete_account(self, account: int) -> int:
        """Delete every blob of a deleted account; how many."""
        ...

    def check_bucket(self) -> None:
        """Fail early when the store is missing or unreachable."""
        ...

    def describe(self) -> str:
        """Where the blobs are, for the log (no secret)."""
        ...


class KvBlobs:
    """Blobs as rows of the KV table ``blob`` of one read view or write transaction."""

    external = False

    def __init__(self, kv: KVRead) -> None:
        self.kv = kv

    def get(self, account: int, sha: bytes) -> bytes | None:
        raw = self.kv.get("blob", K.blob(account, sha))
        return None if raw is None else bytes(raw)

    def get_range(self, account: int, sha: bytes, start: int, length: int) -> bytes | None:
        raw = self.kv.get("blob", K.blob(account, sha))
        return None if raw is None else bytes(raw[start:start + length])

    def put(self, account: int, sha: bytes, data: bytes) -> None:
        self._w().put("blob", K.blob(account, sha), data)

    def delete(self, account: int, sha: bytes) -> None:
        self._w().delete("blob", K.blob(account, sha))

    def exists(self, account: int, sha: bytes) -> bool:
        return self.kv.get("blob", K.blob(account, sha)) is not None

    def keys(self, account: int | None = None) -> Iterator[BlobKey]:
        p = b"" if account is None else K.acct(account)
        for k, v in self.kv.range("blob", p, prefix_end(p) if p else None):
            yield BlobKey(K.un32(k), bytes(k[4:]), len(v), None)

    def _w(self) -> KVWrite:
        w = self.kv
        assert hasattr(w, "put"), "blob writes need a write transaction"
        return w  # type: ignore[return-value]


def open_blobs(spec: str | None) -> BlobStore | None:
    """The blob store a ``--blobs`` value names: None (or ``kv``) for the KV store, an
    ``S3Blobs`` for ``s3://BUCKET?endpoint=...``.  Raises ``errors.CannotError`` for
    anything else."""
    if not spec or spec == "kv":
        return None
    if spec.startswith("s3://"):
        from .blobs_s3 import S3Blobs

        try:
            return S3Blobs.from_url(spec)
        except ValueError as e:
            raise errors.CannotError(str(e)) from None
    raise errors.CannotError(f"--blobs takes 'kv' or an s3://BUCKET?endpoint=... URL, not {spec!r}")
