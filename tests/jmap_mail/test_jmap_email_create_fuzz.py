"""No Email/set create input makes the server fail: whatever hypothesis builds
from JMAP-shaped pieces is created or refused with a SetError (RFC 8621 §4.6),
never a serverFail, and a refusal changes nothing."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.jmap.jmap_store_util import Client
from tests.jmap_mail.jmap_mail_util import DRAFTS, mid, snapshot

text = st.one_of(st.none(), st.integers(), st.text(max_size=12), st.sampled_from(["", " x", "a\r\nb", "\x00"]))
address = st.one_of(text, st.fixed_dictionaries({"email": text}, optional={"name": text}))
part = st.recursive(
    st.fixed_dictionaries({}, optional={
        "partId": st.sampled_from(["1", "2", "x"]), "blobId": st.sampled_from(["G" + "0" * 64, "bad"]),
        "type": st.sampled_from(["text/plain", "text/html", "image/png", "multipart/mixed", "message/rfc822",
                                 "bad", ""]),
        "name": text, "disposition": text, "cid": text, "charset": text, "language": st.lists(text, max_size=2),
        "location": text, "header:X-A": text, "header:Content-Transfer-Encoding": text, "size": text,
    }),
    lambda children: st.fixed_dictionaries({"type": st.just("multipart/mixed"),
                                            "subParts": st.lists(children, max_size=3)}),
    max_leaves=6,
)
email = st.fixed_dictionaries({}, optional={
    "from": st.lists(address, max_size=2), "to": st.one_of(text, st.lists(address, max_size=2)),
    "subject": text, "sentAt": text, "messageId": st.lists(text, max_size=2), "keywords": st.dictionaries(
        st.sampled_from(["$seen", "bad(", ""]), st.sampled_from([True, False])),
    "header:X-B:asText": text, "header:X-C:all": st.lists(text, max_size=2), "header:Subject:asURLs": text,
    "bodyStructure": part, "textBody": st.lists(part, max_size=2), "htmlBody": st.lists(part, max_size=2),
    "attachments": st.lists(part, max_size=2),
    "bodyValues": st.dictionaries(st.sampled_from(["1", "2", "x"]), st.one_of(
        text, st.fixed_dictionaries({"value": text}, optional={"isTruncated": st.booleans()}))),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(obj=email)
def test_create_never_fails_the_server(client: Client, store, alice, obj):
    before = snapshot(store, alice)
    result = client.call("Email/set", {"create": {"c": {"mailboxIds": {mid(DRAFTS): True}, **obj}}}, alice)
    if result["notCreated"]:
        assert result["notCreated"]["c"]["type"] in ("invalidProperties", "blobNotFound")
        assert snapshot(store, alice) == before
    else:
        assert set(result["created"]["c"]) == {"id", "blobId", "threadId", "size"}
