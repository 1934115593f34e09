"""Email/query, Email/queryChanges and Email/changes (RFC 8621 §4.3-§4.5)
through the one search engine."""

from __future__ import annotations

import pytest

from tests.jmap_mail.jmap_mail_util import ARCHIVE, INBOX, TRASH, add, aid, eml, message, mid, snapshot


@pytest.fixture
def mails(store, alice):
    """Three messages: two in one thread (INBOX), one in Archive."""
    a = add(store, alice, message("Lunch plans", "Pizza on friday", sender="zed@example.com", message_id="a@x",
                                  date="Mon, 01 Jan 2024 10:00:00 +0000"), received=1_700_000_100,
            flags=["\\Seen"])
    b = add(store, alice, message("Re: Lunch plans", "Sounds good, pizza it is", sender="amy@example.com",
                                  message_id="b@x", extra="In-Reply-To: <a@x>\r\nReferences: <a@x>\r\n",
                                  date="Tue, 02 Jan 2024 10:00:00 +0000"), received=1_700_000_300)
    c = add(store, alice, eml("alternative_in_mixed"), mailbox=ARCHIVE, received=1_700_000_200,
            flags=["\\Flagged"])
    return a, b, c


def query(client, alice, **args):
    return client.call("Email/query", args, alice)["ids"]


def test_filters(client, alice, mails):
    a, b, c = mails
    assert query(client, alice, filter={"inMailbox": mid(INBOX)}) == [b, a]
    assert query(client, alice, filter={"inMailboxOtherThan": [mid(INBOX)]}) == [c]
    assert query(client, alice, filter={"before": "2023-11-14T22:16:00Z"}) == [a]
    assert query(client, alice, filter={"after": "2023-11-14T22:16:00Z"}) == [b, c]
    assert query(client, alice, filter={"minSize": 500}) == [c]
    assert query(client, alice, filter={"maxSize": 500}) == [b, a]
    assert query(client, alice, filter={"hasKeyword": "$seen"}) == [a]
    assert query(client, alice, filter={"notKeyword": "$seen"}) == [b, c]
    assert query(client, alice, filter={"someInThreadHaveKeyword": "$seen"}) == [b, a]
    assert query(client, alice, filter={"allInThreadHaveKeyword": "$seen"}) == []
    assert query(client, alice, filter={"noneInThreadHaveKeyword": "$seen"}) == [c]
    assert query(client, alice, filter={"hasAttachment": True}) == [c]
    assert query(client, alice, filter={"text": "pizza"}) == [b, a]
    assert query(client, alice, filter={"body": "sounds good"}) == [b]
    assert query(client, alice, filter={"subject": "status report"}) == [c]
    assert query(client, alice, filter={"from": "amy"}) == [b]
    assert query(client, alice, filter={"to": "team@example.com"}) == [c]
    assert query(client, alice, filter={"cc": "carol"}) == [c]
    assert query(client, alice, filter={"bcc": "anyone"}) == []
    assert query(client, alice, filter={"header": ["In-Reply-To"]}) == [b, c]
    assert query(client, alice, filter={"header": ["Message-ID", "b@x"]}) == [b]
    assert query(client, alice, filter={"operator": "OR", "conditions": [{"from": "amy"}, {"from": "zed"}]}) == [b, a]
    assert query(client, alice, filter={"operator": "NOT", "conditions": [{"inMailbox": mid(INBOX)}]}) == [c]
    assert query(client, alice, filter={"operator": "AND", "conditions": [
        {"text": "pizza"}, {"notKeyword": "$seen"}]}) == [b]


def test_sorts_collapse_and_windows(client, alice, mails):
    a, b, c = mails
    def srt(prop, asc=True, **kw):
        return query(client, alice, sort=[{"property": prop, "isAscending": asc, **kw}])
    assert srt("receivedAt") == [a, c, b] and srt("receivedAt", False) == [b, c, a]
    assert srt("sentAt") == [c, a, b]
    assert srt("size", False)[0] == c
    assert srt("from") == [c, a, b]  # by display name: "Doe, John", then "Joe Bloggs" twice (ties by id)
    assert srt("to")[-1] == c
    assert srt("subject")[0] == a or srt("subject")[0] == b  # the same base subject
    assert srt("hasKeyword", False, keyword="$flagged")[0] == c
    assert srt("someInThreadHaveKeyword", False, keyword="$seen") == [a, b, c]
    assert srt("allInThreadHaveKeyword", False, keyword="$flagged")[0] == c
    assert query(client, alice, sort=[{"property": "receivedAt", "isAscending": False}], collapseThreads=True) == [b, c]
    result = client.call("Email/query", {"sort": [{"property": "receivedAt"}], "anchor": c, "anchorOffset": -1,
                                          "limit": 2, "calculateTotal": True}, alice)
    assert result["ids"] == [a, c] and result["position"] == 0 and result["total"] == 3
    assert client.call("Email/query", {"position": -1, "sort": [{"property": "receivedAt"}]}, alice)["ids"] == [b]


