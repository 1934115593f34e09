"""Turn a store into one written before the IMAP indexes existed (``store.imapidx``): no
``imapm``/``unseen``/``imaps`` rows, no ``"ix"`` mark on the mailboxes, no stored header
fields (``imaph``) -- what ``dualmail check --upgrade`` is for."""

from __future__ import annotations

from typing import Any

from dualmail.store import codec, imapidx, keys as K
from dualmail.store.kv import prefix_end


def make_old(store: Any, account: int, header_fields: bool = False) -> None:
    """``header_fields``: keep the stored header fields (a store between the two)."""
    p = K.acct(account)

    def run(w: Any) -> None:
        for table in (*imapidx.TABLES, *(() if header_fields else ("imaph",))):
            for k, _v in list(w.range(table, p, prefix_end(p))):
                w.delete(table, k)
        for k, v in list(w.range("mailbox", p, prefix_end(p))):
            box = codec.loads(v)
            box.pop("ix", None)
            w.put("mailbox", k, codec.dumps(box))

    store.kv.run_write(run, account)
