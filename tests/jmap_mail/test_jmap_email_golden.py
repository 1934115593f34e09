"""Golden tests: every ``tests/data/mime/NAME.eml`` through Email/get, compared
with ``NAME.email.json`` beside it (bodyStructure, the §4.1.4 body lists,
bodyValues, convenience headers). On a mismatch the actual result is written
to ``NAME.email.json.failed``; run with ``DUALMAIL_REGEN_GOLDEN=1`` to rewrite
the expected files (then review the diff)."""

from __future__ import annotations

import glob
import json
import os

import pytest

from tests.jmap_mail.jmap_mail_util import MIME_DIR, add, eml

REGEN = os.environ.get("DUALMAIL_REGEN_GOLDEN") == "1"
NAMES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(MIME_DIR, "*.eml")))
PROPERTIES = ["subject", "from", "to", "sentAt", "messageId", "inReplyTo", "references", "hasAttachment",
              "preview", "bodyStructure", "textBody", "htmlBody", "attachments", "bodyValues"]


@pytest.mark.parametrize("name", NAMES)
def test_golden(client, store, alice, name):
    e = add(store, alice, eml(name))
    [email] = client.call("Email/get", {"ids": [e], "properties": PROPERTIES, "fetchAllBodyValues": True,
                                        "bodyProperties": ["partId", "blobId", "size", "name", "type", "charset",
                                                           "disposition", "cid", "language", "location"]},
                          alice)["list"]
    del email["id"]
    actual = json.dumps(email, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    path = os.path.join(MIME_DIR, name + ".email.json")
    if REGEN or not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(actual)
        if not REGEN:
            pytest.fail(f"wrote missing golden file {path}: review it and run again")
        return
    with open(path, encoding="utf-8") as f:
        expected = f.read()
    failed = path + ".failed"
    if actual != expected:
        with open(failed, "w", encoding="utf-8") as f:
            f.write(actual)
        pytest.fail(f"{name}: Email/get differs from {path}; actual result in {failed}")
    if os.path.exists(failed):
        os.remove(failed)


def test_tricky_structures(client, store, alice):
    """Spot checks of the §4.1.4 algorithm on the golden corpus."""
    def get(name):
        e = add(store, alice, eml(name))
        return client.call("Email/get", {"ids": [e], "properties": PROPERTIES}, alice)["list"][0]

    alt = get("alternative_in_mixed")  # alternative inside mixed + a PDF
    assert [p["type"] for p in alt["textBody"]] == ["text/plain"]
    assert [p["type"] for p in alt["htmlBody"]] == ["text/html"]
    assert [p["name"] for p in alt["attachments"]] == ["report.pdf"] and alt["hasAttachment"] is True
    related = get("related_inline")  # inline images referenced from the HTML
    assert [p["type"] for p in related["htmlBody"]] == ["text/html"]
    assert [p["cid"] for p in related["attachments"]] == ["logo@example.org", "spacer@example.org"]
    assert related["hasAttachment"] is False
    forwarded = get("rfc822_attachment")
    assert [p["type"] for p in forwarded["attachments"]] == ["message/rfc822"]
    bare = get("no_content_type")  # RFC 2045 default text/plain; charset=us-ascii
    assert [(p["type"], p["charset"]) for p in bare["textBody"]] == [("text/plain", "us-ascii")]
    bad = client.call("Email/get", {"ids": [add(store, alice, eml("bad_charset"))], "properties": ["bodyValues"],
                                    "fetchTextBodyValues": True}, alice)["list"][0]
    assert any(v["isEncodingProblem"] for v in bad["bodyValues"].values())