@pytest.mark.parametrize("args,error", [
    ({"filter": {"nosuch": 1}}, "unsupportedFilter"),
    ({"filter": {"before": "yesterday"}}, "invalidArguments"),
    ({"filter": {"hasKeyword": "bad(kw"}}, "invalidArguments"),
    ({"filter": {"header": []}}, "invalidArguments"),
    ({"sort": [{"property": "nosuch"}]}, "unsupportedSort"),
    ({"sort": [{"property": "hasKeyword"}]}, "invalidArguments"),
    ({"sort": [{"property": "subject", "collation": "i;ascii-numeric"}]}, "unsupportedSort"),
    ({"collapseThreads": "yes"}, "invalidArguments"),
    ({"anchor": "E999"}, "anchorNotFound"),
])
def test_query_errors(client, store, alice, mails, args, error):
    before = snapshot(store, alice)
    assert client.error("Email/query", {"accountId": aid(alice), **args})["type"] == error
    assert snapshot(store, alice) == before


def apply_changes(old, changes):
    ids = [i for i in old if i not in changes["removed"]]
    for added in changes["added"]:
        ids.insert(added["index"], added["id"])
    return ids


@pytest.mark.parametrize("args", [
    {"filter": {"inMailbox": mid(INBOX)}, "sort": [{"property": "receivedAt", "isAscending": False}]},
    {"sort": [{"property": "receivedAt", "isAscending": False}]},
    {"filter": {"notKeyword": "$seen"}, "sort": [{"property": "subject"}]},
    {"filter": {"inMailbox": mid(INBOX)}, "sort": [{"property": "receivedAt", "isAscending": False}],
     "collapseThreads": True},
    {"filter": {"noneInThreadHaveKeyword": "$flagged"}},
])
def test_query_changes_patch_gives_new_results(client, store, alice, mails, args):
    a, b, c = mails
    old = client.call("Email/query", args, alice)
    assert old["canCalculateChanges"] is True
    new_mail = add(store, alice, message("Re: Lunch plans", "me too", message_id="d@x",
                                         extra="References: <a@x>\r\n"), received=1_700_000_400)
    client.call("Email/set", {"update": {a: {"keywords/$seen": None, "keywords/$flagged": True},
                                         c: {"mailboxIds": {mid(INBOX): True}}},
                              "destroy": [b]}, alice)
    changes = client.call("Email/queryChanges", {**args, "sinceQueryState": old["queryState"],
                                                 "calculateTotal": True}, alice)
    now = client.call("Email/query", args, alice)
    assert changes["newQueryState"] == now["queryState"] and changes["total"] == len(now["ids"])
    assert apply_changes(old["ids"], changes) == now["ids"]
    assert new_mail in now["ids"] or args.get("filter", {}).get("noneInThreadHaveKeyword")
    none = client.call("Email/queryChanges", {**args, "sinceQueryState": now["queryState"]}, alice)
    assert none["removed"] == [] and none["added"] == []


def test_query_changes_errors(client, alice, mails):
    assert client.error("Email/queryChanges", {"accountId": aid(alice), "sinceQueryState": "junk"})["type"] == \
        "cannotCalculateChanges"
    assert client.error("Email/queryChanges", {"accountId": aid(alice), "sinceQueryState": "999999"})["type"] == \
        "cannotCalculateChanges"


def test_changes_paging(client, store, alice):
    start = client.call("Email/get", {"ids": []}, alice)["state"]
    created = [add(store, alice, message(f"m{i}")) for i in range(5)]
    seen, state, more = [], start, True
    while more:
        page = client.call("Email/changes", {"sinceState": state, "maxChanges": 2}, alice)
        assert len(page["created"]) <= 2
        seen += page["created"]
        state, more = page["newState"], page["hasMoreChanges"]
    assert seen == created
    client.call("Email/set", {"update": {created[0]: {"mailboxIds": {mid(TRASH): True}}}}, alice)
    page = client.call("Email/changes", {"sinceState": state}, alice)
    assert page["updated"] == [created[0]] and page["created"] == []
