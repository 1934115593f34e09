"""Blobs of Emails and of their body parts (RFC 8621 §4.1.4 ``blobId``).

A message's blobId is ``G<sha256>`` (the stored blob); a body part's is the
message's blobId plus its partId (``ids.part_blob_id``: ``G<sha>_2-1``), and a
part of an attached message nests (``G<sha>_2_1``). ``resolve_blob`` turns any of
them into the decoded octets: the stored blob, then for each partId the part's
content with its Content-Transfer-Encoding removed. Downloads, Email/set
attachments, Email/import and Email/parse all resolve blobIds here, so every
blobId the server hands out can be used wherever a blobId is accepted.

Must not import twisted.internet or klein.
"""

from __future__ import annotations

from typing import Any

from ...mime.jmap_body import find_part, part_blob
from ...mime.structure import build
from ...model import ids

MAX_NESTING = 16


def resolve_blob(view: Any, blob_id: object) -> bytes | None:
    """The octets of ``blob_id`` in the account of ``view`` (a ReadView), or None."""
    parsed = ids.parse_part_blob_id(blob_id)
    if parsed is None:
        return None
    sha, path = parsed
    if len(path) > MAX_NESTING:
        return None
    data: bytes | None = view.blob(sha)
    if data is None:
        return None
    for part_id in path:
        structure = build(data)[0]
        node = find_part(structure, part_id)
        if node is None:
            return None
        data = part_blob(data, node)
    return data


def stored_sha(blob_id: object) -> str | None:
    """The sha of a blobId naming a whole stored blob (not a part), else None."""
    parsed = ids.parse_part_blob_id(blob_id)
    if parsed is None or parsed[1]:
        return None
    return parsed[0]
