"""The per-account upload quota (RFC 8620 §6.1): pending uploads (blobs with an upload
mark that no Email references) are bounded by UPLOAD_QUOTA_FACTOR x maxSizeUpload; an
upload that would exceed it drops the oldest unreferenced uploads first, and a blob an
Email references is never dropped."""

from __future__ import annotations

import json

from dualmail.jmap.service import UPLOAD_QUOTA_FACTOR
from dualmail.jmap.session import CoreLimits
from dualmail.model import ids
from tests.jmap.jmap_store_util import Client, aid

SIZE = 100  # maxSizeUpload of this test: the quota is UPLOAD_QUOTA_FACTOR * SIZE octets


def upload(client, account, data):
    response = client.request("POST", f"/jmap/upload/{aid(account)}/", body=data,
                              headers={**client.headers, "Content-Type": "message/rfc822"})
    assert response.code == 201, response.body
    return json.loads(response.body)["blobId"]


def present(store, account, blob_id):
    with store.read(account) as r:
        return r.blob(ids.parse_blob_id(blob_id)) is not None


def test_oldest_unreferenced_uploads_make_room(store, alice, clock):
    client = Client(store, clock, limits=CoreLimits(max_size_upload=SIZE))
    msg = b"Subject: kept\r\n\r\n" + b"k" * 50 + b"\r\n"
    blobs = []
    for i in range(UPLOAD_QUOTA_FACTOR):
        data = (msg if i == 0 else bytes([65 + i]) * SIZE)
        blobs.append(upload(client, alice, data))
        clock.advance(1)
    # the first upload becomes an Email: referenced, so never dropped for room
    made = client.call("Email/import", {"emails": {"k": {"blobId": blobs[0], "mailboxIds": {"M1": True}}}},
                       alice)
    assert "k" in made["created"], made
    assert all(present(store, alice, b) for b in blobs)
    # pending now: 3 x SIZE; one more SIZE fits exactly
    blobs.append(upload(client, alice, b"Z" * SIZE))
    clock.advance(1)
    assert all(present(store, alice, b) for b in blobs)
    # the next one drops the oldest unreferenced upload (blobs[1]) and nothing else
    upload(client, alice, b"Y" * SIZE)
    assert not present(store, alice, blobs[1])
    assert present(store, alice, blobs[0]) and all(present(store, alice, b) for b in blobs[2:])
    # uploading a pending blob again does not count it twice
    again = upload(client, alice, b"Z" * SIZE)
    assert again == blobs[-1] and present(store, alice, blobs[2])


def test_pending_uploads_are_bounded_in_number_too(store, alice, clock):
    """Many tiny uploads cannot pile up: past max_count pending ones, the oldest go."""
    with store.write(alice) as tx:
        for i in range(5):
            tx.put_blob(b"tiny %d" % i, uploaded=i)
        assert tx.make_upload_room(1, 10**9, max_count=3) == 3
    with store.read(alice) as r:
        assert len(r.uploads_before(10**6)) == 2  # the two newest stay
