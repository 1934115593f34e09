"""Fuzz target: MIME ingest (dualmail/mime) as LMTP, APPEND, Email/import and Email/parse
run it: ``summarize`` (never raises, JSON-able, offsets in bounds), the IMAP ENVELOPE
and BODYSTRUCTURE bytes, and every JMAP Email property with all body values (HTML
sanitised) rendered from the raw message."""

from __future__ import annotations

import glob
import json
import os
import sys

from dualmail.jmap.types.email_props import PROPERTIES, BodyOptions, render
from dualmail.mime import summarize
from dualmail.mime.imap_body import bodystructure_bytes, envelope_bytes, section_bytes
from tests.mime.mime_helpers import check_offsets

_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mime")
SEEDS = [open(p, "rb").read() for p in sorted(glob.glob(os.path.join(_DATA, "*.eml")))]
_PROPS = sorted(p for p in PROPERTIES if p not in ("id", "blobId", "threadId", "mailboxIds", "keywords",
                                                    "size", "receivedAt"))
_PROPS += ["header:Subject:asText", "header:From:asAddresses:all", "header:Date:asDate",
           "header:List-Post:asURLs", "header:Message-ID:asMessageIds", "header:To:asGroupedAddresses"]


def TestOneInput(data: bytes) -> None:
    s = summarize(data)
    json.dumps(s)
    check_offsets(s["structure"], 0, len(data))
    assert isinstance(s["preview"], str) and len(s["preview"]) <= 256
    bodystructure_bytes(s["structure"], True)
    envelope_bytes(s["envelope"])
    section_bytes(data, s["structure"], "HEADER.FIELDS (From Subject)")
    for max_bytes in (0, 7):
        email = render(_PROPS, meta=None, summary=s, raw=lambda: data, blob_id="Gx",
                       opts=BodyOptions(fetch_all=True, fetch_html=True, fetch_text=True, max_bytes=max_bytes))
        text = json.dumps(email, ensure_ascii=False)
        text.encode("utf-8")  # I-JSON: no lone surrogate (RFC 7493 §2.1)
        for value in email["bodyValues"].values():
            assert not max_bytes or len(value["value"].encode()) <= max_bytes


if __name__ == "__main__":
    from tests.fuzz.harness import main

    main(TestOneInput, SEEDS, ["dualmail.mime"])
    sys.exit(0)
