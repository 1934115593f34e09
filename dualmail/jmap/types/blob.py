"""Blob/copy (RFC 8620 §6.3): copy blobs between accounts the principal can
access. Blobs are per account (CONTRACT §7: nothing reaches another
account's data): the copy is a new upload in the target account, with the
same content and so the same blobId, that expires like any upload unless
something references it.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...model import ids
from ...store.store import Store
from ..args import ArgReader
from ..dispatch import CallContext, Method, Responses
from ..session import CORE
from .base import account_number


def blob_copy(store: Store, now: Callable[[], float], ctx: CallContext, args: dict[str, Any]) -> Responses:
    r = ArgReader(args)
    from_account_id = ctx.account(r.id("fromAccountId"), "fromAccountId")
    account_id = ctx.account(r.id("accountId"), write=True)
    blob_ids = r.id_list("blobIds")
    r.finish()
    found: dict[str, tuple[bytes, str | None]] = {}
    with store.read(account_number(from_account_id)) as view:
        for blob_id in blob_ids:
            sha = ids.parse_blob_id(blob_id)
            data = view.blob(sha) if sha is not None else None
            if data is not None and sha is not None:
                info = view.blob_info(sha) or {}
                found[blob_id] = (data, info.get("type"))
    copied: dict[str, str] = {}
    if found:
        with store.write(account_number(account_id)) as tx:
            for blob_id, (data, content_type) in found.items():
                copied[blob_id] = ids.blob_id(tx.put_blob(data, content_type=content_type, uploaded=int(now())))
    not_copied = {
        blob_id: {"type": "notFound", "description": f"no blob {blob_id!r} in {from_account_id!r}"}
        for blob_id in blob_ids if blob_id not in found
    }
    return [("Blob/copy", {
        "fromAccountId": from_account_id,
        "accountId": account_id,
        "copied": copied or None,
        "notCopied": not_copied or None,
    })]


def blob_methods(store: Store, now: Callable[[], float]) -> dict[str, Method]:
    return {"Blob/copy": Method(CORE, lambda ctx, args: blob_copy(store, now, ctx, args))}
