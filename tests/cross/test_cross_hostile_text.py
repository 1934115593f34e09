"""A message in any charset, with any encoded-words and octets, is stored and served
(issue 10): IMAP APPEND and JMAP Email/import store it, and IMAP FETCH (PREVIEW,
ENVELOPE, BODYSTRUCTURE, sections), SORT, SEARCH, JMAP Email/get (every property,
header form and body value), Email/parse and SearchSnippet/get answer without an
error; every JMAP response is valid UTF-8 I-JSON (RFC 7493 §2.1).  Text that no
Unicode can carry (a lone surrogate from UTF-7, say) is U+FFFD (RFC 8621 §4.1.4)."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings

from dualmail.jmap.types.email_props import PROPERTIES
from dualmail.model import ids
from dualmail.store.store import open_store
from tests.imap.imap_util import PASSWORD, USER
from tests.imap.imap_util import Client as ImapClient
from tests.jmap.jmap_store_util import Client as JmapClient
from tests.jmap.jmap_store_util import aid
from tests.mime.hostile import assert_valid_unicode, hostile_message

BODY_PROPERTIES = ["partId", "blobId", "size", "headers", "name", "type", "charset", "disposition", "cid",
                   "language", "location", "subParts", "header:Content-Description:asText",
                   "header:Content-Type:asRaw:all"]
FORMS = ("Raw", "Text", "Addresses", "GroupedAddresses", "MessageIds", "Date", "URLs")
HEADER_PROPERTIES = (["header:Subject:asText", "header:From:asGroupedAddresses:all", "header:To:asAddresses",
                      "header:Message-ID:asMessageIds"]
                     + [f"header:X-Hostile:as{form}" for form in FORMS])


class World:
    """One store, one IMAP session (INBOX selected) and one JMAP client on it."""

    def __init__(self, path: str) -> None:
        self.store = open_store(path, sync=False)
        self.account = self.store.create_account(USER, PASSWORD)
        self.imap = ImapClient(self.store)
        self.imap.ok(f"a LOGIN {USER} {PASSWORD}")
        self.imap.ok("b SELECT INBOX")
        self.jmap = JmapClient(self.store, auth=(USER, PASSWORD))
        # A bearer token: no argon2 check per request.
        self.jmap.headers = {"Authorization": "Bearer " + self.store.create_token(USER)}
        self.n = 0

    def tag(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def append(self, raw: bytes) -> int:
        tag = self.tag()
        out = self.imap.send(f"{tag} APPEND INBOX {{{len(raw)}+}}\r\n".encode() + raw + b"\r\n")
        m = re.search(rf"^{tag} OK \[APPENDUID \d+ (\d+)\]", out, re.M)
        assert m, out
        return int(m.group(1))

    def imap_ok(self, command: str) -> str:
        tag = self.tag()
        return self.imap.ok(f"{tag} {command}")

    def jmap_call(self, name: str, args: dict) -> dict:
        body = {"using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
                "methodCalls": [[name, {"accountId": aid(self.account), **args}, "c"]]}
        response = self.jmap.request("POST", "/jmap/api", body=body,
                                     headers={**self.jmap.headers, "Content-Type": "application/json"})
        assert response.code == 200, response.body
        answer = json.loads(response.body.decode("utf-8"))  # strict UTF-8
        assert_valid_unicode(answer)
        [[got, result, _c]] = answer["methodResponses"]
        assert got == name, result
        return result


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(str(tmp_path_factory.mktemp("hostile") / "data"))
    yield w
    w.store.close()


def _serve(world: World, raw: bytes) -> dict:
    """Store ``raw`` through IMAP APPEND and JMAP Email/import and read it every way;
    returns Email/get with the default properties."""
    uid = world.append(raw)
    out = world.imap_ok(f"UID FETCH {uid} (PREVIEW ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE EMAILID "
                        "BODY.PEEK[HEADER.FIELDS (Subject From)] BODY.PEEK[1.1] BODY.PEEK[2.MIME])")
    email_id = re.search(r"EMAILID \((\w+)\)", out).group(1)
    world.imap_ok("UID SORT (SUBJECT FROM DISPLAYFROM) UTF-8 ALL")
    world.imap_ok("UID THREAD REFERENCES UTF-8 ALL")
    world.imap_ok(f"UID SEARCH UID {uid} OR SUBJECT x FROM bob")

    [email] = world.jmap_call("Email/get", {
        "ids": [email_id], "properties": sorted(PROPERTIES) + HEADER_PROPERTIES,
        "bodyProperties": BODY_PROPERTIES, "fetchAllBodyValues": True, "maxBodyValueBytes": 9})["list"]
    assert email["size"] == len(raw)
    [email] = world.jmap_call("Email/get", {"ids": [email_id]})["list"]  # the default properties
    world.jmap_call("SearchSnippet/get", {"emailIds": [email_id], "filter": {"text": "x"}})
    world.jmap_call("Email/query", {"filter": {"text": "\ufffd"}, "sort": [{"property": "subject"}]})
    parsed = world.jmap_call("Email/parse", {"blobIds": [email["blobId"]], "fetchAllBodyValues": True,
                                             "bodyProperties": BODY_PROPERTIES})
    assert list(parsed["parsed"]) == [email["blobId"]]
    created = world.jmap_call("Email/import", {"emails": {"k": {
        "blobId": email["blobId"], "mailboxIds": {ids.format_id(ids.MAILBOX, 2): True}}}})
    assert "k" in created["created"], created
    return email


@pytest.fixture
def lmdb_only(engine):
    """LMDB only: the messages go into the module's own store (``World``), whatever the
    engine; the engines store the same bytes and never decode text, so a second run on
    PostgreSQL would test nothing more."""
    if engine != "lmdb":
        pytest.skip("text decoding does not depend on the engine; runs once, on LMDB")


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(raw=hostile_message())
def test_any_message_is_stored_and_served(lmdb_only, world, raw):
    _serve(world, raw)


@pytest.mark.parametrize("raw, field, expected", [
    (b"From: a@b.c\r\nSubject: =?utf-7?q?+2AA-?=\r\n\r\nhi\r\n", "subject", "\ufffd"),
    (b"From: a@b.c\r\nSubject: x\r\nContent-Type: text/plain; charset=utf-7\r\n\r\nhi +2AA- there\r\n",
     "preview", "hi \ufffd there"),
    (b"From: a@b.c\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
     b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
     b"Content-Type: application/octet-stream; name=\"=?utf-7?q?+2AA-?=\"\r\n\r\nxx\r\n--b--\r\n",
     "attachments", [("\ufffd", "application/octet-stream")]),
])
def test_the_reported_messages(world, raw, field, expected):
    """Issue 10's three messages: APPEND answered NO [SERVERBUG], Email/get HTTP 500 and
    FETCH PREVIEW NO; what cannot be represented is U+FFFD."""
    email = _serve(world, raw)
    if field == "attachments":
        assert [(a["name"], a["type"]) for a in email["attachments"]] == expected
    else:
        assert email[field] == expected
    out = world.imap_ok("FETCH * (PREVIEW)")
    assert f"PREVIEW {{{len(email['preview'].encode())}}}\r\n{email['preview']})" in out or \
        f'PREVIEW "{email["preview"]}"' in out


def test_search_charsets(world):
    """IMAP SEARCH CHARSET (RFC 9051 §6.4.4): a search string that decodes to a lone
    surrogate is searched as U+FFFD; a codec that is no charset is BADCHARSET."""
    uid = world.append(b"From: a@b.c\r\nSubject: =?utf-7?q?x+2AA-y?=\r\n\r\nhi\r\n")
    tag = world.tag()
    out = world.imap.send(f"{tag} UID SEARCH CHARSET UTF-7 SUBJECT {{5}}\r\n".encode() + b"+2AA-\r\n")
    assert re.search(rf"^\* SEARCH( \d+)* {uid}\r$", out, re.M) and f"{tag} OK" in out, out
    for charset in ("rot13", "base64", "undefined", "x-nope"):
        tag = world.tag()
        out = world.imap.cmd(f"{tag} SEARCH CHARSET {charset} ALL")
        assert out.startswith(f"{tag} NO [BADCHARSET"), out
