"""No Email/set create input makes the server fail: whatever hypothesis builds
from JMAP-shaped pieces is created or refused with a SetError (RFC 8621 §4.6),
never a serverFail, and a refusal changes nothing.  Header properties on the Email
and on body parts include once-only fields (RFC 5322 §3.6), the Content-* fields,
``:all`` lists and every form; a refusal names each property by its path, and what
is created has no header line over 998 characters (RFC 5322 §2.1.1)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from dualmail.model import ids
from tests.jmap.jmap_store_util import Client
from tests.jmap_mail.jmap_mail_util import DRAFTS, mid, snapshot

text = st.one_of(st.none(), st.integers(), st.text(max_size=12), st.sampled_from(["", " x", "a\r\nb", "\x00"]))
address = st.one_of(text, st.fixed_dictionaries({"email": text}, optional={"name": text}))
# header:{name}[:as{form}][:all] over once-only, Content-* and free fields
FIELDS = ["Message-Id", "Subject", "From", "To", "Date", "In-Reply-To", "References", "MIME-Version",
          "Content-Type", "Content-Disposition", "Content-ID", "Content-Language", "Content-Description",
          "Content-Transfer-Encoding", "X-A", "x-a", "List-Post", "Comments"]
# A well-formed value for each form (so that the conflicts, not the values, decide).
GOOD = {"": " x", ":asRaw": " <a@b>", ":asText": "t", ":asAddresses": [{"email": "a@b"}],
        ":asGroupedAddresses": [{"name": None, "addresses": [{"email": "a@b"}]}], ":asMessageIds": ["a@b"],
        ":asDate": "2020-01-01T00:00:00Z", ":asURLs": ["http://x/"]}
junk = st.one_of(text, st.sampled_from([" " + "x" * 1000, [], [{"email": "a" * 1000 + "@b"}]]),
                 st.lists(st.one_of(text, address), max_size=2))


@st.composite
def header(draw):
    form = draw(st.sampled_from(sorted(GOOD)))
    prop = f"header:{draw(st.sampled_from(FIELDS))}{form}"
    if draw(st.booleans()):
        prop += ":all"
        value = draw(st.lists(st.just(GOOD[form]) | junk, min_size=1, max_size=2))
    else:
        value = draw(st.just(GOOD[form]) | junk)
    return prop, value


headers = st.lists(header(), max_size=3).map(dict)


def with_headers(base):
    return st.builds(lambda obj, hs: {**obj, **hs}, base, headers)


part = st.recursive(
    with_headers(st.fixed_dictionaries({}, optional={
        "partId": st.sampled_from(["1", "2", "x"]), "blobId": st.sampled_from(["G" + "0" * 64, "bad"]),
        "type": st.sampled_from(["text/plain", "text/html", "image/png", "multipart/mixed", "message/rfc822",
                                 "bad", ""]),
        "name": text, "disposition": text, "cid": text, "charset": text, "language": st.lists(text, max_size=2),
        "location": text, "header:X-A": text, "header:Content-Transfer-Encoding": text, "size": text,
        "headers": st.just([]),
    })),
    lambda children: with_headers(st.fixed_dictionaries({"type": st.just("multipart/mixed"),
                                                         "subParts": st.lists(children, max_size=3)})),
    max_leaves=6,
)
email = with_headers(st.fixed_dictionaries({}, optional={
    "from": st.lists(address, max_size=2), "to": st.one_of(text, st.lists(address, max_size=2)),
    "subject": text, "sentAt": text, "messageId": st.lists(text, max_size=2), "keywords": st.dictionaries(
        st.sampled_from(["$seen", "bad(", ""]), st.sampled_from([True, False])),
    "header:X-B:asText": text, "header:X-C:all": st.lists(text, max_size=2), "header:Subject:asURLs": text,
    "bodyStructure": part, "textBody": st.lists(part, max_size=2), "htmlBody": st.lists(part, max_size=2),
    "attachments": st.lists(part, max_size=2),
    "bodyValues": st.dictionaries(st.sampled_from(["1", "2", "x"]), st.one_of(
        text, st.fixed_dictionaries({"value": text}, optional={"isTruncated": st.booleans()}))),
}))


def _path_exists(obj, path: str) -> bool:
    """``path`` names a property given in the create object (a/0/b: list index 0)."""
    node = {"mailboxIds": True, **obj}
    for step in path.split("/"):
        if isinstance(node, list) and step.isdigit() and int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return False
    return True


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=email)
def test_create_never_fails_the_server(client: Client, store, alice, obj):
    if not client.headers["Authorization"].startswith("Bearer "):  # no argon2 per request
        client.headers = {"Authorization": "Bearer " + store.create_token("alice@example.org")}
    before = snapshot(store, alice)
    result = client.call("Email/set", {"create": {"c": {"mailboxIds": {mid(DRAFTS): True}, **obj}}}, alice)
    if result["notCreated"]:
        failure = result["notCreated"]["c"]
        assert failure["type"] in ("invalidProperties", "blobNotFound"), failure
        if failure["type"] == "invalidProperties":
            assert failure["properties"] and all(_path_exists(obj, p) for p in failure["properties"]), failure
        assert snapshot(store, alice) == before
    else:
        created = result["created"]["c"]
        assert set(created) == {"id", "blobId", "threadId", "size"}
        with store.read(alice) as r:
            raw = r.raw_message(ids.parse_id(ids.EMAIL, created["id"]))
        header = raw.split(b"\r\n\r\n", 1)[0]
        assert max(len(line) for line in header.split(b"\r\n")) <= 998
